// ReplicationMetrics: Prometheus series of a replicated server's standby
// side, on an HTTP listener of their own (--replication-metrics-listen),
// because the leader's /metrics (--metrics-listen) lives and dies with the
// LockServer it runs while leading: a standby, where the failure detector
// and the warm copy live, has no other /metrics.
//
// Series (read on every scrape, from the sources' thread-safe getters):
//   lockwarden_replication_is_leader                  gauge, 1 while leading
//   lockwarden_replication_probes_total{outcome}      counter: serving, dead,
//                                                     misconfigured
//   lockwarden_replication_probe_misconfigured        gauge: 1 while the last
//                                                     probes were
//                                                     misconfigured (fast
//                                                     failover off)
//   lockwarden_replication_deposes_total              counter: leaders this
//                                                     standby deposed
//   lockwarden_replica_applied_revision               gauge: every etcd
//                                                     revision up to it is in
//                                                     the warm copy (0: none)
//   lockwarden_replica_healthy                        gauge: 1 if the warm
//                                                     copy is usable
//   lockwarden_replica_reloads_total                  counter: reloads of the
//                                                     warm copy (a change
//                                                     without its previous
//                                                     value: etcd compacted)
//
//   ReplicationMetricsSources sources;
//   sources.detector = [&] { return detector->stats(); };
//   auto metrics = ReplicationMetrics::Start("0.0.0.0:9421", sources);
//
// Thread-safety: scrapes run on the exposer's threads and call the sources;
// they must be thread-safe and outlive the metrics.
#ifndef LOCKWARDEN_SERVER_REPLICATION_REPLICATION_METRICS_H_
#define LOCKWARDEN_SERVER_REPLICATION_REPLICATION_METRICS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/replication/failure_detector.h"
#include "server/replication/standby_replica.h"

namespace prometheus {
class Exposer;
class Collectable;
}  // namespace prometheus

namespace lockwarden::replication {

struct ReplicationMetricsSources {
  std::function<bool()> is_leader;
  // nullopt when the detector is off.
  std::function<std::optional<FailureDetectorStats>()> detector;
  // nullopt when there is no warm copy (leader, or none loaded).
  std::function<std::optional<StandbyReplicaStats>()> replica;
};

class ReplicationMetrics {
 public:
  // Listens on `listen` (HOST:PORT; port 0 = ephemeral). UNAVAILABLE if it
  // cannot bind. Every source must be set.
  static absl::StatusOr<std::unique_ptr<ReplicationMetrics>> Start(
      const std::string& listen, ReplicationMetricsSources sources);
  ~ReplicationMetrics();

  int port() const { return port_; }

 private:
  ReplicationMetrics() = default;

  std::shared_ptr<prometheus::Collectable> collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_REPLICATION_METRICS_H_
