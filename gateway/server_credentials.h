// Channel credentials for the gateway -> lockwarden-server hop, from the
// same flags as the server and lockwardenctl:
//
//   (none)                                  plaintext
//   --tls-ca=ca.pem                         TLS; the server's certificate
//                                           must chain to ca.pem
//   --tls-ca=ca.pem --tls-cert=gw.pem --tls-key=gw.key
//                                           mutual TLS: the gateway
//                                           presents gw.pem (needed by a
//                                           server started with
//                                           --tls-require-client-cert)
//   --tls-cert/--tls-key without --tls-ca   TLS against the system roots
//
// A server certificate that does not chain to the CA, or a server that
// requires a client certificate we do not present, fails the TLS handshake:
// every call is then UNAVAILABLE with gRPC's handshake error in the message
// (logged by the event streams as grant_stream_ended / nsm_stream_ended),
// and NLM clients are answered DENIED_NOLOCKS after --failover-wait-ms.
//
// Thread-safety: a pure function.
#ifndef LOCKWARDEN_GATEWAY_SERVER_CREDENTIALS_H_
#define LOCKWARDEN_GATEWAY_SERVER_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace lockwarden::gateway {

struct ServerTlsOptions {
  std::string ca_file;    // PEM CA bundle the server certificate must chain to
  std::string cert_file;  // PEM certificate chain presented to the server
  std::string key_file;   // PEM private key of cert_file

  bool enabled() const {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty();
  }
};

// Insecure credentials when !options.enabled(), SSL credentials otherwise.
// INVALID_ARGUMENT naming the flag for --tls-cert without --tls-key (or the
// reverse) and for unreadable or oversized PEM files.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeServerChannelCredentials(const ServerTlsOptions& options);

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_SERVER_CREDENTIALS_H_
