// The CLI's connection to lockwarden-server: channel creation (plain text or
// TLS with optional client certificate), the bearer token, per-RPC deadlines,
// trying the configured addresses in order, and following a standby's
// redirect to the leader.
//
// A call runs an `RpcAttempt` (a lambda issuing one RPC on a prepared
// ClientContext and channel) against:
//   1. the address that answered last in this process, if any, then the
//      --server addresses in order;
//   2. an address that fails with UNAVAILABLE, DEADLINE_EXCEEDED (when the
//      call allows it) or "not the leader" without a leader address moves
//      on to the next address;
//   3. an answer FAILED_PRECONDITION or UNAVAILABLE carrying trailing
//      metadata `lockwarden-leader-address` is retried once at that address
//      (the leader), and that answer is final.
// Retrying is safe because every mutation carries a request id that the
// attempt reuses verbatim (docs/api.md, "Request ids and retries").
//
// Errors become absl::Status with the gRPC code and a message naming the
// server and the RPC: "server 127.0.0.1:7420: ListLocks: UNAVAILABLE: ...".
// UNIMPLEMENTED reads "server 127.0.0.1:7420 does not implement ListShares
// yet (UNIMPLEMENTED)".
//
// Thread safety: not thread-safe; one Connection per thread (the CLI has one
// thread).
#ifndef LOCKWARDEN_CLI_CONNECTION_H_
#define LOCKWARDEN_CLI_CONNECTION_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace lockwarden::cli {

// Trailing metadata key by which a standby names the leader.
inline constexpr char kLeaderAddressMetadataKey[] = "lockwarden-leader-address";

// What `--server`, `--timeout`, the TLS flags and `--token` configure.
struct ConnectionOptions {
  // Addresses to try in order (HOST:PORT); at least one.
  std::vector<std::string> addresses;
  // Deadline of each unary RPC attempt.
  absl::Duration rpc_timeout = absl::Seconds(5);
  // PEM files; TLS is used when any is set. Without --tls-ca the system's
  // default roots verify the server.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // Sent as "authorization: Bearer <token>" on every call when non-empty.
  std::string bearer_token;
};

// One RPC issued on `channel` with `context` (deadline and credentials
// already set). Returns the RPC's final status; the context's trailing
// metadata is read after it returns.
using RpcAttempt = std::function<grpc::Status(
    grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel)>;

// Per-call knobs.
struct CallOptions {
  // Deadline of the attempt; 0 means the connection's rpc_timeout. Streams
  // pass how long they may stay open.
  absl::Duration timeout = absl::ZeroDuration();
  // Whether DEADLINE_EXCEEDED moves on to the next address. False for calls
  // whose deadline is their intended end (waiting for a grant).
  bool next_address_on_deadline = true;
};

class Connection {
 public:
  // Reads the TLS files (errors name the flag and file) and builds the
  // credentials; channels are created on first use.
  static absl::StatusOr<std::unique_ptr<Connection>> Create(
      ConnectionOptions options);

  // Runs `attempt` as described at the top of this file. `rpc_name` (e.g.
  // "ListLocks") appears in error messages.
  absl::Status Call(absl::string_view rpc_name, const RpcAttempt& attempt,
                    const CallOptions& call_options = CallOptions());

  // The address whose answer the last successful Call returned ("" before).
  const std::string& answered_address() const { return answered_address_; }

  // The addresses from the options, in order.
  const std::vector<std::string>& addresses() const {
    return options_.addresses;
  }

 private:
  Connection(ConnectionOptions options,
             std::shared_ptr<grpc::ChannelCredentials> credentials);

  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address);

  // One attempt at `address`; fills `*leader` from trailing metadata.
  grpc::Status AttemptAt(const std::string& address, const RpcAttempt& attempt,
                         const CallOptions& call_options, std::string* leader);

  const ConnectionOptions options_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  // Channels by address: the configured ones plus leaders learnt from
  // redirects, at most kChannelsMax.
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::string answered_address_;
};

// Most channels one Connection keeps (configured addresses + redirects).
inline constexpr size_t kChannelsMax = 32;

// "UNAVAILABLE", "NOT_FOUND", ...: the canonical name of a gRPC code.
std::string GrpcCodeName(grpc::StatusCode code);

// The Status the CLI reports for a failed RPC (see the top of this file).
absl::Status RpcError(absl::string_view address, absl::string_view rpc_name,
                      const grpc::Status& status);

}  // namespace lockwarden::cli

#endif  // LOCKWARDEN_CLI_CONNECTION_H_
