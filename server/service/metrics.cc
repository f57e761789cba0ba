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

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace lockwarden::service {
namespace {

prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = absl::StrCat("lockwarden_", name);
  f.help = help;
  f.type = type;
  return f;
}

void AddValue(prometheus::MetricFamily* f, double v,
              std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) {
    m.counter.value = v;
  } else {
    m.gauge.value = v;
  }
  f->metric.push_back(std::move(m));
}

// Reads the core's counters and the pipeline's statistics on every scrape.
class StateCollector final : public prometheus::Collectable {
 public:
  explicit StateCollector(CoreRunner* runner) : runner_(runner) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    core::CoreCounters c;
    std::vector<core::GatewayInfo> gateways;
    if (!runner_
             ->ReadNow([&](const core::LockCore& core, int64_t) {
               c = core.Counters();
               gateways = core.ListGateways();
             })
             .ok()) {
      return out;
    }
    auto gauge = [&out](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Gauge));
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
    out.push_back(Family("events_dropped_total", "Oldest events evicted at the outbox limit.",
                         MetricType::Counter));
    AddValue(&out.back(), c.events_dropped);

    auto state = Family("gateway_nsm_state", "NSM state number per gateway identity.",
                        MetricType::Gauge);
    auto grace = Family("gateway_in_grace", "1 while the gateway identity is in grace.",
                        MetricType::Gauge);
    auto pending = Family("gateway_pending_events", "Pending events per gateway identity.",
                          MetricType::Gauge);
    for (const core::GatewayInfo& g : gateways) {
      AddValue(&state, g.nsm_state, {{"gateway", g.name}});
      AddValue(&grace, g.grace_until_ms != 0 ? 1 : 0, {{"gateway", g.name}});
      AddValue(&pending, static_cast<double>(g.pending_events), {{"gateway", g.name}});
    }
    out.push_back(std::move(state));
    out.push_back(std::move(grace));
    out.push_back(std::move(pending));

    const store::CommitPipelineStats s = runner_->PipelineStats();
    auto counter = [&out](const char* name, const char* help, double v) {
      out.push_back(Family(name, help, MetricType::Counter));
      AddValue(&out.back(), v);
    };
    counter("commits_total", "Durable store commits (group commits).", s.commits);
    counter("commit_mutations_total", "Mutations committed.", s.mutations);
    counter("commits_failed_total", "Failed store commits.", s.failed_commits);
    gauge("commit_batch_size_mean", "Mean deltas per durable commit.", s.mean_batch_deltas);
    gauge("commit_batch_size_max", "Largest deltas per durable commit.", s.max_batch_deltas);
    gauge("commit_latency_seconds_last", "Latency of the last durable commit.",
          absl::ToDoubleSeconds(s.last_commit_latency));
    gauge("commit_latency_seconds_p50", "Median durable-commit latency.",
          absl::ToDoubleSeconds(s.p50_commit_latency));
    return out;
  }

 private:
  CoreRunner* const runner_;
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

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Start(const std::string& listen,
                                                                    CoreRunner* runner) {
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
  m->state_ = std::make_shared<StateCollector>(runner);
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("--metrics-listen=", listen, ": cannot listen: ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->state_);
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
