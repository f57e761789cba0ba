// HaCluster (testonly): a replicated lockwarden on loopback for failover
// drills: a 3-member etcd (tests/etcd) and N lockwarden-server processes
// with --store=etcd on fixed free ports, each able to be killed (-9),
// stopped (SIGSTOP), continued and restarted. The leader is the server
// whose grpc.health.v1 says SERVING for lockwarden.v1.LockService
// (standbys say NOT_SERVING). The destructor SIGKILLs and reaps every
// server; the servers also get PR_SET_PDEATHSIG.
//
// The binary comes from $LW_SERVER_BIN (runfiles-relative, set by the test
// rule) or $TEST_SRCDIR/lockwarden/<that>.
//
// Thread-safety: one thread (the test's) drives the cluster; Channel()
// may be called from any thread.
#ifndef LOCKWARDEN_TESTS_FAILOVER_HA_CLUSTER_H_
#define LOCKWARDEN_TESTS_FAILOVER_HA_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/etcd/etcd_cluster.h"
#include "tests/failover/tcp_proxy.h"

namespace lockwarden::testing {

inline constexpr char kHaStatePrefix[] = "/lockwarden/v1/state/";
// Longest wait for a leader after a start or a failure injection.
inline constexpr absl::Duration kLeaderWaitMax = absl::Seconds(20);

struct HaClusterOptions {
  int servers = 3;
  int etcd_members = 3;
  std::vector<std::string> extra_args;  // e.g. --lease-ttl-ms=2000.
  // Each server reaches each etcd member through its own TcpProxy, so a
  // test can cut one server off from etcd (CutFromEtcd) and heal it.
  bool proxy_etcd = false;
  // How the test reaches the servers (TLS when the servers get --tls-*
  // in extra_args); null = plaintext.
  std::shared_ptr<grpc::ChannelCredentials> client_credentials;
};

class HaCluster {
 public:
  static absl::StatusOr<std::unique_ptr<HaCluster>> Start(HaClusterOptions options);
  ~HaCluster();

  int size() const { return static_cast<int>(servers_.size()); }
  std::string address(int i) const;
  std::shared_ptr<grpc::Channel> Channel(int i) const;
  EtcdCluster& etcd() { return *etcd_; }

  absl::Status StartServer(int i);
  // Sends `signal`; SIGKILL/SIGTERM also reap the process.
  absl::Status Signal(int i, int signal);
  bool running(int i) const { return servers_[i].pid > 0; }
  // proxy_etcd only: resets server i's etcd connections and refuses new
  // ones (a partition between it and etcd), then lets them through again.
  void CutFromEtcd(int i);
  absl::Status HealToEtcd(int i);

  // The index of the leader (health SERVING), waiting up to `timeout`;
  // `not_index` excluded (the one just failed).
  absl::StatusOr<int> WaitForLeader(absl::Duration timeout, int not_index = -1);
  // Whether server i says SERVING for the lock service (one probe).
  bool Serving(int i, absl::Duration timeout = absl::Milliseconds(300)) const;

  // Every key/value under the state prefix (prefix stripped), in key order:
  // what the store holds now.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ScanState() const;

  std::string LogTail(int i, size_t max_bytes = 3000) const;
  const std::string& log_path(int i) const { return servers_[i].log; }

 private:
  struct Server {
    int port = 0;
    pid_t pid = -1;
    std::string log;
    std::vector<std::unique_ptr<TcpProxy>> etcd_proxies;  // proxy_etcd only.
  };
  HaCluster(HaClusterOptions options, std::string binary, std::string dir)
      : options_(std::move(options)), binary_(std::move(binary)), dir_(std::move(dir)) {}

  std::string EtcdEndpointsOf(int i) const;

  const HaClusterOptions options_;
  const std::string binary_;
  const std::string dir_;
  std::unique_ptr<EtcdCluster> etcd_;
  std::vector<Server> servers_;
};

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_FAILOVER_HA_CLUSTER_H_
