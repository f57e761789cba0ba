#include "server/service/metrics.h"

#include <chrono>
#include <exception>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metric_family.h"

namespace lockwarden::service {
namespace {

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  return MakeMetricFamily(absl::StrCat("lockwarden_", name), help, type);
}

void AddValue(prometheus::MetricFamily* f, double v,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  AddMetricSample(f, v, std::move(labels));
}

// Reads the core's counters, the pipeline's statistics, activity and
// leadership on every scrape.
class StateCollector final : public prometheus::Collectable {
 public:
  explicit StateCollector(MetricsSources sources) : src_(sources) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    core::CoreCounters c;
    std::vector<core::GatewayInfo> gateways;
    std::vector<int64_t> oldest_event_ms;  // Per gateway; 0 = none pending.
    int64_t now_ms = 0;  // The service's clock, which stamps the events.
    if (!src_.runner
             ->ReadNow([&](const core::LockCore& core, int64_t now) {
               now_ms = now;
               c = core.Counters();
               gateways = core.ListGateways();
               for (const core::GatewayInfo& g : gateways) {
                 std::vector<core::Event> first = core.PendingEvents(g.name, 0, 1);
                 oldest_event_ms.push_back(first.empty() ? 0 : first.front().created_ms);
               }
             })
             .ok()) {
      return out;
    }
    auto gauge = [&out](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Gauge));
      AddValue(&out.back(), v);
    };
    auto counter = [&out](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Counter));
      AddValue(&out.back(), v);
    };
    gauge("locks", "Locks held.", c.locks);
    gauge("waiters", "Blocked lock requests queued.", c.waiters);
    gauge("shares", "Share reservations held.", c.shares);
    gauge("monitors", "NSM monitor registrations.", c.monitors);
    gauge("clients", "Clients with a recorded NSM state.", c.clients);
    gauge("gateways", "Gateway identities.", c.gateways);
    gauge("pending_events", "Unacknowledged grant and notification events.", c.events);
    gauge("unconfirmed_grants", "Grants sent to waiters, not yet acknowledged.",
          c.unconfirmed_grants);
    counter("events_dropped_total", "Oldest events evicted at the outbox limit.",
            c.events_dropped);
    gauge("dedup_entries", "Remembered request ids (request dedup ring).",
          c.dedup_entries);
    gauge("dedup_records_to_migrate",
          "Persisted dedup records not yet moved into the current ring "
          "(after an upgrade or a dedup limit change; falls to 0).",
          c.dedup_records_to_migrate);

    auto state = Family("gateway_nsm_state", "NSM state number per gateway identity.",
                        MetricType::Gauge);
    auto grace = Family("gateway_in_grace", "1 while the gateway identity is in grace.",
                        MetricType::Gauge);
    auto pending = Family("gateway_pending_events", "Pending events per gateway identity.",
                          MetricType::Gauge);
    auto lag = Family("gateway_oldest_event_age_seconds",
                      "Event-stream lag: age of the oldest unacknowledged event (0: none).",
                      MetricType::Gauge);
    auto draining = Family("gateway_draining", "1 while the gateway identity is drained.",
                           MetricType::Gauge);
    for (size_t i = 0; i < gateways.size(); ++i) {
      const core::GatewayInfo& g = gateways[i];
      const std::vector<prometheus::ClientMetric::Label> label = {{"gateway", g.name}};
      AddValue(&state, g.nsm_state, label);
      AddValue(&grace, g.grace_until_ms != 0 ? 1 : 0, label);
      AddValue(&pending, static_cast<double>(g.pending_events), label);
      const int64_t oldest = oldest_event_ms[i];
      AddValue(&lag, oldest == 0 ? 0.0 : std::max<int64_t>(0, now_ms - oldest) / 1000.0, label);
      AddValue(&draining, g.draining ? 1 : 0, label);
    }
    out.push_back(std::move(state));
    out.push_back(std::move(grace));
    out.push_back(std::move(pending));
    out.push_back(std::move(lag));
    out.push_back(std::move(draining));

    const store::CommitPipelineStats s = src_.runner->PipelineStats();
    counter("commits_total", "Durable store commits (group commits).", s.commits);
    counter("commit_mutations_total", "Mutations committed.", s.mutations);
    counter("commits_failed_total", "Failed store commits.", s.failed_commits);
    gauge("commit_batch_size_mean", "Mean deltas per durable commit.", s.mean_batch_deltas);
    gauge("commit_batch_size_max", "Largest deltas per durable commit.", s.max_batch_deltas);
    gauge("commit_latency_seconds_last", "Latency of the last durable commit.",
          absl::ToDoubleSeconds(s.last_commit_latency));
    gauge("commit_latency_seconds_p50", "Median durable-commit latency.",
          absl::ToDoubleSeconds(s.p50_commit_latency));

    if (src_.activity != nullptr) CollectActivity(*src_.activity, &out);
    CollectLeadership(&out);
    return out;
  }

 private:
  static void CollectActivity(const GatewayActivity& a,
                              std::vector<prometheus::MetricFamily>* out) {
    using prometheus::MetricType;
    auto streams = Family("event_streams", "Open gateway event streams.", MetricType::Gauge);
    AddValue(&streams, a.StreamCount(StreamKind::kGrants), {{"kind", "grants"}});
    AddValue(&streams, a.StreamCount(StreamKind::kNotifications), {{"kind", "notifications"}});
    AddValue(&streams, a.StreamCount(StreamKind::kSession), {{"kind", "session"}});
    out->push_back(std::move(streams));
    const DeliveryCounts d = a.Deliveries();
    auto grants = Family("grant_acks_total", "GRANTED deliveries acknowledged, by outcome.",
                         MetricType::Counter);
    AddValue(&grants, d.grants_delivered, {{"outcome", "delivered"}});
    AddValue(&grants, d.grants_refused, {{"outcome", "refused"}});
    AddValue(&grants, d.grants_failed, {{"outcome", "undeliverable"}});
    out->push_back(std::move(grants));
    auto notes = Family("notification_acks_total",
                        "SM_NOTIFY and status-callback deliveries reported, by outcome.",
                        MetricType::Counter);
    AddValue(&notes, d.notifications_delivered, {{"outcome", "delivered"}});
    AddValue(&notes, d.notifications_failed, {{"outcome", "failed"}});
    out->push_back(std::move(notes));
    out->push_back(Family("drained_blocking_locks_total",
                          "Blocking LOCKs answered at once because their gateway is drained.",
                          MetricType::Counter));
    AddValue(&out->back(), d.drained_blocking_locks);
  }

  void CollectLeadership(std::vector<prometheus::MetricFamily>* out) const {
    using prometheus::MetricType;
    const bool leader = src_.leadership == nullptr ||
                        src_.leadership->Role() == v1::SERVER_ROLE_LEADER;
    out->push_back(Family("is_leader", "1 while this server is the serving leader.",
                          MetricType::Gauge));
    AddValue(&out->back(), leader ? 1 : 0);
    out->push_back(Family("leader_changes_total",
                          "Leadership transitions (elected or lost) of this process.",
                          MetricType::Counter));
    AddValue(&out->back(),
             src_.leadership == nullptr ? 0 : src_.leadership->LeaderChanges());
    if (src_.store != nullptr) {
      out->push_back(Family("fencing_token",
                            "Store epoch (fencing token) this leader writes under.",
                            MetricType::Gauge));
      AddValue(&out->back(), static_cast<double>(src_.store->FencingToken()));
    }
  }

  const MetricsSources src_;
};

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->RecordRequest(method_, methods->GetSendStatus().error_code(), seconds);
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(metrics_, info->method() != nullptr ? info->method() : "");
  }

 private:
  ServerMetrics* const metrics_;
};

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "OTHER";
  }
}

}  // namespace

