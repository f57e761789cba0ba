// EtcdClient: the one connection layer to an etcd v3 cluster, shared by
// EtcdStore (server/store) and LeaderElection (server/replication). It holds
// one plaintext gRPC channel per endpoint and makes unary calls with a
// deadline on every attempt and failover: an attempt that fails with
// UNAVAILABLE or DEADLINE_EXCEEDED (member down, no raft leader, leader
// changed, member partitioned) is retried on the next endpoint, within a
// bounded number of attempts and a bounded total time. Other codes are
// returned at once.
//
// Retrying is safe for every request lockwarden sends: reads trivially;
// writes because they are idempotent (puts and deletes of fixed keys) and
// fenced (a retry after another leader took over fails its compare). A
// caller that must know whether an earlier attempt may have been applied
// reads CallInfo::earlier_attempt_uncertain.
//
// Streams (Watch, LeaseKeepAlive) are opened by the caller on
// stub(endpoint) with PrepareContext(); the caller reports a broken
// endpoint with MarkFailed() so the next call starts elsewhere.
//
//   LW_ASSIGN_OR_RETURN(std::unique_ptr<EtcdClient> etcd,
//       EtcdClient::Create({.endpoints = {"http://127.0.0.1:2379"}}));
//   absl::StatusOr<etcdserverpb::RangeResponse> r = etcd->Range(request);
//
// Thread safety: all methods may be called from any thread concurrently.
#ifndef LOCKWARDEN_SERVER_STORE_ETCD_CLIENT_H_
#define LOCKWARDEN_SERVER_STORE_ETCD_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "etcdserverpb/rpc.grpc.pb.h"

namespace lockwarden::store {

// Bounds of one logical call: each attempt gets its own deadline, the whole
// call (all attempts) another, and the number of attempts is capped.
inline constexpr absl::Duration kDefaultEtcdAttemptTimeout = absl::Seconds(2);
inline constexpr absl::Duration kDefaultEtcdCallTimeout = absl::Seconds(8);
inline constexpr int kMaxEtcdAttemptsPerCall = 12;
// Pause between attempts, so a cluster electing a raft leader (about one
// election timeout, 1 s by default) is not hammered.
inline constexpr absl::Duration kEtcdRetryPause = absl::Milliseconds(100);
// How long an attempt waits for a connection to a member before moving on
// to the next one: a dead member costs at most this per call.
inline constexpr absl::Duration kDefaultEtcdConnectTimeout = absl::Milliseconds(500);
// Endpoints accepted in one --etcd-endpoints list.
inline constexpr size_t kMaxEtcdEndpoints = 16;
// Largest message accepted from etcd. Scans are paged so a page stays far
// below this (see EtcdStore).
inline constexpr int kEtcdMaxReceiveMessageBytes = 128 * 1024 * 1024;

struct EtcdClientOptions {
  // "http://host:port" or "host:port"; https is refused (plaintext only).
  std::vector<std::string> endpoints;
  absl::Duration attempt_timeout = kDefaultEtcdAttemptTimeout;
  absl::Duration call_timeout = kDefaultEtcdCallTimeout;
  absl::Duration connect_timeout = kDefaultEtcdConnectTimeout;
  int max_attempts = kMaxEtcdAttemptsPerCall;
};

// Splits a comma-separated --etcd-endpoints value and checks each entry.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(
    absl::string_view flag);

// What happened during one logical call, for callers that care.
struct EtcdCallInfo {
  int attempts = 0;
  // An attempt before the last one failed in a way that leaves its outcome
  // unknown (it may have been applied).
  bool earlier_attempt_uncertain = false;
};

class EtcdClient {
 public:
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(
      EtcdClientOptions options);

  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  absl::StatusOr<etcdserverpb::RangeResponse> Range(
      const etcdserverpb::RangeRequest& request, EtcdCallInfo* info = nullptr);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(
      const etcdserverpb::TxnRequest& request, EtcdCallInfo* info = nullptr);
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> LeaseGrant(
      const etcdserverpb::LeaseGrantRequest& request);
  absl::StatusOr<etcdserverpb::LeaseRevokeResponse> LeaseRevoke(
      const etcdserverpb::LeaseRevokeRequest& request);
  absl::StatusOr<etcdserverpb::LeaseTimeToLiveResponse> LeaseTimeToLive(
      const etcdserverpb::LeaseTimeToLiveRequest& request);
  // Status of one member (no failover: the answer is about that member).
  absl::StatusOr<etcdserverpb::StatusResponse> MemberStatus(size_t endpoint);

  size_t endpoint_count() const { return endpoints_.size(); }
  // host:port of endpoint `i`.
  const std::string& endpoint(size_t i) const { return endpoints_[i].target; }
  // The endpoint the next call starts with.
  size_t PreferredEndpoint() const;
  // Moves the preference past `endpoint` (if it is still the preferred one).
  void MarkFailed(size_t endpoint);

  etcdserverpb::Watch::Stub* watch_stub(size_t i) const {
    return endpoints_[i].watch.get();
  }
  etcdserverpb::Lease::Stub* lease_stub(size_t i) const {
    return endpoints_[i].lease.get();
  }

  const EtcdClientOptions& options() const { return options_; }

  // Waits (bounded by `deadline` and connect_timeout) until the channel to
  // `endpoint` is connected. Calls fail fast on a channel that is not
  // ready (so a dead member costs nothing), but then nothing would drive a
  // pending connection forward: this does. UNAVAILABLE if not connected.
  absl::Status Connect(size_t endpoint, absl::Time deadline);

  // Sets `deadline` on `context`; with `require_leader`, asks etcd to fail
  // the call (or end the stream) when the member has no raft leader instead
  // of letting it hang on a partitioned member.
  static void PrepareContext(grpc::ClientContext* context, absl::Time deadline,
                             bool require_leader);

 private:
  struct Endpoint {
    std::string target;  // host:port
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Maintenance::Stub> maintenance;
  };

  explicit EtcdClient(EtcdClientOptions options);

  // Runs attempt(endpoint, context, response) with failover; see banner.
  template <typename Response, typename Attempt>
  absl::StatusOr<Response> Call(absl::string_view what, const Attempt& attempt,
                                EtcdCallInfo* info);

  // Constant after construction.
  const EtcdClientOptions options_;
  std::vector<Endpoint> endpoints_;

  std::atomic<size_t> preferred_{0};
};

// grpc::Status -> absl::Status with the same code, the message prefixed by
// `what` and the endpoint.
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view what,
                            absl::string_view endpoint);

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_ETCD_CLIENT_H_
