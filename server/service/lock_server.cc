#include "server/service/lock_server.h"

#include <unistd.h>

#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "lockwarden-server";
  return buf;
}

// The services whose health follows the lock state's health.
constexpr const char* kServiceNames[] = {
    "", "lockwarden.v1.LockService", "lockwarden.v1.MonitorService",
    "lockwarden.v1.AdminService"};

}  // namespace

absl::StatusOr<core::LockCore> RecoverCore(const store::StateStore& store,
                                           const core::CoreOptions& options,
                                           v1::RecoveryStats* stats,
                                           const Clock* clock) {
  const absl::Time start = absl::Now();
  auto kvs = store.LoadAll();
  if (!kvs.ok()) {
    return absl::Status(kvs.status().code(),
                        absl::StrCat("recovery: loading the store: ",
                                     kvs.status().message()));
  }
  auto core = core::LockCore::Rebuild(options, *kvs);
  if (!core.ok()) {
    return absl::Status(core.status().code(),
                        absl::StrCat("recovery: rebuilding the lock core from ",
                                     kvs->size(), " keys: ", core.status().message()));
  }
  if (absl::Status s = core->CheckInvariants(); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("recovery: persisted state breaks an invariant: ", s.message()));
  }
  const core::CoreCounters c = core->Counters();
  const absl::Duration took = absl::Now() - start;
  stats->set_recovery_time_ms(absl::ToInt64Milliseconds(took));
  stats->set_keys_loaded(kvs->size());
  stats->set_locks_loaded(c.locks);
  stats->set_shares_loaded(c.shares);
  stats->set_waiters_loaded(c.waiters);
  stats->set_monitors_loaded(c.monitors);
  stats->set_clients_loaded(c.clients);
  stats->set_gateways_loaded(c.gateways);
  stats->set_events_loaded(c.events);
  SetTimestampMs(clock->NowMs(), stats->mutable_completed_at());
  LogEvent(LogLevel::kInfo, "recovery_done",
           {{"ms", absl::ToDoubleMilliseconds(took)},
            {"keys", kvs->size()},
            {"locks", c.locks},
            {"waiters", c.waiters},
            {"shares", c.shares},
            {"monitors", c.monitors},
            {"clients", c.clients},
            {"gateways", c.gateways},
            {"events", c.events},
            {"backend", store.BackendName()}});
  return core;
}

absl::StatusOr<std::unique_ptr<LockServer>> LockServer::Start(
    const LockServerOptions& options, std::unique_ptr<store::StateStore> store,
    const Clock* clock) {
  return StartWithCore(options, std::move(store), std::nullopt, clock);
}

absl::StatusOr<std::unique_ptr<LockServer>> LockServer::StartWithCore(
    const LockServerOptions& options, std::unique_ptr<store::StateStore> store,
    std::optional<core::LockCore> warm_core, const Clock* clock) {
  std::unique_ptr<LockServer> s(new LockServer);
  s->options_ = options;
  if (s->options_.server_id.empty()) s->options_.server_id = HostName();
  // With metrics on, the pipeline commits through a store that times every
  // durable commit (metrics.h).
  MeteredStateStore* metered = nullptr;
  if (!options.metrics_listen.empty()) {
    auto wrapped = std::make_unique<MeteredStateStore>(std::move(store));
    metered = wrapped.get();
    store = std::move(wrapped);
  }
  s->store_ = std::move(store);

  absl::StatusOr<core::LockCore> core =
      warm_core.has_value() ? absl::StatusOr<core::LockCore>(*std::move(warm_core))
                            : RecoverCore(*s->store_, options.core, &s->recovery_, clock);
  if (!core.ok()) return core.status();

  s->pipeline_ = std::make_unique<store::CommitPipeline>(s->store_.get(),
                                                         options.pipeline);
  s->runner_ = std::make_unique<CoreRunner>(*std::move(core), s->pipeline_.get(), clock);
  s->lock_service_ = std::make_unique<LockServiceImpl>(s->runner_.get());
  s->monitor_service_ = std::make_unique<MonitorServiceImpl>(s->runner_.get());
  ServerInfo info;
  info.server_id = s->options_.server_id;
  info.listen_address = options.listen;
  info.version = options.version;
  info.started_ms = clock->NowMs();
  info.recovery = s->recovery_;
  s->admin_service_ = std::make_unique<AdminServiceImpl>(
      s->runner_.get(), s->store_.get(), clock, std::move(info),
      AdminAuthorizer(options.admin_auth), options.leadership);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen,
                           options.credentials != nullptr
                               ? options.credentials
                               : grpc::InsecureServerCredentials(),
                           &s->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // Detect dead gateways' streams within ~30 s even when idle.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  // First: gateway activity, streams and drain (it may rewrite a request).
  interceptors.push_back(s->admin_service_->activity()->NewInterceptorFactory());
  if (!options.metrics_listen.empty()) {
    MetricsSources sources;
    sources.runner = s->runner_.get();
    sources.activity = s->admin_service_->activity();
    sources.leadership = options.leadership;
    sources.store = metered;
    auto metrics = ServerMetrics::Start(options.metrics_listen, sources);
    if (!metrics.ok()) return metrics.status();
    s->metrics_ = *std::move(metrics);
    interceptors.push_back(s->metrics_->NewInterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(s->lock_service_.get());
  builder.RegisterService(s->monitor_service_.get());
  builder.RegisterService(s->admin_service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or invalid)"));
  }
  s->admin_service_->SetBoundPort(s->port_);
  LockServer* raw = s.get();
  s->runner_->SetHealthCallback([raw](bool serving) { raw->SetServing(serving); });
  s->runner_->Start();
  // Not serving from a store that holds an interrupted snapshot import.
  s->SetServing(s->runner_->Health().ok());
  LogEvent(LogLevel::kInfo, "serving",
           {{"listen", options.listen},
            {"port", s->port_},
            {"server_id", s->options_.server_id},
            {"backend", s->store_->BackendName()},
            {"grace_period_ms", options.core.grace_period_ms},
            {"grant_timeout_ms", options.core.grant_timeout_ms}});
  return s;
}

void LockServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  for (const char* name : kServiceNames) health->SetServingStatus(name, serving);
  health->SetServingStatus(kLeadershipHealthService,
                           serving || runner_->InterruptedImportOnly());
}

void LockServer::SetNotServing() {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  for (const char* name : kServiceNames) health->SetServingStatus(name, false);
  health->SetServingStatus(kLeadershipHealthService, false);
}

void LockServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;  // Never started serving.
  shut_down_ = true;
  LogEvent(LogLevel::kInfo, "shutdown_begin", {});
  SetNotServing();
  lock_service_->CloseSessions();
  // In-flight RPCs finish (their commits complete) within the deadline; new
  // ones are refused.
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(options_.shutdown_timeout_ms));
  runner_->Stop();
  pipeline_->Shutdown();  // Drains every queued commit.
  server_->Wait();
  const store::CommitPipelineStats stats = pipeline_->Stats();
  LogEvent(LogLevel::kInfo, "shutdown_done",
           {{"commits", stats.commits}, {"failed_commits", stats.failed_commits}});
}

LockServer::~LockServer() {
  Shutdown();
  // Destroy in dependency order: gRPC server before the services it calls.
  server_.reset();
  admin_service_.reset();
  metrics_.reset();
  monitor_service_.reset();
  lock_service_.reset();
  runner_.reset();
  pipeline_.reset();
  store_.reset();
}

}  // namespace lockwarden::service