MeteredStateStore::MeteredStateStore(std::unique_ptr<store::StateStore> inner)
    : inner_(std::move(inner)), registry_(std::make_shared<prometheus::Registry>()) {
  // Commit latency buckets from 100 us (RocksDB fsync on fast disks) to
  // 10 s (an etcd quorum losing its leader).
  static const prometheus::Histogram::BucketBoundaries kLatency = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  // Mutations per commit up to the RocksDB batch limit (4096).
  static const prometheus::Histogram::BucketBoundaries kSize = {
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  latency_ = &prometheus::BuildHistogram()
                  .Name("lockwarden_store_commit_duration_seconds")
                  .Help("Durable-commit latency: one StateStore::Commit (group commit).")
                  .Register(*registry_)
                  .Add({}, kLatency);
  mutations_ = &prometheus::BuildHistogram()
                    .Name("lockwarden_store_commit_mutations")
                    .Help("Commit batch size: mutations per durable commit.")
                    .Register(*registry_)
                    .Add({}, kSize);
  failed_ = &prometheus::BuildCounter()
                 .Name("lockwarden_store_commits_failed_total")
                 .Help("StateStore commits that returned an error.")
                 .Register(*registry_)
                 .Add({});
}

MeteredStateStore::~MeteredStateStore() = default;

absl::Status MeteredStateStore::Commit(const Delta& batch) {
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = inner_->Commit(batch);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (s.ok()) {
    latency_->Observe(seconds);
    mutations_->Observe(static_cast<double>(batch.size()));
  } else {
    failed_->Increment();
  }
  return s;
}

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Start(const std::string& listen,
                                                                    MetricsSources sources) {
  if (sources.runner == nullptr) {
    return absl::InvalidArgumentError("metrics: a CoreRunner is required");
  }
  std::unique_ptr<ServerMetrics> m(new ServerMetrics);
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->requests_ = &prometheus::BuildCounter()
                      .Name("lockwarden_grpc_requests_total")
                      .Help("gRPC requests finished, by method and status code.")
                      .Register(*m->registry_);
  m->latency_ = &prometheus::BuildHistogram()
                     .Name("lockwarden_grpc_request_duration_seconds")
                     .Help("gRPC request latency by method (streams: their lifetime).")
                     .Register(*m->registry_);
  m->state_ = std::make_shared<StateCollector>(sources);
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen=", listen, ": cannot listen: ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->state_);
  if (sources.store != nullptr) m->exposer_->RegisterCollectable(sources.store->registry());
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

ServerMetrics::~ServerMetrics() { exposer_.reset(); }

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::NewInterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(this);
}

void ServerMetrics::RecordRequest(const std::string& method, grpc::StatusCode code,
                                  double seconds) {
  // Buckets from 100 us to 10 s: a fsync'd commit is ~1 ms, a grace-blocked
  // retry or a slow etcd quorum seconds.
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  requests_->Add({{"method", method}, {"code", CodeName(code)}}).Increment();
  latency_->Add({{"method", method}}, kBuckets).Observe(seconds);
}

}  // namespace lockwarden::service
