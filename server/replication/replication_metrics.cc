#include "server/replication/replication_metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metric_family.h"

namespace lockwarden::replication {
namespace {

prometheus::MetricFamily Family(const char* name, const char* help,
                                prometheus::MetricType type) {
  return MakeMetricFamily(name, help, type);
}

void Add(prometheus::MetricFamily* f, double v,
         std::vector<prometheus::ClientMetric::Label> labels = {}) {
  AddMetricSample(f, v, std::move(labels));
}

class Collector final : public prometheus::Collectable {
 public:
  explicit Collector(ReplicationMetricsSources sources)
      : sources_(std::move(sources)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    out.push_back(Family("lockwarden_replication_is_leader",
                         "1 while this server leads.", MetricType::Gauge));
    Add(&out.back(), sources_.is_leader() ? 1 : 0);
    const std::optional<FailureDetectorStats> d = sources_.detector();
    if (d.has_value()) {
      out.push_back(Family("lockwarden_replication_probes_total",
                           "Health probes of the leader by outcome (dead ones "
                           "count towards deposing it; misconfigured never).",
                           MetricType::Counter));
      const uint64_t serving =
          d->probes - d->failed_probes - d->misconfigured_probes;
      Add(&out.back(), static_cast<double>(serving), {{"outcome", "serving"}});
      Add(&out.back(), static_cast<double>(d->failed_probes),
          {{"outcome", "dead"}});
      Add(&out.back(), static_cast<double>(d->misconfigured_probes),
          {{"outcome", "misconfigured"}});
      out.push_back(
          Family("lockwarden_replication_probe_misconfigured",
                 "1 while the last probes were misconfigured: fast "
                 "failover is off, only the lease replaces a hung leader.",
                 MetricType::Gauge));
      Add(&out.back(), d->misconfigured ? 1 : 0);
      out.push_back(Family("lockwarden_replication_deposes_total",
                           "Leaders this server deposed after failed probes.",
                           MetricType::Counter));
      Add(&out.back(), static_cast<double>(d->deposes));
    }
    const std::optional<StandbyReplicaStats> r = sources_.replica();
    out.push_back(
        Family("lockwarden_replica_applied_revision",
               "Every etcd revision up to this one is in the warm copy "
               "(0: no copy).",
               MetricType::Gauge));
    Add(&out.back(),
        r.has_value() ? static_cast<double>(r->caught_up_revision) : 0);
    out.push_back(Family("lockwarden_replica_healthy",
                         "1 if the warm copy is usable for a takeover.",
                         MetricType::Gauge));
    Add(&out.back(), r.has_value() && r->health.ok() ? 1 : 0);
    out.push_back(Family("lockwarden_replica_reloads_total",
                         "Reloads of the warm copy from etcd because a change "
                         "came without its previous value (etcd compacted "
                         "it); starts again at 0 with a new copy.",
                         MetricType::Counter));
    Add(&out.back(), r.has_value() ? static_cast<double>(r->reloads) : 0);
    return out;
  }

 private:
  const ReplicationMetricsSources sources_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicationMetrics>> ReplicationMetrics::Start(
    const std::string& listen, ReplicationMetricsSources sources) {
  if (!sources.is_leader || !sources.detector || !sources.replica) {
    return absl::InvalidArgumentError(
        "replication metrics: every source is required");
  }
  std::unique_ptr<ReplicationMetrics> m(new ReplicationMetrics());
  m->collector_ = std::make_shared<Collector>(std::move(sources));
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--replication-metrics-listen=", listen,
                     ": cannot listen: ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->collector_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

ReplicationMetrics::~ReplicationMetrics() { exposer_.reset(); }

}  // namespace lockwarden::replication
