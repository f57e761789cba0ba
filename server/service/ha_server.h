// HaLockServer: lockwarden-server replicated on etcd (--store=etcd).
//
// Every instance campaigns in the etcd election (server/replication). While
// it is a standby it answers AdminService.GetServerStatus itself (role
// STANDBY, its leader, its warm copy's applied revision and lag, its
// probes) and every other LockService, MonitorService and AdminService call
// with FAILED_PRECONDITION and the leader's address in the trailing
// metadata `lockwarden-leader-address` (gateways and the CLI follow it);
// grpc.health.v1 reports NOT_SERVING for those services. Meanwhile it keeps a
// warm copy of the state (replication/standby_replica.h: a scan, then the etcd
// watch applied to the same LockCore). Once elected it opens an EtcdStore
// fenced by its leader key's create revision, catches the copy up to the store
// and serves from it (a full recovery from etcd only if the copy is broken).
// When it loses leadership it stops serving at once and becomes a standby
// again; a deposed leader cannot write anyway, because every Txn compares
// the fencing token.
//
// HaLockServer is the LeadershipControl of the LockServer it runs while it
// leads: GetServerStatus reports role, leader address and fencing token,
// and AdminService.StepDown resigns the lease so a standby takes over
// (once per request id: a retry after the failover changes nothing).
//
// State transitions run on one thread fed by the election callbacks.
// Thread-safety: Start/Shutdown from one thread; the LeadershipControl
// methods from any thread.
#ifndef LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_
#define LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/replication/failure_detector.h"
#include "server/replication/leader_election.h"
#include "server/replication/replication_metrics.h"
#include "server/replication/standby_replica.h"
#include "server/replication/step_down_record.h"
#include "server/service/admin_service.h"
#include "server/service/lock_server.h"
#include "server/store/etcd_client.h"
#include "server/store/etcd_store.h"

namespace lockwarden::service {

inline constexpr char kLeaderAddressMetadata[] = "lockwarden-leader-address";
// StepDown waits at most this long for a successor to report in etcd.
inline constexpr absl::Duration kStepDownSuccessorWait = absl::Seconds(2);

struct HaServerOptions {
  LockServerOptions server;            // listen, core options, ...
  std::vector<std::string> etcd_endpoints;
  // Operations per commit Txn (store::EtcdStoreOptions::max_txn_ops); must
  // not exceed the etcd cluster's --max-txn-ops.
  size_t etcd_max_txn_ops = store::kEtcdMaxTxnOps;
  std::string advertise_address;       // Default: server.listen.
  std::string state_prefix = "/lockwarden/v1/state/";
  std::string election_prefix = replication::kDefaultElectionPrefix;
  std::string step_down_prefix = replication::kDefaultStepDownPrefix;
  absl::Duration lease_ttl = replication::kDefaultLeaseTtl;
  // Fast failover (failure_detector.h): standbys probe the leader's
  // grpc.health.v1 and depose it after probe_failures failed probes.
  bool fast_failover = true;
  absl::Duration probe_interval = replication::kDefaultProbeInterval;
  absl::Duration probe_timeout = replication::kDefaultProbeTimeout;
  int probe_failures = replication::kDefaultFailuresToDepose;
  absl::Duration probe_min_unresponsive =
      replication::kDefaultMinUnresponsiveSpan;
  // The listener uses TLS (server.credentials are not plaintext). Probes
  // then need probe_credentials (trusting the servers' certificates for
  // their advertised names); without them the detector is off and only
  // the lease replaces a dead leader.
  bool listener_tls = false;
  std::shared_ptr<grpc::ChannelCredentials>
      probe_credentials;              // MakeProbeCredentials.
  std::string probe_tls_server_name;  // See FailureDetectorOptions.
  // Standbys keep a warm copy of the state (replication/standby_replica.h)
  // and hand it to the leader's server at takeover instead of reloading.
  bool warm_standby = true;
  // Prometheus endpoint HOST:PORT of the replication series
  // (replication/replication_metrics.h), on every role; empty = off.
  std::string replication_metrics_listen;
};

// How standbys' health probes reach a TLS leader (--probe-tls-*): the CA
// the leader's certificate must chain to, and the client certificate to
// present when the servers require one (--tls-require-client-cert).
struct ProbeTlsOptions {
  std::string ca_file;    // Empty: the system roots.
  std::string cert_file;  // With key_file, or neither.
  std::string key_file;
};

// SSL channel credentials for the probes. INVALID_ARGUMENT naming the flag
// for a cert without a key (or the reverse) and unreadable PEM files.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeProbeCredentials(
    const ProbeTlsOptions& options);

