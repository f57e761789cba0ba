// LockServer: one lockwarden-server process assembled: store -> recovery ->
// core -> commit pipeline -> CoreRunner -> gRPC services (Lock, Monitor,
// Admin, grpc.health.v1, reflection).
//
// Start-up recovery loads every key from the store, rebuilds the pure core,
// verifies its invariants (no conflicting granted locks, ...) and only then
// serves. A plain restart changes no NSM state number and starts no grace.
//
// Thread-safety: Start/Shutdown from one thread; the rest is internal.
#ifndef LOCKWARDEN_SERVER_SERVICE_LOCK_SERVER_H_
#define LOCKWARDEN_SERVER_SERVICE_LOCK_SERVER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "server/core/lock_core.h"
#include "server/service/admin_service.h"
#include "server/service/core_runner.h"
#include "server/service/lock_service.h"
#include "server/service/metrics.h"
#include "server/service/monitor_service.h"
#include "server/store/commit_pipeline.h"
#include "server/store/state_store.h"

namespace lockwarden::service {

struct LockServerOptions {
  std::string listen = "127.0.0.1:7420";  // host:port; port 0 = ephemeral.
  std::string server_id;                  // Defaults to the host name.
  std::string version = "dev";
  core::CoreOptions core;
  store::CommitPipelineOptions pipeline;
  int64_t shutdown_timeout_ms = 5000;  // In-flight RPCs get this long.
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // Who may call mutating AdminService RPCs (see auth.h).
  AdminAuthOptions admin_auth;
  // Listener credentials (tls.h); null = insecure (plaintext).
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Leader election hook for GetServerStatus/StepDown; null = single node.
  LeadershipControl* leadership = nullptr;
  // Prometheus endpoint HOST:PORT (metrics.h); empty = off.
  std::string metrics_listen;
};

// The grpc.health.v1 service name standbys' failure detectors probe on the
// leader (replication::FailureDetectorOptions::health_service). Unlike ""
// and the service names, it is NOT_SERVING only when replacing this leader
// would help: a failed store or a shutdown. A store holding an interrupted
// snapshot import keeps it SERVING: every leader would refuse the same way,
// so deposing would only make leadership flap while the operator finishes
// or abandons the import.
inline constexpr char kLeadershipHealthService[] = "lockwarden.v1.Leadership";

class LockServer {
 public:
  // Recovers from `store` and starts serving. `clock` must outlive the server.
  static absl::StatusOr<std::unique_ptr<LockServer>> Start(
      const LockServerOptions& options, std::unique_ptr<store::StateStore> store,
      const Clock* clock);
  // As Start, but serves `warm_core` when given: a core already equal to the
  // store's state (a warm standby's replica, server/replication), so a
  // takeover skips the reload.
  static absl::StatusOr<std::unique_ptr<LockServer>> StartWithCore(
      const LockServerOptions& options, std::unique_ptr<store::StateStore> store,
      std::optional<core::LockCore> warm_core, const Clock* clock);

  ~LockServer();

  // The bound port (useful with port 0).
  int port() const { return port_; }
  const v1::RecoveryStats& recovery() const { return recovery_; }
  // The bound metrics HTTP port (0 when --metrics-listen is off).
  int metrics_port() const { return metrics_ != nullptr ? metrics_->port() : 0; }
  // NOT_SERVING, drain in-flight RPCs (bounded), flush commits, stop.
  void Shutdown();

  store::StateStore* store_for_testing() { return store_.get(); }
  CoreRunner* runner_for_testing() { return runner_.get(); }

 private:
  LockServer() = default;
  // Health of the service names (and of kLeadershipHealthService, which
  // stays SERVING through an interrupted import).
  void SetServing(bool serving);
  // Everything NOT_SERVING, kLeadershipHealthService included (shutdown).
  void SetNotServing();

  LockServerOptions options_;
  std::unique_ptr<store::StateStore> store_;
  std::unique_ptr<store::CommitPipeline> pipeline_;
  std::unique_ptr<CoreRunner> runner_;
  std::unique_ptr<LockServiceImpl> lock_service_;
  std::unique_ptr<MonitorServiceImpl> monitor_service_;
  std::unique_ptr<AdminServiceImpl> admin_service_;
  std::unique_ptr<ServerMetrics> metrics_;  // Outlives server_ (interceptors).
  std::unique_ptr<grpc::Server> server_;
  v1::RecoveryStats recovery_;
  int port_ = 0;
  bool shut_down_ = false;
};

// Loads and verifies a core from `store` (exposed for tests and tools).
absl::StatusOr<core::LockCore> RecoverCore(const store::StateStore& store,
                                           const core::CoreOptions& options,
                                           v1::RecoveryStats* stats,
                                           const Clock* clock);

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_LOCK_SERVER_H_
