// EtcdCluster (testonly): a real 1- or 3-member etcd cluster from Debian's
// /usr/bin/etcd on 127.0.0.1, for EtcdStore, election and failover tests.
// Each member gets free client and peer ports (probed by binding port 0;
// a start that loses the race is retried with new ports), a data dir under
// $TEST_TMPDIR and a log file next to it. Members can be killed (kill -9),
// paused (SIGSTOP/SIGCONT) and restarted on the same data dir and ports.
// The destructor SIGKILLs and reaps every member and removes the temp dir;
// members also get PR_SET_PDEATHSIG so a crashed test leaves no etcd behind.
//
//   absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
//       EtcdCluster::Start({.members = 3});
//   ASSERT_TRUE(cluster.ok()) << cluster.status();
//   EtcdStoreOptions options;
//   options.client.endpoints = (*cluster)->ClientEndpoints();
//   absl::StatusOr<int> leader = (*cluster)->LeaderIndex(absl::Seconds(10));
//   LW_ASSERT_OK((*cluster)->Kill(*leader));
//   LW_ASSERT_OK((*cluster)->Restart(*leader));
//   LW_ASSERT_OK((*cluster)->WaitHealthy(absl::Seconds(20)));
//
// Thread safety: one thread (the test's) drives a cluster; ClientEndpoints()
// and EndpointsFlag() may be read from any thread (they never change).
#ifndef LOCKWARDEN_TESTS_ETCD_ETCD_CLUSTER_H_
#define LOCKWARDEN_TESTS_ETCD_ETCD_CLUSTER_H_

#include <sys/types.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lockwarden::testing {

inline constexpr absl::Duration kEtcdReadyTimeout = absl::Seconds(30);
// Attempts at starting the cluster with fresh ports (a port taken between
// probing and etcd's bind makes a member exit at once).
inline constexpr int kEtcdStartAttempts = 3;

struct EtcdClusterOptions {
  int members = 1;  // 1 or 3 (any odd number up to 5 works).
  std::string etcd_binary = "/usr/bin/etcd";
  // Raft timing (etcd's defaults): a lost raft leader is replaced after
  // about one election timeout.
  int heartbeat_interval_ms = 100;
  int election_timeout_ms = 1000;
  absl::Duration ready_timeout = kEtcdReadyTimeout;
};

class EtcdCluster {
 public:
  // Starts every member and waits until the cluster has a leader and every
  // member serves a linearizable read.
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(
      EtcdClusterOptions options);

  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return static_cast<int>(members_.size()); }
  // "http://127.0.0.1:<client port>" of every member, in member order.
  std::vector<std::string> ClientEndpoints() const;
  // The same, comma-separated, as for --etcd-endpoints.
  std::string EndpointsFlag() const;

  // Sends `signal` to member `i`; for SIGKILL/SIGTERM also reaps it (bounded).
  absl::Status Kill(int i, int signal = SIGKILL);
  // Starts a stopped member again on its data dir and ports (no wait).
  absl::Status Restart(int i);
  bool running(int i) const;
  pid_t pid(int i) const;

  // Waits until every running member sees a raft leader and answers a
  // linearizable read.
  absl::Status WaitHealthy(absl::Duration timeout);
  // Index of the member that is the raft leader (as all running members that
  // answer agree), waiting for one up to `timeout`.
  absl::StatusOr<int> LeaderIndex(absl::Duration timeout);

  std::string LogTail(int i, size_t max_bytes = 4096) const;
  const std::string& dir() const { return dir_; }

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::string log_path;
    pid_t pid = -1;
  };

  EtcdCluster(EtcdClusterOptions options, std::string dir);
  absl::Status AssignPorts();
  absl::Status Spawn(int i);
  absl::Status StartAll();
  void KillAll();
  // Reaps member i if it has exited; returns an error naming how it died.
  absl::Status CheckAlive(int i);

  const EtcdClusterOptions options_;
  const std::string dir_;
  std::string cluster_token_;
  std::vector<Member> members_;
};

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_ETCD_ETCD_CLUSTER_H_