class HaLockServer final : public LeadershipControl {
 public:
  static absl::StatusOr<std::unique_ptr<HaLockServer>> Start(HaServerOptions options,
                                                             const Clock* clock);
  ~HaLockServer();
  void Shutdown();

  bool IsLeader() const;

  // LeadershipControl (AdminService).
  v1::ServerRole Role() const override;
  std::string LeaderAddress() const override;
  // Resigns unless `request_id` was already honoured by an earlier leader
  // (replication/step_down_record.h): then it stays and names itself.
  absl::StatusOr<std::string> StepDown(const std::string& reason,
                                       const std::string& request_id) override;
  uint64_t LeaderChanges() const override;  // lockwarden_leader_changes_total

 private:
  enum class Transition { kElected, kLost, kStop };

  HaLockServer(HaServerOptions options, const Clock* clock);
  void Loop();
  void Push(Transition t, replication::Leadership leadership = {});
  absl::Status StartDetector();
  absl::Status StartMetrics();
  absl::Status StartStandby();
  void StopStandby();
  absl::Status BecomeLeader(const replication::Leadership& leadership);
  void StepDownLocal(const std::string& why);
  // Standby only: (re)starts the warm replica when missing or broken.
  void MaintainReplica();
  struct CachedLeader {
    std::string address;
    int64_t fencing_token = 0;
  };
  // The leader as etcd says, cached for kLeaderAddressCacheTtl; empty while
  // our own key leads but we do not serve (yet, or any more).
  CachedLeader CachedLeaderInfo() const;
  std::string CachedLeaderAddress() const;
  // Standby: this server's own GetServerStatus (reads etcd).
  v1::GetServerStatusResponse StandbyStatus() const;
  // Loop thread: replaces replica_ and what status calls read.
  void SetReplica(std::shared_ptr<replication::StandbyReplica> replica);

  class StandbyService;

  const HaServerOptions options_;
  const Clock* const clock_;
  const int64_t started_ms_;
  std::unique_ptr<store::EtcdClient> etcd_;
  std::unique_ptr<replication::LeaderElection> election_;
  std::unique_ptr<replication::LeaderFailureDetector> detector_;
  std::unique_ptr<StandbyService> standby_service_;
  std::unique_ptr<grpc::Server> standby_;    // Only on the loop thread.
  std::unique_ptr<LockServer> leader_;       // Only on the loop thread.
  // Standby's warm copy (only on the loop thread) and its read-only store.
  std::unique_ptr<store::EtcdStore> replica_store_;
  std::shared_ptr<replication::StandbyReplica> replica_;

  mutable absl::Mutex mu_;
  std::deque<std::pair<Transition, replication::Leadership>> queue_ ABSL_GUARDED_BY(mu_);
  bool is_leader_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t leader_changes_ ABSL_GUARDED_BY(mu_) = 0;  // Elected + lost.
  mutable CachedLeader leader_cache_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time leader_cached_at_ ABSL_GUARDED_BY(mu_) =
      absl::InfinitePast();
  // replica_ as status calls (gRPC threads) see it.
  std::shared_ptr<replication::StandbyReplica> published_replica_
      ABSL_GUARDED_BY(mu_);
  std::thread loop_;
  // Last: destroyed first, as its scrapes read the members above.
  std::unique_ptr<replication::ReplicationMetrics> metrics_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_
