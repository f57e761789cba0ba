// AdminService (lockwarden.v1): operators' view of and control over all lock
// state. See proto/lockwarden/v1/admin_service.proto and docs/operations.md.
//
// The handlers are split by kind:
//   admin_service.cc    locks, shares, waiters, server status
//   admin_views.cc      wait-for graph, clients, monitors, gateways, grace,
//                       pending events
//   admin_mutations.cc  force-release, client reboot, gateway reset,
//                       step-down (each audited, each authorised by `auth`)
//   admin_maintenance.cc  drain a gateway identity, end a grace period
//   admin_activity.cc   gateway/client activity, streams and drain flags,
//                       fed by a server interceptor
//   admin_snapshot.cc   ExportSnapshot (consistent, chunked, SHA-256)
//   admin_import.cc     ImportSnapshot (verify all, then one atomic swap)
//
// Views read the core under CoreRunner::ReadNow (the core's mutex), one page
// at a time, so a listing never stalls the lock service for O(table).
// Mutations go through CoreRunner::Submit like any NLM request: their
// replies are released only once durable. Each writes one audit line: when
// Admit refuses it, else when its own validation rejects it or it completes
// (AdmittedMutation::Finish, which SubmitMutation calls with the core's
// reply). Only a validate_only dry run that passes writes none.
//
// Thread-safety: handlers run concurrently; state lives in the CoreRunner;
// ServerInfo, the authoriser and the leadership hook are constant after
// construction.
#ifndef LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_
#define LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "server/service/admin_activity.h"
#include "server/service/auth.h"
#include "server/service/core_runner.h"
#include "server/store/state_store.h"

namespace lockwarden::service {

inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;
// GetWaitForGraph returns at most this many edges (proto contract).
inline constexpr size_t kWaitForEdgesMax = 10000;
// Longest `reason` accepted on a mutation (it goes to the audit log).
inline constexpr size_t kReasonBytesMax = 1024;
// Most key and value bytes an ImportSnapshot holds in memory while it
// verifies the stream.
inline constexpr size_t kImportBytesMax = 256u << 20;

namespace admin_internal {

// An admitted mutation: its call's reactor and the fields of its audit
// line, copied so that a completion callback can keep it after the handler
// returned. Finish() writes the one "admin_audit" line of the call, then
// answers it: the log has the outcome before the client does.
class AdmittedMutation {
 public:
  // Takes `ctx`'s default reactor: from here on the call is answered only
  // through Finish(), once.
  AdmittedMutation(grpc::CallbackServerContext* ctx, absl::string_view call,
                   std::string caller, std::string reason, std::string target);

  // Audits `outcome`, finishes the call with it and returns its reactor.
  grpc::ServerUnaryReactor* Finish(const absl::Status& outcome) const;
  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

 private:
  grpc::ServerUnaryReactor* reactor_;
  std::string call_;
  std::string caller_;
  std::string reason_;
  std::string target_;
};

// Turns the core's reply to a mutation's command into the call's outcome,
// filling its response on the way.
using MutationOutcome =
    std::function<absl::Status(const absl::StatusOr<core::Reply>& reply)>;

}  // namespace admin_internal

// Leadership of this server, as replication sees it. The single-node server
// has none (nullptr): it is always the leader and cannot step down.
class LeadershipControl {
 public:
  virtual ~LeadershipControl() = default;
  virtual v1::ServerRole Role() const = 0;
  // host:port of the current leader ("" if unknown).
  virtual std::string LeaderAddress() const = 0;
  // Gives up leadership; returns the new leader's address if one took over
  // before returning, else "". FAILED_PRECONDITION if not the leader. A
  // retry of a `request_id` an earlier leader honoured changes nothing.
  virtual absl::StatusOr<std::string> StepDown(const std::string& reason,
                                               const std::string& request_id) = 0;
  // Leadership transitions (elected or lost) this process has gone through
  // since it started; exported as lockwarden_leader_changes_total. The
  // replicated server counts them; 0 where leadership never changes.
  virtual uint64_t LeaderChanges() const { return 0; }
};

// Facts about this process for GetServerStatus.
struct ServerInfo {
  std::string server_id;
  std::string listen_address;  // As bound (the real port when 0 was asked).
  std::string version;
  int64_t started_ms = 0;
  v1::RecoveryStats recovery;
};

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `runner`, `store`, `clock` and `leadership` (may be null: single node)
  // are not owned and must outlive the service.
  AdminServiceImpl(CoreRunner* runner, const store::StateStore* store,
                   const Clock* clock, ServerInfo info,
                   AdminAuthorizer auth = AdminAuthorizer(),
                   LeadershipControl* leadership = nullptr)
      : runner_(runner),
        store_(store),
        clock_(clock),
        info_(std::move(info)),
        auth_(std::move(auth)),
        leadership_(leadership),
        activity_(clock) {
    LoadDrainFlags();
  }

  // Called once the listener is bound: with --listen=HOST:0, the address
  // GetServerStatus reports carries the real port.
  void SetBoundPort(int port) { bound_port_.store(port); }

  // Request activity, streams and drain flags. Register
  // activity()->NewInterceptorFactory() on the server that hosts the
  // LockService and MonitorService (see admin_activity.h).
  GatewayActivity* activity() { return &activity_; }

  // Copies the core's durable drain flags into activity() (metrics only).
  void LoadDrainFlags();

