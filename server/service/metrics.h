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
// Scrape cost: one CoreRunner::ReadNow for counters and the gateway list
// (O(gateways)), no table scans.
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
#include "server/service/core_runner.h"

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

class ServerMetrics {
 public:
  // Listens on `listen` (HOST:PORT; port 0 = ephemeral). `runner` is not
  // owned and must outlive the metrics. UNAVAILABLE if it cannot bind.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Start(const std::string& listen,
                                                              CoreRunner* runner);
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
