#include "server/service/ha_server.h"

#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "server/replication/step_down_record.h"
#include "server/service/tls.h"
#include "server/store/etcd_store.h"

namespace lockwarden::service {
namespace {

constexpr const char* kLockServiceNames[] = {
    "lockwarden.v1.LockService", "lockwarden.v1.MonitorService",
    "lockwarden.v1.AdminService"};
// A standby without a healthy replica retries loading one this often.
constexpr absl::Duration kReplicaCheckInterval = absl::Seconds(1);
// A standby's GetServerStatus waits at most this long for its watch to
// confirm it is caught up with the store before it reports the lag.
constexpr absl::Duration kStatusProgressWait = absl::Milliseconds(200);
// How long a standby trusts its cached leader address.
constexpr absl::Duration kLeaderAddressCacheTtl = absl::Milliseconds(300);

}  // namespace

// A standby answers AdminService.GetServerStatus itself (its own role,
// leader, warm copy and probes: what an operator needs to see per server)
// and every other call with a redirect to the leader. grpc.health.v1 is
// the server's own health service (the process SERVING, the lock services
// NOT_SERVING).
class HaLockServer::StandbyService final : public grpc::CallbackGenericService {
 public:
  explicit StandbyService(HaLockServer* owner) : owner_(owner) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    if (ctx->method() == kLocalStatusMethod) {
      // Reads etcd (leader, store revision) within the client's bounded
      // call timeout, as the redirect below does for the leader address.
      return new LocalStatus(owner_->StandbyStatus());
    }
    const std::string leader = owner_->CachedLeaderAddress();
    return new Redirect(ctx, leader);
  }

 private:
  static constexpr char kLocalStatusMethod[] =
      "/lockwarden.v1.AdminService/GetServerStatus";

