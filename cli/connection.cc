#include "cli/connection.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace lockwarden::cli {
namespace {

// Largest PEM file read for TLS; certificate chains are a few KiB.
constexpr std::streamsize kPemFileBytesMax = 1 << 20;

absl::StatusOr<std::string> ReadPemFile(absl::string_view flag,
                                        const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  std::string contents(kPemFileBytesMax + 1, '\0');
  in.read(&contents[0], kPemFileBytesMax + 1);
  const std::streamsize size = in.gcount();
  if (size > kPemFileBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", path, "' is larger than ", kPemFileBytesMax, " bytes"));
  }
  contents.resize(static_cast<size_t>(size));
  return contents;
}

// Whether a standby-style answer without an address still means "try the
// next server": the documented message says "not the leader". Other
// FAILED_PRECONDITIONs (e.g. import into a non-empty store) are final.
bool IsNotLeader(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
         absl::StrContains(status.error_message(), "not the leader");
}

bool MayRedirect(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
         status.error_code() == grpc::StatusCode::UNAVAILABLE;
}

}  // namespace

std::string GrpcCodeName(grpc::StatusCode code) {
  // grpc::StatusCode and absl::StatusCode share the canonical numbering.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

absl::Status RpcError(absl::string_view address, absl::string_view rpc_name,
                      const grpc::Status& status) {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    return absl::Status(
        code, absl::StrCat("server ", address, " does not implement ",
                           rpc_name, " yet (UNIMPLEMENTED)"));
  }
  return absl::Status(
      code, absl::StrCat("server ", address, ": ", rpc_name, ": ",
                         GrpcCodeName(status.error_code()), ": ",
                         status.error_message()));
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Create(
    ConnectionOptions options) {
  if (options.addresses.empty()) {
    return absl::InvalidArgumentError("--server: no address given");
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  const bool tls = !options.tls_ca_file.empty() ||
                   !options.tls_cert_file.empty() ||
                   !options.tls_key_file.empty();
  if (!tls) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls-cert and --tls-key must be given together");
    }
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca_file.empty()) {
      absl::StatusOr<std::string> ca =
          ReadPemFile("--tls-ca", options.tls_ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = *std::move(ca);
    }
    if (!options.tls_cert_file.empty()) {
      absl::StatusOr<std::string> cert =
          ReadPemFile("--tls-cert", options.tls_cert_file);
      if (!cert.ok()) return cert.status();
      absl::StatusOr<std::string> key =
          ReadPemFile("--tls-key", options.tls_key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *std::move(cert);
      ssl.pem_private_key = *std::move(key);
    }
    credentials = grpc::SslCredentials(ssl);
  }
  return std::unique_ptr<Connection>(
      new Connection(std::move(options), std::move(credentials)));
}

Connection::Connection(ConnectionOptions options,
                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(std::move(options)), credentials_(std::move(credentials)) {}

std::shared_ptr<grpc::Channel> Connection::ChannelFor(
    const std::string& address) {
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  // Channels are cheap to recreate; dropping the cache keeps it bounded
  // even if a misbehaving server redirected us around many addresses.
  if (channels_.size() >= kChannelsMax) channels_.clear();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, credentials_);
  channels_.emplace(address, channel);
  return channel;
}

grpc::Status Connection::AttemptAt(const std::string& address,
                                   const RpcAttempt& attempt,
                                   const CallOptions& call_options,
                                   std::string* leader) {
  grpc::ClientContext context;
  const absl::Duration timeout = call_options.timeout > absl::ZeroDuration()
                                     ? call_options.timeout
                                     : options_.rpc_timeout;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  if (!options_.bearer_token.empty()) {
    context.AddMetadata("authorization",
                        absl::StrCat("Bearer ", options_.bearer_token));
  }
  grpc::Status status = attempt(&context, ChannelFor(address));
  leader->clear();
  if (!status.ok()) {
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find(kLeaderAddressMetadataKey);
    if (it != trailers.end()) leader->assign(it->second.data(), it->second.size());
  }
  return status;
}

absl::Status Connection::Call(absl::string_view rpc_name,
                              const RpcAttempt& attempt,
                              const CallOptions& call_options) {
  // The server that answered last first (e.g. the leader a lock was taken
  // at, which the grant stream must reach too), then the configured order.
  std::vector<std::string> order;
  if (!answered_address_.empty()) order.push_back(answered_address_);
  for (const std::string& address : options_.addresses) {
    if (address != answered_address_) order.push_back(address);
  }

  absl::Status last_error;
  for (const std::string& address : order) {
    std::string leader;
    grpc::Status status = AttemptAt(address, attempt, call_options, &leader);
    if (status.ok()) {
      answered_address_ = address;
      return absl::OkStatus();
    }
    if (MayRedirect(status) && !leader.empty() && leader != address) {
      // One redirect, and its answer is final: a second standby pointing
      // elsewhere means the cluster is mid-election; the operator retries.
      std::string ignored;
      grpc::Status redirected =
          AttemptAt(leader, attempt, call_options, &ignored);
      if (redirected.ok()) {
        answered_address_ = leader;
        return absl::OkStatus();
      }
      return RpcError(leader, rpc_name, redirected);
    }
    last_error = RpcError(address, rpc_name, status);
    const bool next =
        status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        IsNotLeader(status) ||
        (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
         call_options.next_address_on_deadline);
    if (!next) return last_error;
  }
  return last_error;
}

}  // namespace lockwarden::cli
