// Request ids for the lock service, minted by the gateway from what the
// duplicate request cache keys on.
//
// Every NLM mutation forwarded to lockwarden-server carries a request_id the
// server deduplicates durably (docs/api.md "Request ids and retries"). The
// gateway derives it deterministically from
//   (gateway name, client address, xid, prog, vers, proc, argument bytes)
// so that a client's retransmission of the same call maps to the same id
// even when it misses the gateway's in-memory DRC: after a gateway restart,
// or when it lands on another gateway process of the same identity. A new
// call from the client (new xid, or new arguments) gets a new id.
//
//   id = "nlm-" + hex(SHA-256(fields, length-prefixed))[0:32]
//
// 128 bits of SHA-256 make accidental collisions irrelevant at any request
// rate; the fields are length-prefixed so no two field lists encode alike.
// The argument bytes are the XDR encoding of the decoded arguments, which is
// byte-identical to what the client sent (XDR encodings are canonical).
//
// Thread safety: pure functions.
#ifndef LOCKWARDEN_GATEWAY_NLM_REQUEST_ID_H_
#define LOCKWARDEN_GATEWAY_NLM_REQUEST_ID_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/strings/string_view.h"

namespace lockwarden::gateway::nlm {

struct RequestIdKey {
  std::string gateway_name;
  std::string client_address;  // normalised (IPv4-mapped IPv6 -> IPv4)
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  std::string args;  // XDR bytes of the arguments
};

std::string DeriveRequestId(const RequestIdKey& key);

// A request id for calls the gateway makes on its own behalf (SM_MON
// registrations, grant acks): `purpose` plus the parts, hashed the same way.
std::string DeriveInternalRequestId(absl::string_view purpose,
                                    std::initializer_list<absl::string_view> parts);

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_REQUEST_ID_H_