  class Redirect final : public grpc::ServerGenericBidiReactor {
   public:
    Redirect(grpc::GenericCallbackServerContext* ctx, const std::string& leader) {
      if (leader.empty()) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "standby: no leader elected yet; retry shortly"));
        return;
      }
      ctx->AddTrailingMetadata(kLeaderAddressMetadata, leader);
      Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          absl::StrCat("not the leader; the leader is ", leader)));
    }
    void OnDone() override { delete this; }
  };

  // Reads the (empty) request, writes `response` and finishes.
  class LocalStatus final : public grpc::ServerGenericBidiReactor {
   public:
    explicit LocalStatus(const v1::GetServerStatusResponse& response) {
      bool own = false;
      if (!grpc::SerializationTraits<v1::GetServerStatusResponse>::Serialize(
               response, &out_, &own)
               .ok()) {
        Finish(grpc::Status(grpc::StatusCode::INTERNAL,
                            "status: cannot serialize"));
        return;
      }
      StartRead(&in_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "status: no request"));
        return;
      }
      StartWriteAndFinish(&out_, grpc::WriteOptions(), grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer in_;
    grpc::ByteBuffer out_;
  };

  HaLockServer* const owner_;
};

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeProbeCredentials(
    const ProbeTlsOptions& options) {
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "--probe-tls-cert and --probe-tls-key must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPemFile("--probe-tls-ca", options.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPemFile("--probe-tls-cert", options.cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadPemFile("--probe-tls-key", options.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

HaLockServer::HaLockServer(HaServerOptions options, const Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      started_ms_(clock->NowMs()) {}

absl::StatusOr<std::unique_ptr<HaLockServer>> HaLockServer::Start(
    HaServerOptions options, const Clock* clock) {
  if (options.advertise_address.empty()) {
    options.advertise_address = options.server.listen;
  }
  if (options.server.server_id.empty()) {
    return absl::InvalidArgumentError("--server-id: required with --store=etcd");
  }
  std::unique_ptr<HaLockServer> s(new HaLockServer(std::move(options), clock));
  store::EtcdClientOptions client_options;
  client_options.endpoints = s->options_.etcd_endpoints;
  auto etcd = store::EtcdClient::Create(client_options);
  if (!etcd.ok()) return etcd.status();
  s->etcd_ = *std::move(etcd);

  replication::LeaderElectionOptions election;
  election.server_id = s->options_.server.server_id;
  election.advertised_address = s->options_.advertise_address;
  election.election_prefix = s->options_.election_prefix;
  election.lease_ttl = s->options_.lease_ttl;
  HaLockServer* raw = s.get();
  replication::LeaderElection::Callbacks callbacks;
  callbacks.on_elected = [raw](const replication::Leadership& l) {
    raw->Push(Transition::kElected, l);
  };
  callbacks.on_lost = [raw](const replication::Leadership& l, const absl::Status& why) {
    LogEvent(LogLevel::kWarn, "leadership_lost",
             {{"key", l.key}, {"fencing_token", l.create_revision}, {"why", why}});
    raw->Push(Transition::kLost, l);
  };
  auto e = replication::LeaderElection::Create(s->etcd_.get(), election, callbacks);
  if (!e.ok()) return e.status();
  s->election_ = *std::move(e);
  if (absl::Status st = s->StartStandby(); !st.ok()) return st;
  s->loop_ = std::thread([raw] { raw->Loop(); });
  s->election_->Start();
  if (absl::Status st = s->StartDetector(); !st.ok()) {
    s->Shutdown();
    return st;
  }
  if (absl::Status st = s->StartMetrics(); !st.ok()) {
    s->Shutdown();
    return st;
  }
  LogEvent(LogLevel::kInfo, "ha_started",
           {{"server_id", s->options_.server.server_id},
            {"advertise", s->options_.advertise_address},
            {"lease_ttl_ms", absl::ToInt64Milliseconds(s->options_.lease_ttl)},
            {"fast_failover", s->detector_ != nullptr},
            {"probe_interval_ms",
             absl::ToInt64Milliseconds(s->options_.probe_interval)},
            {"probe_timeout_ms",
             absl::ToInt64Milliseconds(s->options_.probe_timeout)},
            {"probe_failures", s->options_.probe_failures},
            {"probe_min_unresponsive_ms",
             absl::ToInt64Milliseconds(s->options_.probe_min_unresponsive)},
            {"probe_tls", s->options_.probe_credentials != nullptr}});
  return s;
}

HaLockServer::~HaLockServer() { Shutdown(); }

void HaLockServer::Shutdown() {
  metrics_.reset();
  if (!loop_.joinable()) return;
  if (detector_ != nullptr) detector_->Stop();
  election_->Stop();  // Resigns: a standby takes over without waiting for the TTL.
  Push(Transition::kStop);
  loop_.join();
}

absl::Status HaLockServer::StartDetector() {
  if (!options_.fast_failover) return absl::OkStatus();
  if (options_.listener_tls && options_.probe_credentials == nullptr) {
    LogEvent(LogLevel::kWarn, "fast_failover_off",
             {{"why", "TLS listener without probe credentials: only the lease "
                      "replaces a dead leader"}});
    return absl::OkStatus();
  }
  replication::FailureDetectorOptions detector;
  detector.own_server_id = options_.server.server_id;
  detector.probe_interval = options_.probe_interval;
  detector.probe_timeout = options_.probe_timeout;
  detector.failures_to_depose = options_.probe_failures;
  detector.min_unresponsive_span = options_.probe_min_unresponsive;
  detector.credentials = options_.probe_credentials;
  detector.tls_server_name = options_.probe_tls_server_name;
  detector.health_service = kLeadershipHealthService;
  auto d = replication::LeaderFailureDetector::Start(election_.get(), detector);
  if (!d.ok()) return d.status();
  detector_ = *std::move(d);
  return absl::OkStatus();
}

absl::Status HaLockServer::StartMetrics() {
  if (options_.replication_metrics_listen.empty()) return absl::OkStatus();
  replication::ReplicationMetricsSources sources;
  sources.is_leader = [this] { return IsLeader(); };
  // detector_ is set before this and never replaced.
  sources.detector =
      [this]() -> std::optional<replication::FailureDetectorStats> {
    if (detector_ == nullptr) return std::nullopt;
    return detector_->stats();
  };
  sources.replica =
      [this]() -> std::optional<replication::StandbyReplicaStats> {
    std::shared_ptr<replication::StandbyReplica> copy;
    {
      absl::MutexLock lock(&mu_);
      copy = published_replica_;
    }
    if (copy == nullptr) return std::nullopt;
    return copy->stats();
  };
  auto metrics = replication::ReplicationMetrics::Start(
      options_.replication_metrics_listen, sources);
  if (!metrics.ok()) return metrics.status();
  metrics_ = *std::move(metrics);
  LogEvent(LogLevel::kInfo, "replication_metrics_listening",
           {{"listen", options_.replication_metrics_listen},
            {"port", metrics_->port()}});
  return absl::OkStatus();
}

bool HaLockServer::IsLeader() const {
  absl::MutexLock lock(&mu_);
  return is_leader_;
}

void HaLockServer::Push(Transition t, replication::Leadership leadership) {
  absl::MutexLock lock(&mu_);
  queue_.emplace_back(t, std::move(leadership));
}

HaLockServer::CachedLeader HaLockServer::CachedLeaderInfo() const {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() - leader_cached_at_ < kLeaderAddressCacheTtl)
      return leader_cache_;
  }
  absl::StatusOr<replication::LeaderInfo> leader = election_->CurrentLeader();
  absl::MutexLock lock(&mu_);
  if (leader.ok() && leader->address == options_.advertise_address &&
      !is_leader_) {
    // Our own key, but we do not serve: just resigned (the key goes a
    // moment later) or not serving yet. Never redirect a client to
    // ourselves; "no leader yet" makes it retry, and nothing is cached.
    leader_cached_at_ = absl::InfinitePast();
    return CachedLeader();
  }
  leader_cache_ = leader.ok()
                      ? CachedLeader{leader->address, leader->create_revision}
                      : CachedLeader();
  leader_cached_at_ = absl::Now();
  return leader_cache_;
}

