#include "server/replication/failure_detector.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace lockwarden::replication {
namespace {

// Reconnect quickly to a leader address that refused us: a refused
// connection must not leave the channel in a seconds-long backoff in
// which every probe fails without trying.
grpc::ChannelArguments ProbeChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // Its own connection: probes must not queue behind other traffic.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderFailureDetector>> LeaderFailureDetector::Start(
    LeaderElection* election, FailureDetectorOptions options) {
  if (election == nullptr) return absl::InvalidArgumentError("detector: no election");
  if (options.own_server_id.empty()) {
    return absl::InvalidArgumentError("detector: own server id required");
  }
  if (options.probe_interval <= absl::ZeroDuration() ||
      options.probe_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("detector: probe interval and timeout must be > 0");
  }
  if (options.failures_to_depose < 1 || options.failures_to_depose > kMaxFailuresToDepose) {
    return absl::InvalidArgumentError(
        absl::StrCat("detector: failures to depose must be in 1..", kMaxFailuresToDepose));
  }
  std::unique_ptr<LeaderFailureDetector> d(
      new LeaderFailureDetector(election, std::move(options)));
  LeaderFailureDetector* raw = d.get();
  d->thread_ = std::thread([raw] { raw->Run(); });
  return d;
}

LeaderFailureDetector::LeaderFailureDetector(LeaderElection* election,
                                             FailureDetectorOptions options)
    : election_(election), options_(std::move(options)) {}

LeaderFailureDetector::~LeaderFailureDetector() { Stop(); }

void LeaderFailureDetector::Stop() {
  absl::MutexLock join(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

FailureDetectorStats LeaderFailureDetector::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool LeaderFailureDetector::Stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void LeaderFailureDetector::Run() {
  Watched watched;
  absl::Time next_refresh = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.probe_interval);
      if (stopping_) return;
    }
    if (election_->IsLeader()) {
      watched = Watched();  // Forget the old leader: it may come back.
      next_refresh = absl::InfinitePast();
      continue;
    }
    Step(watched, next_refresh);
  }
}

void LeaderFailureDetector::Step(Watched& w, absl::Time& next_refresh) {
  const absl::Time now = absl::Now();
  if (now >= next_refresh || w.channel == nullptr) {
    Refresh(w);
    next_refresh = now + kLeaderRefreshInterval;
  }
  if (w.channel == nullptr) return;  // No leader, or it is us.
  const absl::Status probe = Probe(w.channel);
  const bool healthy = probe.ok();
  if (!healthy && w.failures == 0) {
    LogEvent(LogLevel::kInfo, "leader_probe_failing",
             {{"leader", w.leader.server_id}, {"address", w.leader.address},
              {"error", probe}});
    // Maybe that leader is gone already and another one took over.
    next_refresh = absl::InfinitePast();
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.probes;
    if (!healthy) ++stats_.failed_probes;
  }
  if (healthy) {
    w.seen_serving = true;
    w.failures = 0;
    return;
  }
  if (++w.failures < options_.failures_to_depose) return;
  if (!w.seen_serving && absl::Now() - w.first_seen < options_.leader_startup_allowance) {
    // Not seen alive yet: maybe unreachable from here only, maybe already
    // replaced. Re-read the leader on every probe until it answers.
    next_refresh = absl::InfinitePast();
    return;
  }
  LogEvent(LogLevel::kWarn, "leader_suspected",
           {{"leader", w.leader.server_id},
            {"address", w.leader.address},
            {"fencing_token", w.leader.create_revision},
            {"failed_probes", w.failures},
            {"seen_serving", w.seen_serving}});
  absl::Status s = election_->DeposeIfDead(w.leader.key, w.leader.create_revision);
  if (s.ok()) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.deposes;
    }
    if (options_.on_deposed) options_.on_deposed(w.leader);
  } else if (s.code() != absl::StatusCode::kFailedPrecondition) {
    LogEvent(LogLevel::kWarn, "depose_failed", {{"error", s}});
  }
  w.failures = 0;
  next_refresh = absl::InfinitePast();  // Find the successor at once.
}

void LeaderFailureDetector::Refresh(Watched& w) {
  absl::StatusOr<LeaderInfo> leader = election_->CurrentLeader();
  if (!leader.ok()) {
    if (leader.status().code() == absl::StatusCode::kNotFound) w = Watched();
    return;  // etcd unreachable: keep probing the leader we know.
  }
  if (leader->server_id == options_.own_server_id) {
    w = Watched();  // Our own key: becoming leader, or a stale one of ours.
    return;
  }
  if (w.channel != nullptr && leader->create_revision == w.leader.create_revision) {
    return;
  }
  const bool same_address = w.channel != nullptr && leader->address == w.leader.address;
  std::shared_ptr<grpc::Channel> channel =
      same_address ? w.channel
                   : grpc::CreateCustomChannel(
                         leader->address,
                         options_.credentials != nullptr
                             ? options_.credentials
                             : grpc::InsecureChannelCredentials(),
                         ProbeChannelArgs());
  w = Watched();
  w.leader = *std::move(leader);
  w.first_seen = absl::Now();
  w.channel = std::move(channel);
}

absl::Status LeaderFailureDetector::Probe(const std::shared_ptr<grpc::Channel>& channel) const {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.probe_timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(options_.health_service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("health check: ", status.error_code(), " ",
                                               status.error_message()));
  }
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(absl::StrCat("health check: not serving (",
                                               response.status(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace lockwarden::replication
