#include "server/replication/failure_detector.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
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

// Splits "host:port" / "[v6]:port" (after an optional gRPC scheme).
bool SplitHostPort(absl::string_view address, std::string* host,
                   std::string* port) {
  for (absl::string_view scheme : {"dns:///", "ipv4:", "ipv6:"}) {
    if (absl::ConsumePrefix(&address, scheme)) break;
  }
  if (absl::ConsumePrefix(&address, "[")) {
    const size_t close = address.find("]:");
    if (close == absl::string_view::npos) return false;
    *host = std::string(address.substr(0, close));
    *port = std::string(address.substr(close + 2));
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return false;
    *host = std::string(address.substr(0, colon));
    *port = std::string(address.substr(colon + 1));
  }
  return !host->empty() && !port->empty();
}

// HTTP/2's client connection preface: a plaintext gRPC server answers it
// with SETTINGS, a TLS server with an alert or a close.
constexpr char kHttp2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Waits until `fd` has `events` or `deadline` passes.
bool PollUntil(int fd, short events, absl::Time deadline, short* revents) {
  pollfd p{fd, events, 0};
  const int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  if (wait_ms <= 0 || poll(&p, 1, static_cast<int>(wait_ms)) != 1) return false;
  *revents = p.revents;
  return true;
}

// One connection to `ai` until `deadline` (see TransportCheck).
TransportCheck CheckOnce(const addrinfo& ai, absl::Time deadline) {
  const int fd =
      socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
             ai.ai_protocol);
  if (fd < 0) return TransportCheck::kUnreachable;
  TransportCheck result = TransportCheck::kUnreachable;
  short revents = 0;
  bool connected = connect(fd, ai.ai_addr, ai.ai_addrlen) == 0;
  if (!connected && errno == EINPROGRESS &&
      PollUntil(fd, POLLOUT, deadline, &revents)) {
    int error = 0;
    socklen_t len = sizeof(error);
    connected =
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
  }
  if (connected) {
    result = TransportCheck::kSilent;
    // Any answer, EOF or reset means a process read what we sent.
    if (send(fd, kHttp2Preface, sizeof(kHttp2Preface) - 1, MSG_NOSIGNAL) < 0 ||
        PollUntil(fd, POLLIN | POLLRDHUP, deadline, &revents)) {
      result = TransportCheck::kResponds;
    }
  }
  close(fd);
  return result;
}

std::string Truncated(const absl::Status& s) {
  std::string text = s.ToString();
  if (text.size() > kProbeErrorBytesMax) text.resize(kProbeErrorBytesMax);
  return text;
}

}  // namespace

ProbeOutcome ClassifyProbe(const grpc::Status& status, bool serving,
                           TransportCheck transport) {
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      // NOT_SERVING from a leader that answers: it is stopping.
      return serving ? ProbeOutcome::kServing : ProbeOutcome::kDead;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ProbeOutcome::kDead;
    case grpc::StatusCode::UNAVAILABLE:
      // Refused, unreachable or silent: dead (or hung). A process that
      // answers at the transport level but fails the gRPC call is there: a
      // TLS or HTTP/2 mismatch.
      return transport == TransportCheck::kResponds
                 ? ProbeOutcome::kMisconfigured
                 : ProbeOutcome::kDead;
    default:
      // UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED, NOT_FOUND (health
      // service unknown), ...: an answer from a live process.
      return ProbeOutcome::kMisconfigured;
  }
}

TransportCheck CheckTransport(const std::string& address,
                              absl::Duration timeout) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port))
    return TransportCheck::kUnreachable;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &list) != 0) {
    return TransportCheck::kUnreachable;
  }
  const absl::Time deadline = absl::Now() + timeout;
  TransportCheck best = TransportCheck::kUnreachable;
  for (addrinfo* ai = list;
       ai != nullptr && best != TransportCheck::kResponds &&
       absl::Now() < deadline;
       ai = ai->ai_next) {
    const TransportCheck c = CheckOnce(*ai, deadline);
    if (c != TransportCheck::kUnreachable) best = c;
  }
  freeaddrinfo(list);
  return best;
}

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
  if (options.min_unresponsive_span < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "detector: min unresponsive span must be >= 0");
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
  const ProbeResult probe = Probe(w);
  if (probe.outcome != ProbeOutcome::kMisconfigured) w.misconfigured = 0;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.probes;
    if (probe.outcome == ProbeOutcome::kDead) ++stats_.failed_probes;
    if (probe.outcome != ProbeOutcome::kMisconfigured)
      stats_.misconfigured = false;
  }
  if (probe.outcome == ProbeOutcome::kServing) {
    w.seen_serving = true;
    w.failures = 0;
    return;
  }
  if (probe.outcome == ProbeOutcome::kMisconfigured) {
    // The leader's process answered: not dead. Never count it, and end any
    // run of failures (the lease still replaces a leader that dies).
    RecordMisconfigured(w, probe.error);
    w.failures = 0;
    return;
  }
  if (w.failures == 0) {
    LogEvent(LogLevel::kInfo, "leader_probe_failing",
             {{"leader", w.leader.server_id},
              {"address", w.leader.address},
              {"error", probe.error}});
    w.first_failure = absl::Now();
    w.run_has_timeout = false;
    // Maybe that leader is gone already and another one took over.
    next_refresh = absl::InfinitePast();
  }
  w.run_has_timeout = w.run_has_timeout || probe.timed_out;
  if (++w.failures < options_.failures_to_depose) return;
  const absl::Duration span = absl::Now() - w.first_failure;
  if (w.run_has_timeout && span < options_.min_unresponsive_span) {
    return;  // Maybe only slow: wait until the run is long enough.
  }
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
            {"failing_ms", absl::ToInt64Milliseconds(span)},
            {"timeouts", w.run_has_timeout},
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

