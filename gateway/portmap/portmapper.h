// An embedded portmapper/rpcbind (program 100000) served through the
// gateway's Dispatcher, so a pod needs no host rpcbind.
//
//   Portmapper pm(PortmapperOptions{.advertised_ipv4 = "10.0.0.5"});
//   LW_RETURN_IF_ERROR(pm.RegisterProcedures(dispatcher));
//   LW_RETURN_IF_ERROR(pm.AddService(NLM_PROG, NLM4_VERS, nlm_port));
//   // serve `dispatcher` on port 111 (or a configured port)
//
// Procedures:
//   PMAP v2:      NULL, SET, UNSET, GETPORT, DUMP (CALLIT is PROC_UNAVAIL:
//                 it is an amplification vector and nothing here needs it)
//   RPCBIND v3/v4: NULL, SET, UNSET, GETADDR, DUMP; v4 also GETVERSADDR
//                 and GETADDRLIST (used by `rpcinfo -l`).
//
// SET and UNSET are honoured only for callers on a loopback address (a
// remote host must not redirect our clients); others get FALSE, as
// rpcbind answers unauthorised callers. GETPORT/GETADDR fall back to
// another version of the program when the exact one is absent, as rpcbind
// does (the client then learns the range from PROG_MISMATCH).
//
// Universal addresses (RFC 5665): "h1.h2.h3.h4.p1.p2" for IPv4,
// "x:x::x.p1.p2" for IPv6, with port = p1 * 256 + p2. The host part is the
// configured advertised address of the family, else the local address the
// query arrived on, else loopback for a loopback caller, else the wildcard
// (callers such as the Linux kernel use only the port).
//
// Thread safety: thread-safe; handlers answer synchronously.
#ifndef LOCKWARDEN_GATEWAY_PORTMAP_PORTMAPPER_H_
#define LOCKWARDEN_GATEWAY_PORTMAP_PORTMAPPER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/portmap/registration_table.h"
#include "gateway/rpc/dispatcher.h"

namespace lockwarden::gateway {

inline constexpr uint32_t kPortmapProgram = 100000;
inline constexpr uint16_t kPortmapPort = 111;

struct PortmapperOptions {
  std::string advertised_ipv4;  // e.g. the Service VIP; empty = automatic
  std::string advertised_ipv6;
  std::string owner = "lockwarden";
};

// "h1.h2.h3.h4.p1.p2" / "x:x::x.p1.p2".
std::string ToUniversalAddress(const std::string& ip, uint16_t port);
// Parses a universal address back into (ip, port).
absl::StatusOr<std::pair<std::string, uint16_t>> FromUniversalAddress(
    const std::string& uaddr);

class Portmapper {
 public:
  explicit Portmapper(PortmapperOptions options = {});

  // Registers program 100000 versions 2, 3 and 4 with `dispatcher`.
  absl::Status RegisterProcedures(Dispatcher& dispatcher);

  // Adds (prog, vers) on udp and tcp at `port`, plus udp6/tcp6 when
  // `ipv6` is set. Replaces earlier mappings of the same keys.
  absl::Status AddService(uint32_t prog, uint32_t vers, uint16_t port,
                          bool ipv6 = true);

  // Lists the portmapper itself (program 100000 versions 2, 3, 4) at
  // `port`, as rpcbind does, so `rpcinfo -p` shows it.
  absl::Status AddSelf(uint16_t port = kPortmapPort, bool ipv6 = true);

  RegistrationTable& table() { return table_; }

 private:
  void RegisterV2(Dispatcher& dispatcher, absl::Status* status);
  void RegisterRpcbind(Dispatcher& dispatcher, uint32_t vers,
                       absl::Status* status);
  std::string HostFor(const CallContext& context, bool ipv6) const;
  void GetAddrList(std::unique_ptr<RpcCall> call);

  const PortmapperOptions options_;
  RegistrationTable table_;
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_PORTMAP_PORTMAPPER_H_
