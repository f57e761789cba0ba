// Authorisation of mutating AdminService calls.
//
// Read-only admin calls are open to anyone who can reach the port (protect it
// with a NetworkPolicy). A mutating call (ForceRelease, SimulateClientReboot,
// ResetGateway, StepDown, ...) is allowed when one of these holds:
//   1. the peer presented a client certificate that the server verified
//      against --tls-ca (mutual TLS);
//   2. the call carries metadata `authorization: Bearer <token>` equal
//      (constant-time compare) to the token of --admin-token-file;
//   3. neither TLS nor a token is configured and the peer is a loopback
//      address (127.0.0.0/8, ::1): the single-node quick start stays usable
//      without opening mutations to the network.
// Otherwise: UNAUTHENTICATED (no credential presented) or PERMISSION_DENIED
// (a wrong token, or a remote peer on an unprotected server).
//
// Thread-safety: immutable after construction; safe from any thread.
#ifndef LOCKWARDEN_SERVER_SERVICE_AUTH_H_
#define LOCKWARDEN_SERVER_SERVICE_AUTH_H_

#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockwarden::service {

// Longest admin token accepted in a token file.
inline constexpr size_t kAdminTokenBytesMax = 4096;

struct AdminAuthOptions {
  std::string bearer_token;  // Empty: token authentication off.
  bool tls_enabled = false;  // The listener uses TLS (client certs possible).
};

class AdminAuthorizer {
 public:
  AdminAuthorizer() = default;
  explicit AdminAuthorizer(AdminAuthOptions options) : options_(std::move(options)) {}

  // OK when the caller of `ctx` may run a mutating admin call.
  absl::Status AuthorizeMutation(const grpc::ServerContextBase& ctx) const;

  // Who called, for the audit log: "cert:<CN or SAN>" with a verified client
  // certificate, "token" with a bearer token, then the peer address.
  std::string CallerIdentity(const grpc::ServerContextBase& ctx) const;

 private:
  bool HasVerifiedClientCert(const grpc::ServerContextBase& ctx) const;
  AdminAuthOptions options_;
};

// Reads a token file: the first line, surrounding whitespace removed.
// INVALID_ARGUMENT if empty or longer than kAdminTokenBytesMax.
absl::StatusOr<std::string> ReadAdminTokenFile(const std::string& path);

// Compares in time independent of where the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// True for gRPC peer strings of loopback addresses ("ipv4:127.0.0.1:5000",
// "ipv6:[::1]:5000", "ipv6:[::ffff:127.0.0.1]:1", "unix:...").
bool IsLoopbackPeer(absl::string_view peer);

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_AUTH_H_
