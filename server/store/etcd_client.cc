#include "server/store/etcd_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace lockwarden::store {
namespace {

// etcd's metadata asking a member to refuse work while it has no raft
// leader (clientv3.WithRequireLeader).
constexpr char kRequireLeaderKey[] = "hasleader";
constexpr char kRequireLeaderValue[] = "true";

// Channel reconnect backoff: a restarted member is found again within about
// a second (gRPC's default backoff grows to two minutes).
constexpr int kReconnectBackoffMinMs = 100;
constexpr int kReconnectBackoffMaxMs = 1000;
// HTTP/2 keepalive pings detect a dead connection under a long stream. etcd
// refuses pings more frequent than --grpc-keepalive-min-time (5 s).
constexpr int kKeepaliveTimeMs = 10000;
constexpr int kKeepaliveTimeoutMs = 3000;

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::StatusOr<std::string> ParseEndpoint(absl::string_view raw) {
  absl::string_view s = absl::StripAsciiWhitespace(raw);
  if (absl::StartsWith(s, "https://") || absl::StartsWith(s, "unixs://")) {
    return absl::UnimplementedError(
        absl::StrCat("etcd endpoint '", s, "': TLS is not supported"));
  }
  absl::ConsumePrefix(&s, "http://");
  absl::ConsumeSuffix(&s, "/");
  const size_t colon = s.rfind(':');
  int port = 0;
  if (s.empty() || colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(s.substr(colon + 1), &port) || port <= 0 ||
      port > 65535 || s.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint '", raw, "': want http://host:port or host:port"));
  }
  return std::string(s);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(
    absl::string_view flag) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    absl::StatusOr<std::string> endpoint = ParseEndpoint(part);
    if (!endpoint.ok()) return endpoint.status();
    out.push_back(std::string(absl::StripAsciiWhitespace(part)));
  }
  if (out.empty()) return absl::InvalidArgumentError("no etcd endpoints given");
  if (out.size() > kMaxEtcdEndpoints) {
    return absl::InvalidArgumentError(absl::StrCat(
        "too many etcd endpoints: ", out.size(), " > ", kMaxEtcdEndpoints));
  }
  return out;
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view what,
                            absl::string_view endpoint) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(
      static_cast<absl::StatusCode>(status.error_code()),
      absl::StrCat("etcd ", what, " at ", endpoint, ": ", status.error_message()));
}

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    EtcdClientOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("no etcd endpoints given");
  }
  if (options.endpoints.size() > kMaxEtcdEndpoints) {
    return absl::InvalidArgumentError("too many etcd endpoints");
  }
  if (options.attempt_timeout <= absl::ZeroDuration() ||
      options.call_timeout < options.attempt_timeout || options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        "etcd timeouts: need 0 < attempt_timeout <= call_timeout, max_attempts >= 1");
  }
  for (const std::string& e : options.endpoints) {
    absl::StatusOr<std::string> parsed = ParseEndpoint(e);
    if (!parsed.ok()) return parsed.status();
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(options)));
}

EtcdClient::EtcdClient(EtcdClientOptions options) : options_(std::move(options)) {
  for (const std::string& raw : options_.endpoints) {
    Endpoint e;
    e.target = *ParseEndpoint(raw);
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kReconnectBackoffMinMs);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kReconnectBackoffMinMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kReconnectBackoffMaxMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);  // We retry, on another member.
    args.SetMaxReceiveMessageSize(kEtcdMaxReceiveMessageBytes);
    // A channel of its own per endpoint: no subchannel sharing between
    // clients, so one client's broken connection never leaks into another.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    e.channel = grpc::CreateCustomChannel(
        e.target, grpc::InsecureChannelCredentials(), args);
    e.kv = etcdserverpb::KV::NewStub(e.channel);
    e.lease = etcdserverpb::Lease::NewStub(e.channel);
    e.watch = etcdserverpb::Watch::NewStub(e.channel);
    e.maintenance = etcdserverpb::Maintenance::NewStub(e.channel);
    endpoints_.push_back(std::move(e));
  }
}

size_t EtcdClient::PreferredEndpoint() const {
  return preferred_.load() % endpoints_.size();
}

void EtcdClient::MarkFailed(size_t endpoint) {
  size_t expected = endpoint;
  preferred_.compare_exchange_strong(expected,
                                     (endpoint + 1) % endpoints_.size());
}

absl::Status EtcdClient::Connect(size_t endpoint, absl::Time deadline) {
  Endpoint& e = endpoints_[endpoint];
  if (e.channel->GetState(/*try_to_connect=*/true) == GRPC_CHANNEL_READY) {
    return absl::OkStatus();
  }
  const absl::Time until =
      std::min(deadline, absl::Now() + options_.connect_timeout);
  if (e.channel->WaitForConnected(absl::ToChronoTime(until))) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(
      "etcd ", e.target, ": not connected within ",
      absl::FormatDuration(options_.connect_timeout)));
}

void EtcdClient::PrepareContext(grpc::ClientContext* context,
                                absl::Time deadline, bool require_leader) {
  context->set_deadline(absl::ToChronoTime(deadline));
  if (require_leader) {
    context->AddMetadata(kRequireLeaderKey, kRequireLeaderValue);
  }
}

