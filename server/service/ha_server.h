// HaLockServer: lockwarden-server replicated on etcd (--store=etcd).
//
// Every instance campaigns in the etcd election (server/replication). While
// it is a standby it serves only a redirect: every LockService,
// MonitorService and AdminService call gets FAILED_PRECONDITION with the
// leader's address in the trailing metadata `lockwarden-leader-address`
// (gateways and the CLI follow it), and grpc.health.v1 reports NOT_SERVING
// for those services. Once elected it opens an EtcdStore fenced by its
// leader key's create revision, recovers the state from etcd and serves.
// When it loses leadership it stops serving at once and becomes a standby
// again; a deposed leader cannot write anyway, because every Txn compares
// the fencing token.
//
// State transitions run on one thread fed by the election callbacks.
// Thread-safety: Start/Shutdown from one thread.
#ifndef LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_
#define LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_

#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/replication/leader_election.h"
#include "server/service/lock_server.h"
#include "server/store/etcd_client.h"

namespace lockwarden::service {

inline constexpr char kLeaderAddressMetadata[] = "lockwarden-leader-address";

struct HaServerOptions {
  LockServerOptions server;            // listen, core options, ...
  std::vector<std::string> etcd_endpoints;
  std::string advertise_address;       // Default: server.listen.
  std::string state_prefix = "/lockwarden/v1/state/";
  std::string election_prefix = replication::kDefaultElectionPrefix;
  absl::Duration lease_ttl = replication::kDefaultLeaseTtl;
};

class HaLockServer {
 public:
  static absl::StatusOr<std::unique_ptr<HaLockServer>> Start(HaServerOptions options,
                                                             const Clock* clock);
  ~HaLockServer();
  void Shutdown();

  bool IsLeader() const;

 private:
  enum class Transition { kElected, kLost, kStop };

  HaLockServer(HaServerOptions options, const Clock* clock);
  void Loop();
  void Push(Transition t, replication::Leadership leadership = {});
  absl::Status StartStandby();
  void StopStandby();
  absl::Status BecomeLeader(const replication::Leadership& leadership);
  void StepDownLocal(const std::string& why);
  std::string CachedLeaderAddress();

  class StandbyService;

  const HaServerOptions options_;
  const Clock* const clock_;
  std::unique_ptr<store::EtcdClient> etcd_;
  std::unique_ptr<replication::LeaderElection> election_;
  std::unique_ptr<StandbyService> standby_service_;
  std::unique_ptr<grpc::Server> standby_;    // Only on the loop thread.
  std::unique_ptr<LockServer> leader_;       // Only on the loop thread.

  mutable absl::Mutex mu_;
  std::deque<std::pair<Transition, replication::Leadership>> queue_ ABSL_GUARDED_BY(mu_);
  bool is_leader_ ABSL_GUARDED_BY(mu_) = false;
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
  absl::Time leader_address_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread loop_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_HA_SERVER_H_
