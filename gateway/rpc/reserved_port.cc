#include "gateway/rpc/reserved_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway {

absl::StatusOr<uint16_t> BindReservedPort(int fd, int family) {
  if (family != AF_INET && family != AF_INET6) {
    return absl::InvalidArgumentError(
        absl::StrCat("BindReservedPort: address family ", family));
  }
  constexpr int kPorts = kReservedPortHigh - kReservedPortLow + 1;
  std::random_device rd;
  const int start = static_cast<int>(rd() % kPorts);
  // Bounded: each port of the range is tried at most once.
  for (int i = 0; i < kPorts; ++i) {
    const uint16_t port =
        static_cast<uint16_t>(kReservedPortLow + (start + i) % kPorts);
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(&addr);
      a->sin_family = AF_INET;
      a->sin_addr.s_addr = htonl(INADDR_ANY);
      a->sin_port = htons(port);
      len = sizeof(sockaddr_in);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
      a->sin6_family = AF_INET6;
      a->sin6_addr = in6addr_any;
      a->sin6_port = htons(port);
      len = sizeof(sockaddr_in6);
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0) return port;
    const int err = errno;
    if (err == EADDRINUSE) continue;
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat(
          "binding a source port below 1024 needs root or "
          "CAP_NET_BIND_SERVICE: ",
          std::strerror(err)));
    }
    return absl::InternalError(
        absl::StrCat("bind to port ", port, ": ", std::strerror(err)));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "every source port in ", kReservedPortLow, "-", kReservedPortHigh,
      " is in use"));
}

}  // namespace lockwarden::gateway
