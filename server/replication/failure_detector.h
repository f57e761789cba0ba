// LeaderFailureDetector: a standby's fast detector of a dead leader.
//
// The lease alone replaces a dead leader only after its TTL (5 s by
// default). A standby runs this detector to do better when the leader is
// known dead: every probe_interval it sends a grpc.health.v1 Check (with a
// probe_timeout deadline) for `health_service` to the address the leader
// advertised in etcd. The default service is "" (the process is alive and
// answering), not the lock services: a leader that is still recovering, or
// whose store is briefly unhealthy, is alive and must not be deposed; a
// leader that lost etcd loses its lease anyway. After failures_to_depose
// consecutive failures (an error, a timeout, or any answer but SERVING) it
// calls
// LeaderElection::DeposeIfDead(leader key, create revision): a Txn that
// deletes the leader key only if it still has that create revision. The
// next candidate in line is then woken by its watch at once.
//
// Safety never depends on this detector: a wrong suspicion (a slow but
// live leader, a partition between servers) deposes a leader that then
// cannot write, because every write Txn compares the fencing token; it
// costs one failover, never a lost or doubled write.
//
// Only outcomes that say "the leader looks dead" count towards deposing
// it (ProbeOutcome::kDead): a probe timeout, a leader that cannot be
// reached at all (its port refuses or does not answer a TCP connect), or
// NOT_SERVING from a reachable leader. Everything else (a TLS handshake
// failure, UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED, an unknown
// health service, a reachable port that resets the gRPC connection) is a
// misconfigured probe (kMisconfigured): the leader's process is there, the
// probe is wrong. It never deposes; once kMisconfigReportAfter probes in a
// row were misconfigured it is logged as an error at most once per
// kMisconfigLogInterval, counted in stats() (exported as
// lockwarden_replication_probes_total{outcome="misconfigured"}), and the
// lease is left to replace a leader that really dies meanwhile. A gRPC
// UNAVAILABLE is told apart by a bare TCP connection to the leader's address
// (CheckTransport) within the probe timeout: refused, or accepted but
// silent (the kernel accepts for a SIGSTOPped process) = dead; answered or
// closed at once = misconfigured (a TLS or HTTP/2 problem, not a dead
// process).
//
// Timeouts are weaker evidence than a refused connection: an overloaded
// but live leader can miss a 200 ms deadline a few times in a row, and a
// wrong suspicion costs a failover. So a run of failures that includes a
// timeout must also span min_unresponsive_span of wall time (first failure
// of the run to now) before the leader is deposed; a run of refused
// connections or NOT_SERVING answers (a dead or stopping process) deposes
// after failures_to_depose probes as before. See docs/replication.md
// "Probe defaults under load".
//
// A leader is only suspected once this detector has seen it answer at
// least once, or after leader_startup_allowance since it first saw the
// leader: a standby that cannot reach the leader at all (a partition
// between servers, not a dead leader) must not depose it at once, or two
// servers that cannot see each other would depose each other in a tight
// loop instead of once per allowance.
//
//   FailureDetectorOptions options;
//   options.own_server_id = "s2";
//   auto detector = LeaderFailureDetector::Start(election.get(), options);
//   ...
//   (*detector)->Stop();
//
// Thread-safety: Start() runs the probes on the detector's own thread;
// stats() and Stop() may be called from any thread. Stop() is idempotent and
// bounded by one probe timeout plus one etcd call.
#ifndef LOCKWARDEN_SERVER_REPLICATION_FAILURE_DETECTOR_H_
#define LOCKWARDEN_SERVER_REPLICATION_FAILURE_DETECTOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/replication/leader_election.h"

