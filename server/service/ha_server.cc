#include "server/service/ha_server.h"

#include <grpcpp/health_check_service_interface.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "server/service/tls.h"
#include "server/store/etcd_store.h"

namespace lockwarden::service {
namespace {

constexpr const char* kLockServiceNames[] = {
    "lockwarden.v1.LockService", "lockwarden.v1.MonitorService",
    "lockwarden.v1.AdminService"};
// A standby without a healthy replica retries loading one this often.
constexpr absl::Duration kReplicaCheckInterval = absl::Seconds(1);
// How long a standby trusts its cached leader address.
constexpr absl::Duration kLeaderAddressCacheTtl = absl::Milliseconds(300);

}  // namespace

// Answers every call on a standby with a redirect to the leader.
class HaLockServer::StandbyService final : public grpc::CallbackGenericService {
 public:
  explicit StandbyService(HaLockServer* owner) : owner_(owner) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    const std::string leader = owner_->CachedLeaderAddress();
    return new Redirect(ctx, leader);
  }

 private:
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
    : options_(std::move(options)), clock_(clock) {}

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
  auto d = replication::LeaderFailureDetector::Start(election_.get(), detector);
  if (!d.ok()) return d.status();
  detector_ = *std::move(d);
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

std::string HaLockServer::CachedLeaderAddress() const {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() - leader_address_at_ < kLeaderAddressCacheTtl) return leader_address_;
  }
  absl::StatusOr<std::string> address = election_->LeaderAddress();
  absl::MutexLock lock(&mu_);
  if (address.ok() && *address == options_.advertise_address && !is_leader_) {
    // Our own key, but we do not serve: just resigned (the key goes a
    // moment later) or not serving yet. Never redirect a client to
    // ourselves; "no leader yet" makes it retry, and nothing is cached.
    leader_address_at_ = absl::InfinitePast();
    return "";
  }
  leader_address_ = address.ok() ? *address : "";
  leader_address_at_ = absl::Now();
  return leader_address_;
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

absl::StatusOr<std::string> HaLockServer::StepDown(const std::string& reason) {
  const std::optional<replication::Leadership> was = election_->leadership();
  if (!IsLeader() || !was.has_value()) {
    const std::string leader = CachedLeaderAddress();
    return absl::FailedPreconditionError(absl::StrCat(
        "step-down: this server is not the leader",
        leader.empty() ? "" : absl::StrCat("; the leader is ", leader)));
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
    replica_.reset();
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
    replica_.reset();
  }
  if (replica_store_ == nullptr) {
    store::EtcdStoreOptions store_options;
    store_options.key_prefix = options_.state_prefix;
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
  replica_ = *std::move(replica);
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
        replica_.reset();
        return;
    }
  }
}

}  // namespace lockwarden::service
