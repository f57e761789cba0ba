// TLS and mutual TLS for the server's gRPC listener.
//
//   --tls-cert=server.pem --tls-key=server.key        TLS (server identity)
//   --tls-ca=ca.pem                                   + verify client certs
//                                                       when presented
//   --tls-require-client-cert                         + refuse handshakes
//                                                       without one (mTLS)
//
// With --tls-ca but without --tls-require-client-cert, clients may connect
// without a certificate (gateways, read-only operators), and a client that
// presents one signed by the CA is "verified": AdminAuthorizer lets it run
// mutating admin calls. A certificate not signed by the CA fails the
// handshake either way.
//
// Thread-safety: pure functions.
#ifndef LOCKWARDEN_SERVER_SERVICE_TLS_H_
#define LOCKWARDEN_SERVER_SERVICE_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"

namespace lockwarden::service {

// Largest PEM file read (certificate chains are a few KiB).
inline constexpr size_t kPemFileBytesMax = 1 << 20;

struct TlsOptions {
  std::string cert_file;  // PEM certificate chain; empty = plaintext.
  std::string key_file;   // PEM private key.
  std::string ca_file;    // PEM CA bundle for client certificates.
  bool require_client_cert = false;

  bool enabled() const { return !cert_file.empty(); }
};

// Plaintext credentials when !options.enabled(); SSL credentials otherwise.
// INVALID_ARGUMENT for inconsistent flags (key without cert, requiring client
// certificates without a CA) or unreadable files, naming the flag.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options);

// Reads a whole PEM file (at most kPemFileBytesMax bytes).
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path);

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_TLS_H_