  // ---- Views (admin_service.cc) ----
  grpc::ServerUnaryReactor* ListLocks(grpc::CallbackServerContext* ctx,
                                      const v1::ListLocksRequest* request,
                                      v1::ListLocksResponse* response) override;
  grpc::ServerUnaryReactor* ListShares(grpc::CallbackServerContext* ctx,
                                       const v1::ListSharesRequest* request,
                                       v1::ListSharesResponse* response) override;
  grpc::ServerUnaryReactor* ListWaiters(grpc::CallbackServerContext* ctx,
                                        const v1::ListWaitersRequest* request,
                                        v1::ListWaitersResponse* response) override;
  grpc::ServerUnaryReactor* GetServerStatus(
      grpc::CallbackServerContext* ctx, const v1::GetServerStatusRequest* request,
      v1::GetServerStatusResponse* response) override;

  // ---- Views (admin_views.cc) ----
  grpc::ServerUnaryReactor* GetWaitForGraph(
      grpc::CallbackServerContext* ctx, const v1::GetWaitForGraphRequest* request,
      v1::GetWaitForGraphResponse* response) override;
  grpc::ServerUnaryReactor* ListClients(grpc::CallbackServerContext* ctx,
                                        const v1::ListClientsRequest* request,
                                        v1::ListClientsResponse* response) override;
  grpc::ServerUnaryReactor* ListMonitors(grpc::CallbackServerContext* ctx,
                                         const v1::ListMonitorsRequest* request,
                                         v1::ListMonitorsResponse* response) override;
  grpc::ServerUnaryReactor* ListGateways(grpc::CallbackServerContext* ctx,
                                         const v1::ListGatewaysRequest* request,
                                         v1::ListGatewaysResponse* response) override;
  grpc::ServerUnaryReactor* GetGraceStatus(
      grpc::CallbackServerContext* ctx, const v1::GetGraceStatusRequest* request,
      v1::GetGraceStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListPendingEvents(
      grpc::CallbackServerContext* ctx, const v1::ListPendingEventsRequest* request,
      v1::ListPendingEventsResponse* response) override;

  // ---- Mutations (admin_mutations.cc) ----
  grpc::ServerUnaryReactor* ForceRelease(grpc::CallbackServerContext* ctx,
                                         const v1::ForceReleaseRequest* request,
                                         v1::ForceReleaseResponse* response) override;
  grpc::ServerUnaryReactor* SimulateClientReboot(
      grpc::CallbackServerContext* ctx,
      const v1::SimulateClientRebootRequest* request,
      v1::SimulateClientRebootResponse* response) override;
  grpc::ServerUnaryReactor* ResetGateway(grpc::CallbackServerContext* ctx,
                                         const v1::ResetGatewayRequest* request,
                                         v1::ResetGatewayResponse* response) override;
  grpc::ServerUnaryReactor* StepDown(grpc::CallbackServerContext* ctx,
                                     const v1::StepDownRequest* request,
                                     v1::StepDownResponse* response) override;

  // ---- Maintenance (admin_maintenance.cc) ----
  grpc::ServerUnaryReactor* DrainGateway(grpc::CallbackServerContext* ctx,
                                         const v1::DrainGatewayRequest* request,
                                         v1::DrainGatewayResponse* response) override;
  grpc::ServerUnaryReactor* EndGrace(grpc::CallbackServerContext* ctx,
                                     const v1::EndGraceRequest* request,
                                     v1::EndGraceResponse* response) override;

  // ---- Snapshots (admin_snapshot.cc) ----
  grpc::ServerWriteReactor<v1::ExportSnapshotResponse>* ExportSnapshot(
      grpc::CallbackServerContext* ctx, const v1::ExportSnapshotRequest* request) override;
  grpc::ServerReadReactor<v1::ImportSnapshotRequest>* ImportSnapshot(
      grpc::CallbackServerContext* ctx, v1::ImportSnapshotResponse* response) override;

 private:
  // Authorisation + reason check + audit line for a mutation.
  absl::Status Admit(grpc::CallbackServerContext* ctx, absl::string_view call,
                     const std::string& reason, absl::string_view target) const;
  // The mutation `call` on `target` that Admit let in, for its caller.
  admin_internal::AdmittedMutation Admitted(grpc::CallbackServerContext* ctx,
                                            absl::string_view call,
                                            const std::string& reason,
                                            absl::string_view target) const;
  // Submits `cmd` for the admitted mutation `call`; once the core answered,
  // `outcome` makes the call's status of the reply, and the call is audited
  // and finished. Returns the call's reactor.
  grpc::ServerUnaryReactor* SubmitMutation(
      grpc::CallbackServerContext* ctx, absl::string_view call,
      const std::string& reason, absl::string_view target, core::Command cmd,
      admin_internal::MutationOutcome outcome);

  CoreRunner* const runner_;
  const store::StateStore* const store_;
  const Clock* const clock_;
  const ServerInfo info_;
  const AdminAuthorizer auth_;
  LeadershipControl* const leadership_;
  GatewayActivity activity_;
  std::atomic<int> bound_port_{0};
  std::atomic<bool> export_running_{false};
  std::atomic<bool> import_running_{false};
  class ImportReactor;  // admin_import.cc
};

// Shared by the admin_*.cc files.
namespace admin_internal {

// One "admin_audit" log line for a mutation.
void Audit(absl::string_view call, const std::string& caller, const std::string& reason,
           absl::string_view target, const absl::Status& outcome);

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                 const absl::Status& status);
// A request's gateway_id: 1..kNameBytesMax bytes (INVALID_ARGUMENT otherwise).
absl::Status CheckGatewayId(const std::string& gateway_id);
// NOT_FOUND naming an identity the core does not know.
absl::Status UnknownGatewayError(const std::string& gateway_id);
// Page tokens are the decimal stable id (or offset) of the last item returned.
absl::Status ParsePage(int32_t page_size, const std::string& token,
                       size_t* limit, uint64_t* after);

}  // namespace admin_internal

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_
