// Binding outgoing sockets to a privileged ("reserved") source port.
//
// A Linux kernel lockd ignores NLM calls (GRANTED, *_RES) and statd
// callbacks that do not come from a port below 1024 (the AUTH_UNIX-era
// rule that only root may speak for a host), so the gateway's callbacks
// must be sent from one. We pick ports in [kReservedPortLow,
// kReservedPortHigh], the range Linux's sunrpc uses for the same purpose
// (/proc/sys/sunrpc/min_resvport .. max_resvport), which stays clear of
// the well-known services below 665. Binding needs root or
// CAP_NET_BIND_SERVICE.
//
// Thread safety: reentrant; concurrent callers may race for a port, and
// the loser simply tries the next one.
#ifndef LOCKWARDEN_GATEWAY_RPC_RESERVED_PORT_H_
#define LOCKWARDEN_GATEWAY_RPC_RESERVED_PORT_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace lockwarden::gateway {

inline constexpr uint16_t kReservedPortLow = 665;
inline constexpr uint16_t kReservedPortHigh = 1023;

// Binds the unbound socket `fd` of address family `family` (AF_INET or
// AF_INET6) to the wildcard address and a free port in the reserved range,
// trying every port at most once from a random start. Returns the port.
// PermissionDenied without the privilege to bind low ports;
// ResourceExhausted if every port in the range is taken; Internal for
// other socket errors.
absl::StatusOr<uint16_t> BindReservedPort(int fd, int family);

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_RESERVED_PORT_H_