std::string HaLockServer::CachedLeaderAddress() const {
  return CachedLeaderInfo().address;
}

uint64_t HaLockServer::LeaderChanges() const {
  absl::MutexLock lock(&mu_);
  return leader_changes_;
}

v1::ServerRole HaLockServer::Role() const {
  return IsLeader() ? v1::SERVER_ROLE_LEADER : v1::SERVER_ROLE_STANDBY;
}

std::string HaLockServer::LeaderAddress() const {
  if (IsLeader()) return options_.advertise_address;
  return CachedLeaderAddress();
}

absl::StatusOr<std::string> HaLockServer::StepDown(
    const std::string& reason, const std::string& request_id) {
  const std::optional<replication::Leadership> was = election_->leadership();
  if (!IsLeader() || !was.has_value()) {
    const std::string leader = CachedLeaderAddress();
    return absl::FailedPreconditionError(absl::StrCat(
        "step-down: this server is not the leader",
        leader.empty() ? "" : absl::StrCat("; the leader is ", leader)));
  }
  if (request_id.empty()) {
    // Not deduplicated: a retry after a failover would depose the successor.
    LogEvent(LogLevel::kWarn, "step_down_without_request_id",
             {{"reason", reason}});
  } else {
    absl::StatusOr<replication::StepDownClaimResult> claim =
        replication::ClaimStepDown(etcd_.get(), options_.step_down_prefix,
                                   request_id, *was);
    if (!claim.ok()) return claim.status();
    if (claim->claim == replication::StepDownClaim::kAlreadyHonored) {
      // A retry of a step-down an earlier leader already made: this leader
      // is its successor (or a later one) and stays.
      LogEvent(LogLevel::kInfo, "step_down_already_done",
               {{"request_id", request_id},
                {"honored_by_token", claim->honored_by_token},
                {"fencing_token", was->create_revision}});
      return options_.advertise_address;
    }
  }
  LogEvent(LogLevel::kWarn, "step_down_requested",
           {{"reason", reason}, {"fencing_token", was->create_revision}});
  // Revokes the lease: the key goes at once and the next candidate in line
  // is woken by its watch. on_lost queues the local step-down, which
  // drains this very RPC, so the wait below must stay short.
  if (absl::Status s = election_->Resign(); !s.ok()) return s;
  const absl::Time deadline = absl::Now() + kStepDownSuccessorWait;
  while (absl::Now() < deadline) {
    absl::StatusOr<replication::LeaderInfo> now = election_->CurrentLeader();
    if (now.ok() && now->create_revision != was->create_revision) {
      LogEvent(LogLevel::kInfo, "step_down_done",
               {{"successor", now->server_id}, {"fencing_token", now->create_revision}});
      return now->address;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return std::string();  // Resigned; no successor reported in time.
}

absl::Status HaLockServer::StartStandby() {
  if (standby_ != nullptr) return absl::OkStatus();
  grpc::EnableDefaultHealthCheckService(true);
  // gRPC binds a callback generic service to one server for good: every
  // standby period gets its own.
  standby_service_ = std::make_unique<StandbyService>(this);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.server.listen,
                           options_.server.credentials != nullptr
                               ? options_.server.credentials
                               : grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterCallbackGenericService(standby_service_.get());
  standby_ = builder.BuildAndStart();
  if (standby_ == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.server.listen));
  }
  if (auto* health = standby_->GetHealthCheckService()) {
    health->SetServingStatus("", true);  // The process is alive.
    // A standby found at the leader key's address (it restarted before its
    // old lease ran out) is not the leader: the probe may depose that key.
    health->SetServingStatus(kLeadershipHealthService, false);
    for (const char* name : kLockServiceNames) health->SetServingStatus(name, false);
  }
  LogEvent(LogLevel::kInfo, "standby_serving", {{"listen", options_.server.listen}});
  return absl::OkStatus();
}