namespace lockwarden::replication {

inline constexpr absl::Duration kDefaultProbeInterval = absl::Milliseconds(100);
inline constexpr absl::Duration kDefaultProbeTimeout = absl::Milliseconds(200);
inline constexpr int kDefaultFailuresToDepose = 3;
inline constexpr absl::Duration kDefaultLeaderStartupAllowance = absl::Seconds(2);
// The leader's identity is re-read from etcd at least this often (a new
// leader is found even when the old one died without being suspected here).
inline constexpr absl::Duration kLeaderRefreshInterval = absl::Milliseconds(500);
inline constexpr int kMaxFailuresToDepose = 100;
// A run of failed probes that includes a timeout deposes only once it spans
// at least this long (see the banner).
inline constexpr absl::Duration kDefaultMinUnresponsiveSpan = absl::Seconds(1);
// A misconfigured probe is logged as an error at most this often.
inline constexpr absl::Duration kMisconfigLogInterval = absl::Seconds(30);
// ... and only once this many probes in a row were misconfigured: a single
// one is also what a connection accepted by a listener that is closing
// (a leader handing its port over during a takeover) looks like.
inline constexpr int kMisconfigReportAfter = 3;
// Longest probe error text kept in the stats.
inline constexpr size_t kProbeErrorBytesMax = 512;
// grpc.health.v1's overall status: the process is alive and answering.
inline constexpr char kDefaultHealthService[] = "";

struct FailureDetectorOptions {
  // This server's id: its own key is never probed.
  std::string own_server_id;
  absl::Duration probe_interval = kDefaultProbeInterval;
  absl::Duration probe_timeout = kDefaultProbeTimeout;
  int failures_to_depose = kDefaultFailuresToDepose;
  absl::Duration leader_startup_allowance = kDefaultLeaderStartupAllowance;
  // See the banner; zero = count-only (the behaviour before this option).
  absl::Duration min_unresponsive_span = kDefaultMinUnresponsiveSpan;
  std::string health_service = kDefaultHealthService;
  // How to reach the leader (TLS); null = insecure.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // TLS only: the name the leader's certificate must carry, when it is not
  // the host of its advertised address (empty = that host).
  std::string tls_server_name;
  // Runs on the detector thread after a successful depose.
  std::function<void(const LeaderInfo& deposed)> on_deposed;
};

// What one probe says about the leader.
enum class ProbeOutcome {
  kServing,        // Answered SERVING.
  kDead,           // Timeout, unreachable, or NOT_SERVING: counts.
  kMisconfigured,  // The probe is wrong (TLS, auth, ...): never counts.
};

// What a bare TCP connection to the leader's address shows, used to tell a
// dead or hung leader from a misconfigured probe when gRPC says UNAVAILABLE.
enum class TransportCheck {
  kUnreachable,  // Connect refused, unresolvable, or not accepted in time.
  kSilent,       // Accepted (the kernel's backlog) but no byte and no close
                 // in answer to an HTTP/2 preface: a stopped or hung process.
  kResponds,     // Answered or closed at once: a live process (TLS/HTTP2
                 // mismatch, or shutting down).
};

// Connects to `address` (host:port, [v6]:port, optionally with a gRPC
// "dns:///", "ipv4:" or "ipv6:" scheme), sends the HTTP/2 client preface
// and waits for any answer, all within `timeout`.
TransportCheck CheckTransport(const std::string& address,
                              absl::Duration timeout);

// Classifies a finished health Check. `transport` is only consulted for
// UNAVAILABLE.
ProbeOutcome ClassifyProbe(const grpc::Status& status, bool serving,
                           TransportCheck transport);

struct FailureDetectorStats {
  uint64_t probes = 0;
  uint64_t failed_probes = 0;         // kDead outcomes.
  uint64_t misconfigured_probes = 0;  // kMisconfigured outcomes.
  uint64_t deposes = 0;
  // The last kMisconfigReportAfter probes were kMisconfigured (cleared by
  // any other outcome).
  bool misconfigured = false;
  // The last misconfigured probe's error (at most kProbeErrorBytesMax).
  std::string last_misconfiguration;
};

class LeaderFailureDetector {
 public:
  // `election` is not owned and must outlive the detector.
  static absl::StatusOr<std::unique_ptr<LeaderFailureDetector>> Start(
      LeaderElection* election, FailureDetectorOptions options);

  // Stop()s.
  ~LeaderFailureDetector();
  LeaderFailureDetector(const LeaderFailureDetector&) = delete;
  LeaderFailureDetector& operator=(const LeaderFailureDetector&) = delete;

  void Stop();
  FailureDetectorStats stats() const;

 private:
  // What the detector knows of the leader it watches.
  struct Watched {
    LeaderInfo leader;
    absl::Time first_seen;
    bool seen_serving = false;
    int failures = 0;              // Consecutive kDead outcomes.
    absl::Time first_failure;      // Of the current run.
    bool run_has_timeout = false;  // The run includes a probe timeout.
    int misconfigured = 0;         // Consecutive kMisconfigured outcomes.
    std::shared_ptr<grpc::Channel> channel;
  };

  LeaderFailureDetector(LeaderElection* election, FailureDetectorOptions options);
  void Run();
  // One detection step: refresh the leader if due, probe, maybe depose.
  void Step(Watched& w, absl::Time& next_refresh);
  grpc::ChannelArguments ChannelArgs() const;
  // Re-reads the leader; resets `w` when it changed.
  void Refresh(Watched& w);
  struct ProbeResult {
    ProbeOutcome outcome = ProbeOutcome::kDead;
    bool timed_out = false;
    absl::Status error;  // OK when serving.
  };
  ProbeResult Probe(const Watched& w) const;
  void RecordMisconfigured(Watched& w, const absl::Status& error);
  bool Stopping() const;

  // Constant after construction.
  LeaderElection* const election_;
  const FailureDetectorOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  FailureDetectorStats stats_ ABSL_GUARDED_BY(mu_);

  // Detector thread only.
  absl::Time misconfig_logged_at_ = absl::InfinitePast();
  uint64_t misconfig_unlogged_ = 0;  // Since the last log line.

  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_FAILURE_DETECTOR_H_