void LeaderFailureDetector::RecordMisconfigured(Watched& w,
                                                const absl::Status& error) {
  const bool persistent = ++w.misconfigured >= kMisconfigReportAfter;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.misconfigured_probes;
    stats_.last_misconfiguration = Truncated(error);
    stats_.misconfigured = persistent;
  }
  ++misconfig_unlogged_;
  const absl::Time now = absl::Now();
  if (!persistent || now - misconfig_logged_at_ < kMisconfigLogInterval) {
    return;
  }
  LogEvent(
      LogLevel::kError, "leader_probe_misconfigured",
      {{"leader", w.leader.server_id},
       {"address", w.leader.address},
       {"error", error},
       {"probes_since_last_report", misconfig_unlogged_},
       {"effect",
        "the leader's process answers but the health probe fails; it is NOT "
        "deposed: fast failover is off until fixed, only the lease replaces a "
        "dead leader (check --probe-tls-* / --tls-ca and the servers' "
        "certificates for their advertised names)"}});
  misconfig_logged_at_ = now;
  misconfig_unlogged_ = 0;
}

grpc::ChannelArguments LeaderFailureDetector::ChannelArgs() const {
  grpc::ChannelArguments args = ProbeChannelArgs();
  if (!options_.tls_server_name.empty()) {
    args.SetSslTargetNameOverride(options_.tls_server_name);
  }
  return args;
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
      same_address
          ? w.channel
          : grpc::CreateCustomChannel(leader->address,
                                      options_.credentials != nullptr
                                          ? options_.credentials
                                          : grpc::InsecureChannelCredentials(),
                                      ChannelArgs());
  w = Watched();
  w.leader = *std::move(leader);
  w.first_seen = absl::Now();
  w.channel = std::move(channel);
}

LeaderFailureDetector::ProbeResult LeaderFailureDetector::Probe(
    const Watched& w) const {
  auto stub = grpc::health::v1::Health::NewStub(w.channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.probe_timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(options_.health_service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  const bool serving =
      status.ok() &&
      response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  // gRPC's own word that nothing is there (refused, no route, no DNS
  // record) needs no second look; resolving the name again could also
  // stall this thread on a slow DNS server.
  const bool said_unreachable =
      status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      (absl::StrContains(status.error_message(), "Connection refused") ||
       absl::StrContains(status.error_message(), "DNS resolution failed") ||
       absl::StrContains(status.error_message(), "No route to host") ||
       absl::StrContains(status.error_message(), "Network is unreachable"));
  const TransportCheck transport =
      status.error_code() == grpc::StatusCode::UNAVAILABLE && !said_unreachable
          ? CheckTransport(w.leader.address, options_.probe_timeout)
          : TransportCheck::kUnreachable;
  ProbeResult result;
  result.outcome = ClassifyProbe(status, serving, transport);
  // A silent transport is a hung process as much as a deadline is.
  result.timed_out =
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      transport == TransportCheck::kSilent;
  if (!status.ok()) {
    const char* why = transport == TransportCheck::kResponds
                          ? " (the port answers TCP)"
                      : transport == TransportCheck::kSilent
                          ? " (the port accepts TCP, silent)"
                          : "";
    result.error = absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat("health check: ", status.error_message(), why));
  } else if (!serving) {
    result.error = absl::UnavailableError(
        absl::StrCat("health check: not serving (", response.status(), ")"));
  }
  return result;
}

}  // namespace lockwarden::replication
