// The embedded portmapper's table of (program, version, netid) -> port.
//
// Netids are the rpcbind ones: "udp", "tcp" (IPv4) and "udp6", "tcp6"
// (IPv6). PMAP v2 speaks protocols (IPPROTO_UDP/TCP), which map to "udp"
// and "tcp".
//
// Bounded: at most kMaxPortRegistrations entries (the gateway registers a
// handful; loopback SET calls cannot grow it without bound).
//
// Thread safety: all methods are thread-safe.
#ifndef LOCKWARDEN_GATEWAY_PORTMAP_REGISTRATION_TABLE_H_
#define LOCKWARDEN_GATEWAY_PORTMAP_REGISTRATION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace lockwarden::gateway {

inline constexpr size_t kMaxPortRegistrations = 256;

struct PortRegistration {
  uint32_t prog = 0;
  uint32_t vers = 0;
  std::string netid;  // "udp", "tcp", "udp6", "tcp6"
  uint16_t port = 0;
  std::string owner;  // rpcbind's r_owner ("lockwarden", or a uid)
};

// "udp"/"tcp" for IPPROTO_UDP/IPPROTO_TCP, empty for anything else.
std::string NetidForProtocol(uint32_t protocol);
// IPPROTO_UDP/IPPROTO_TCP for "udp"/"udp6"/"tcp"/"tcp6", 0 otherwise.
uint32_t ProtocolForNetid(const std::string& netid);

class RegistrationTable {
 public:
  // AlreadyExists if (prog, vers, netid) is registered (rpcbind semantics:
  // unset first); ResourceExhausted at the limit; InvalidArgument for an
  // unknown netid or port 0.
  absl::Status Set(const PortRegistration& registration);
  // Replaces any existing mapping (for the gateway's own programs).
  absl::Status Replace(const PortRegistration& registration);
  // Removes (prog, vers, netid), or every netid when `netid` is empty.
  // Returns the number of entries removed.
  size_t Unset(uint32_t prog, uint32_t vers, const std::string& netid = "");

  // The port of (prog, vers, netid). Like rpcbind's PMAP GETPORT, when the
  // exact version is absent the port of another version of the program on
  // that netid is returned (the server then answers PROG_MISMATCH with its
  // range); `exact_version` turns that off (RPCBIND v4 GETVERSADDR).
  std::optional<uint16_t> Lookup(uint32_t prog, uint32_t vers,
                                 const std::string& netid,
                                 bool exact_version = false) const;

  std::vector<PortRegistration> Dump() const;

 private:
  using Key = std::tuple<uint32_t, uint32_t, std::string>;
  mutable absl::Mutex mu_;
  std::map<Key, PortRegistration> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_PORTMAP_REGISTRATION_TABLE_H_