void HaLockServer::StopStandby() {
  if (standby_ == nullptr) return;
  standby_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  standby_->Wait();
  standby_.reset();
  standby_service_.reset();
}

absl::Status HaLockServer::BecomeLeader(const replication::Leadership& leadership) {
  const absl::Time start = absl::Now();
  store::EtcdStoreOptions store_options;
  store_options.key_prefix = options_.state_prefix;
  store_options.max_txn_ops = options_.etcd_max_txn_ops;
  auto store = store::EtcdStore::OpenWithClient(etcd_.get(), store_options);
  if (!store.ok()) return store.status();
  if (absl::Status s = (*store)->SetFence({leadership.key, leadership.create_revision});
      !s.ok()) {
    return s;
  }
  LockServerOptions server_options = options_.server;
  server_options.leadership = this;  // GetServerStatus, StepDown.
  // The standby listener stays open while the leader's server recovers and
  // binds the same port (gRPC sets SO_REUSEPORT): the port is never closed
  // during a takeover, so the other standbys' liveness probes never see
  // the new leader as dead, and clients get a redirect, never a refusal.
  std::optional<core::LockCore> warm;
  if (replica_ != nullptr) {
    absl::StatusOr<core::LockCore> taken = replica_->TakeCaughtUp();
    SetReplica(nullptr);
    if (taken.ok()) {
      warm = *std::move(taken);
    } else {
      LogEvent(LogLevel::kWarn, "replica_not_used",
               {{"why", taken.status()}, {"fallback", "full recovery from etcd"}});
    }
  }
  const bool was_warm = warm.has_value();
  auto server = LockServer::StartWithCore(server_options, *std::move(store), std::move(warm),
                                          clock_);
  if (!server.ok()) return server.status();
  StopStandby();
  leader_ = *std::move(server);
  {
    absl::MutexLock lock(&mu_);
    is_leader_ = true;
    ++leader_changes_;
  }
  LogEvent(LogLevel::kInfo, "leader_serving",
           {{"fencing_token", leadership.create_revision},
            {"warm", was_warm},
            {"takeover_ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return absl::OkStatus();
}

void HaLockServer::StepDownLocal(const std::string& why) {
  {
    absl::MutexLock lock(&mu_);
    if (is_leader_) ++leader_changes_;
    is_leader_ = false;
  }
  if (leader_ != nullptr) {
    leader_->Shutdown();
    leader_.reset();
  }
  LogEvent(LogLevel::kWarn, "standby_again", {{"why", why}});
}

void HaLockServer::MaintainReplica() {
  if (leader_ != nullptr || !options_.warm_standby) return;
  if (replica_ != nullptr) {
    const replication::StandbyReplicaStats stats = replica_->stats();
    if (stats.health.ok()) return;
    LogEvent(LogLevel::kWarn, "replica_restart", {{"why", stats.health}});
    SetReplica(nullptr);
  }
  if (replica_store_ == nullptr) {
    store::EtcdStoreOptions store_options;
    store_options.key_prefix = options_.state_prefix;
    store_options.max_txn_ops = options_.etcd_max_txn_ops;
    // Fenced without a fence: it can read and watch, never write.
    auto store = store::EtcdStore::OpenWithClient(etcd_.get(), store_options);
    if (!store.ok()) {
      LogEvent(LogLevel::kWarn, "replica_unavailable", {{"error", store.status()}});
      return;
    }
    replica_store_ = *std::move(store);
  }
  auto replica = replication::StandbyReplica::Start(replica_store_.get(), options_.server.core);
  if (!replica.ok()) {
    // etcd unreachable, or state it cannot rebuild: a takeover then
    // recovers from the store as a cold start would.
    LogEvent(LogLevel::kWarn, "replica_unavailable", {{"error", replica.status()}});
    return;
  }
  SetReplica(*std::move(replica));
}

void HaLockServer::SetReplica(
    std::shared_ptr<replication::StandbyReplica> replica) {
  std::shared_ptr<replication::StandbyReplica> old;
  {
    absl::MutexLock lock(&mu_);
    old = std::move(published_replica_);
    published_replica_ = replica;
  }
  replica_ = std::move(replica);
  // `old` (the replica just replaced) is destroyed here, outside mu_,
  // unless a status call still reads it.
}

v1::GetServerStatusResponse HaLockServer::StandbyStatus() const {
  v1::GetServerStatusResponse r;
  r.set_role(v1::SERVER_ROLE_STANDBY);
  r.set_server_id(options_.server.server_id);
  const CachedLeader leader = CachedLeaderInfo();
  r.set_leader_address(leader.address);
  r.set_fencing_token(static_cast<uint64_t>(leader.fencing_token));
  r.set_store_backend(v1::STORE_BACKEND_ETCD);
  r.set_version(options_.server.version);
  r.mutable_started_at()->set_seconds(started_ms_ / 1000);
  r.mutable_started_at()->set_nanos(static_cast<int32_t>(started_ms_ % 1000) *
                                    1000000);
  r.set_uptime_ms(static_cast<uint64_t>(clock_->NowMs() - started_ms_));
  v1::ReplicaStatus* replica = r.mutable_replica();
  std::shared_ptr<replication::StandbyReplica> copy;
  {
    absl::MutexLock lock(&mu_);
    copy = published_replica_;
  }
  absl::StatusOr<int64_t> store_revision =
      replica_store_ != nullptr
          ? replica_store_->CurrentRevision()
          : absl::StatusOr<int64_t>(absl::UnavailableError("no store"));
  if (store_revision.ok()) replica->set_store_revision(*store_revision);
  if (copy == nullptr) {
    replica->set_detail(options_.warm_standby
                            ? "no warm copy loaded (etcd unreachable?)"
                            : "warm standby off");
  } else {
    // Give the watch a moment to confirm it has seen everything up to the
    // store's revision, so the lag is real, not a notification not yet due.
    copy->RequestProgress();
    replication::StandbyReplicaStats stats = copy->stats();
    const absl::Time deadline = absl::Now() + kStatusProgressWait;
    while (store_revision.ok() && stats.health.ok() &&
           stats.caught_up_revision < *store_revision &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      stats = copy->stats();
    }
    replica->set_applied_revision(stats.caught_up_revision);
    replica->set_healthy(stats.health.ok());
    if (!stats.health.ok()) replica->set_detail(stats.health.ToString());
    if (store_revision.ok()) {
      replica->set_lag_revisions(
          std::max<int64_t>(0, *store_revision - stats.caught_up_revision));
    }
  }
  if (detector_ != nullptr) {
    const replication::FailureDetectorStats probes = detector_->stats();
    replica->set_probes(probes.probes);
    replica->set_failed_probes(probes.failed_probes);
    replica->set_misconfigured_probes(probes.misconfigured_probes);
    replica->set_probe_misconfigured(probes.misconfigured);
    replica->set_last_probe_misconfiguration(probes.last_misconfiguration);
  }
  if (replica->healthy() && !leader.address.empty()) {
    r.set_store_health(v1::STORE_HEALTH_OK);
  } else {
    r.set_store_health(v1::STORE_HEALTH_UNAVAILABLE);
    r.set_store_health_detail(leader.address.empty() ? "no leader elected"
                                                     : replica->detail());
  }
  return r;
}

void HaLockServer::Loop() {
  MaintainReplica();
  for (;;) {
    std::pair<Transition, replication::Leadership> next;
    bool have_work;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty(); };
      have_work = mu_.AwaitWithTimeout(absl::Condition(&has_work), kReplicaCheckInterval);
      if (have_work) {
        next = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (!have_work) {
      MaintainReplica();  // Outside mu_: it reads etcd.
      continue;
    }
    switch (next.first) {
      case Transition::kElected:
        if (absl::Status s = BecomeLeader(next.second); !s.ok()) {
          LogEvent(LogLevel::kError, "takeover_failed", {{"error", s}});
          (void)election_->Resign();  // Let another instance try.
        }
        break;
      case Transition::kLost:
        if (leader_ != nullptr) {
          // The standby listener opens before the leader's server closes
          // (SO_REUSEPORT), so clients get a redirect, never a refusal.
          if (absl::Status s = StartStandby(); !s.ok()) {
            LogEvent(LogLevel::kError, "standby_restart_failed", {{"error", s}});
          }
          StepDownLocal("leadership lost");
          MaintainReplica();  // Warm again for the next takeover.
        }
        break;
      case Transition::kStop:
        StepDownLocal("shutdown");
        StopStandby();
        SetReplica(nullptr);
        return;
    }
  }
}

}  // namespace lockwarden::service