template <typename Response, typename Attempt>
absl::StatusOr<Response> EtcdClient::Call(absl::string_view what,
                                          const Attempt& attempt,
                                          EtcdCallInfo* info) {
  EtcdCallInfo local;
  if (info == nullptr) info = &local;
  const absl::Time call_deadline = absl::Now() + options_.call_timeout;
  absl::Status last;
  for (int i = 0; i < options_.max_attempts; ++i) {
    const absl::Time now = absl::Now();
    if (now >= call_deadline) break;
    const size_t e = PreferredEndpoint();
    const absl::Time attempt_deadline =
        std::min(call_deadline, now + options_.attempt_timeout);
    ++info->attempts;
    last = Connect(e, attempt_deadline);
    if (last.ok()) {
      grpc::ClientContext context;
      PrepareContext(&context, attempt_deadline, /*require_leader=*/true);
      Response response;
      const grpc::Status status = attempt(endpoints_[e], &context, &response);
      if (status.ok()) return response;
      last = FromGrpcStatus(status, what, endpoints_[e].target);
      if (!Retryable(status.error_code())) return last;
      // UNAVAILABLE may have been raised after the request was sent, and a
      // deadline certainly leaves the outcome open.
      info->earlier_attempt_uncertain = true;
    }
    MarkFailed(e);
    const absl::Duration left = call_deadline - absl::Now();
    if (left <= kEtcdRetryPause) break;
    absl::SleepFor(kEtcdRetryPause);
  }
  // The caller sees UNAVAILABLE for "etcd did not answer in time", whatever
  // the last attempt's code was: both mean "outcome unknown, try later".
  return absl::UnavailableError(absl::StrCat(
      last.message().empty() ? absl::StrCat("etcd ", what, ": call timed out")
                             : std::string(last.message()),
      " (", info->attempts, " attempts)"));
}

absl::StatusOr<etcdserverpb::RangeResponse> EtcdClient::Range(
    const etcdserverpb::RangeRequest& request, EtcdCallInfo* info) {
  return Call<etcdserverpb::RangeResponse>(
      "Range",
      [&](Endpoint& e, grpc::ClientContext* c, etcdserverpb::RangeResponse* r) {
        return e.kv->Range(c, request, r);
      },
      info);
}

absl::StatusOr<etcdserverpb::TxnResponse> EtcdClient::Txn(
    const etcdserverpb::TxnRequest& request, EtcdCallInfo* info) {
  return Call<etcdserverpb::TxnResponse>(
      "Txn",
      [&](Endpoint& e, grpc::ClientContext* c, etcdserverpb::TxnResponse* r) {
        return e.kv->Txn(c, request, r);
      },
      info);
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(
    const etcdserverpb::LeaseGrantRequest& request) {
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> r =
      Call<etcdserverpb::LeaseGrantResponse>(
          "LeaseGrant",
          [&](Endpoint& e, grpc::ClientContext* c,
              etcdserverpb::LeaseGrantResponse* out) {
            return e.lease->LeaseGrant(c, request, out);
          },
          nullptr);
  if (r.ok() && !r->error().empty()) {
    return absl::UnavailableError(absl::StrCat("etcd LeaseGrant: ", r->error()));
  }
  return r;
}

absl::StatusOr<etcdserverpb::LeaseRevokeResponse> EtcdClient::LeaseRevoke(
    const etcdserverpb::LeaseRevokeRequest& request) {
  return Call<etcdserverpb::LeaseRevokeResponse>(
      "LeaseRevoke",
      [&](Endpoint& e, grpc::ClientContext* c,
          etcdserverpb::LeaseRevokeResponse* r) {
        return e.lease->LeaseRevoke(c, request, r);
      },
      nullptr);
}

absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse> EtcdClient::LeaseTimeToLive(
    const etcdserverpb::LeaseTimeToLiveRequest& request) {
  return Call<etcdserverpb::LeaseTimeToLiveResponse>(
      "LeaseTimeToLive",
      [&](Endpoint& e, grpc::ClientContext* c,
          etcdserverpb::LeaseTimeToLiveResponse* r) {
        return e.lease->LeaseTimeToLive(c, request, r);
      },
      nullptr);
}

absl::StatusOr<etcdserverpb::StatusResponse> EtcdClient::MemberStatus(
    size_t endpoint) {
  if (endpoint >= endpoints_.size()) {
    return absl::InvalidArgumentError("no such etcd endpoint");
  }
  Endpoint& e = endpoints_[endpoint];
  const absl::Time deadline = absl::Now() + options_.attempt_timeout;
  absl::Status connected = Connect(endpoint, deadline);
  if (!connected.ok()) return connected;
  grpc::ClientContext context;
  PrepareContext(&context, deadline, /*require_leader=*/false);
  etcdserverpb::StatusResponse response;
  const grpc::Status status =
      e.maintenance->Status(&context, etcdserverpb::StatusRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status, "Status", e.target);
  return response;
}

}  // namespace lockwarden::store
