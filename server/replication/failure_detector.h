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
// grpc.health.v1's overall status: the process is alive and answering.
inline constexpr char kDefaultHealthService[] = "";

struct FailureDetectorOptions {
  // This server's id: its own key is never probed.
  std::string own_server_id;
  absl::Duration probe_interval = kDefaultProbeInterval;
  absl::Duration probe_timeout = kDefaultProbeTimeout;
  int failures_to_depose = kDefaultFailuresToDepose;
  absl::Duration leader_startup_allowance = kDefaultLeaderStartupAllowance;
  std::string health_service = kDefaultHealthService;
  // How to reach the leader (TLS); null = insecure.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Runs on the detector thread after a successful depose.
  std::function<void(const LeaderInfo& deposed)> on_deposed;
};

struct FailureDetectorStats {
  uint64_t probes = 0;
  uint64_t failed_probes = 0;
  uint64_t deposes = 0;
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
    int failures = 0;
    std::shared_ptr<grpc::Channel> channel;
  };

  LeaderFailureDetector(LeaderElection* election, FailureDetectorOptions options);
  void Run();
  // One detection step: refresh the leader if due, probe, maybe depose.
  void Step(Watched& w, absl::Time& next_refresh);
  // Re-reads the leader; resets `w` when it changed.
  void Refresh(Watched& w);
  // OK if the leader answered SERVING within the timeout.
  absl::Status Probe(const std::shared_ptr<grpc::Channel>& channel) const;
  bool Stopping() const;

  // Constant after construction.
  LeaderElection* const election_;
  const FailureDetectorOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  FailureDetectorStats stats_ ABSL_GUARDED_BY(mu_);

  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_FAILURE_DETECTOR_H_
