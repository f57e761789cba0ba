// Prometheus metrics of lockwarden-server, served over HTTP at
// http://<--metrics-listen>/metrics (prometheus-cpp's exposer).
//
// Series (all prefixed lockwarden_):
//   grpc_requests_total{method,code}              counter, every RPC
//   grpc_request_duration_seconds{method}         histogram, every RPC
//   locks, waiters, shares, monitors, clients, gateways, pending_events,
//   unconfirmed_grants                            gauges, read on scrape
//   gateway_nsm_state{gateway}, gateway_in_grace{gateway},
//   gateway_pending_events{gateway}               gauges, read on scrape
//   commits_total, commit_mutations_total, commits_failed_total,
//   commit_batch_size_mean, commit_batch_size_max,
//   commit_latency_seconds_last, commit_latency_seconds_p50
//                                                 from CommitPipelineStats
//   events_dropped_total                          outbox evictions
//   store_commit_duration_seconds                 histogram: durable-commit
//                                                 latency (StateStore::Commit)
//   store_commit_mutations                        histogram: mutations per commit
//   store_commits_failed_total                    failed StateStore commits
//   gateway_oldest_event_age_seconds{gateway}     event-stream lag: age of the
//                                                 oldest unacknowledged event
//   gateway_draining{gateway}                     1 while drained
//   event_streams{kind}                           open WatchGrants /
//                                                 WatchNotifications streams
//   grant_acks_total{outcome}                     delivered/refused/undeliverable
//   notification_acks_total{outcome}              SM_NOTIFY and status callback
//                                                 deliveries: delivered/failed
//   drained_blocking_locks_total                  blocking LOCKs answered at
//                                                 once because of a drain
//   is_leader, fencing_token, leader_changes_total
//                                                 leadership (LeadershipControl)
// Scrape cost: one CoreRunner::ReadNow for counters, the gateway list and the
// oldest event per gateway (O(gateways)), no table scans.
//
// Thread-safety: every method may be called from any thread; the exposer
// serves scrapes on its own threads.
#ifndef LOCKWARDEN_SERVER_SERVICE_METRICS_H_
#define LOCKWARDEN_SERVER_SERVICE_METRICS_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/statusor.h"
#include "server/service/admin_activity.h"
#include "server/service/admin_service.h"
#include "server/service/core_runner.h"
#include "server/store/state_store.h"

namespace prometheus {
class Exposer;
class Registry;
class Collectable;
template <typename T>
class Family;
class Counter;
class Histogram;
}  // namespace prometheus

namespace lockwarden::service {

// A StateStore that forwards to `inner` and records every Commit's latency
// and size (the durable-commit latency and batch size series). Wrap the
// store the commit pipeline writes through.
class MeteredStateStore final : public store::StateStore {
 public:
  explicit MeteredStateStore(std::unique_ptr<store::StateStore> inner);
  ~MeteredStateStore() override;

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override {
    return inner_->Scan(prefix, fn);
  }
  absl::StatusOr<std::optional<std::string>> Get(absl::string_view key) const override {
    return inner_->Get(key);
  }
  uint64_t FencingToken() const override { return inner_->FencingToken(); }
  std::string BackendName() const override { return inner_->BackendName(); }
  absl::Status Health() const override { return inner_->Health(); }
  store::StoreLimits Limits() const override { return inner_->Limits(); }

  // The histograms, for ServerMetrics to expose.
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::unique_ptr<store::StateStore> inner_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram* latency_ = nullptr;
  prometheus::Histogram* mutations_ = nullptr;
  prometheus::Counter* failed_ = nullptr;
};

// What the metrics read on scrape. Only `runner` is required; the others
// are not owned and, when set, must outlive the metrics.
struct MetricsSources {
  CoreRunner* runner = nullptr;
  const GatewayActivity* activity = nullptr;
  const LeadershipControl* leadership = nullptr;  // null: single node leader.
  const MeteredStateStore* store = nullptr;
};

class ServerMetrics {
 public:
  // Listens on `listen` (HOST:PORT; port 0 = ephemeral). UNAVAILABLE if it
  // cannot bind.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Start(const std::string& listen,
                                                              MetricsSources sources);
  ~ServerMetrics();

  // The bound HTTP port.
  int port() const { return port_; }

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators().
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  // Counts one finished RPC.
  void RecordRequest(const std::string& method, grpc::StatusCode code, double seconds);

 private:
  ServerMetrics() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> state_;
  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* latency_ = nullptr;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_METRICS_H_
