// The gateway series read from its components' counters on every scrape
// (DispatcherStats, DrcStats, RpcServerStats, NlmServiceStats,
// GrantDeliveryStats, NsmServiceStats); the list is in gateway_metrics.h.
//
// Thread-safety: SetSources, ClearSources and Collect may run on any
// thread; Collect reads the sources under the mutex, so once ClearSources
// returns no scrape touches them.
#ifndef LOCKWARDEN_GATEWAY_METRICS_SAMPLED_METRICS_H_
#define LOCKWARDEN_GATEWAY_METRICS_SAMPLED_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace lockwarden::gateway {

class Dispatcher;
class DuplicateRequestCache;
class RpcClient;
class RpcServer;
namespace nlm {
class NlmService;
class GrantDelivery;
}  // namespace nlm
namespace nsm {
class NsmService;
}  // namespace nsm

namespace metrics {

// What a scrape samples. Every pointer is optional and not owned.
struct GatewayMetricsSources {
  struct Service {
    std::string name;  // "nlm", "nsm", "portmap"
    const Dispatcher* dispatcher = nullptr;
    const RpcServer* server = nullptr;
  };
  std::vector<Service> services;
  const DuplicateRequestCache* drc = nullptr;
  const RpcClient* rpc_client = nullptr;
  const nlm::NlmService* nlm = nullptr;
  const nlm::GrantDelivery* grants = nullptr;
  const nsm::NsmService* nsm = nullptr;
};

class SampledMetrics final : public prometheus::Collectable {
 public:
  void SetSources(GatewayMetricsSources sources);
  void ClearSources();

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable absl::Mutex mu_;
  std::optional<GatewayMetricsSources> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace metrics
}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_METRICS_SAMPLED_METRICS_H_
