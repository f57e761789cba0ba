// FakeLockwardenServer: an in-process gRPC server on 127.0.0.1 with canned
// but checked answers for LockService, AdminService (ListLocks, ListWaiters,
// GetServerStatus; everything else UNIMPLEMENTED) and grpc.health.v1, for
// tests that run the real lockwardenctl binary against it. It records every
// request so tests can assert that flags reached the request fields.
//
// Canned behaviour, keyed by file handle:
//   de ad  Lock and Test answer DENIED with kHolder as the conflicting lock.
//   b1 0c  a blocking Lock answers BLOCKED and queues a GrantEvent for the
//          owner/range asked for (sequence 8; the stream first sends an
//          unrelated event, sequence 7, and a heartbeat).
//   71 0e  a blocking Lock answers BLOCKED and no grant ever comes.
//   other  GRANTED with fencing token 42.
// ListLocks serves kFakeLockCount locks paginated by the request's page size.
// ForceRelease, SimulateClientReboot, DrainGateway and EndGrace record the
// request and answer fixed counts. ExportSnapshot streams a header and two
// entry chunks (kFakeSnapshotKeys keys) with a correct SHA-256, or a wrong
// one when the reason is "corrupt". ImportSnapshot records the stream and
// answers keys_imported = the entries received, or FAILED_PRECONDITION
// without `force` (as if the store held state).
// ResetGateway, ListShares and the rest stay UNIMPLEMENTED.
// In standby mode every RPC answers FAILED_PRECONDITION "not the leader"
// with trailing metadata lockwarden-leader-address = the given address (Lock
// requests are recorded all the same, to compare request ids).
//
// Thread safety: all methods may be called from any thread; the recorded
// requests are guarded by a mutex.
#ifndef LOCKWARDEN_CLI_FAKE_LOCKWARDEN_SERVER_H_
#define LOCKWARDEN_CLI_FAKE_LOCKWARDEN_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::cli::testing {

inline constexpr int kFakeLockCount = 5;
inline constexpr uint64_t kFakeFencingToken = 42;
inline constexpr int kFakeSnapshotKeys = 3;

// Everything the fake received, in arrival order.
struct RecordedRequests {
  std::vector<lockwarden::v1::LockRequest> locks;
  std::vector<lockwarden::v1::TestRequest> tests;
  std::vector<lockwarden::v1::UnlockRequest> unlocks;
  std::vector<lockwarden::v1::CancelRequest> cancels;
  std::vector<lockwarden::v1::WatchGrantsRequest> watches;
  std::vector<lockwarden::v1::AckGrantRequest> acks;
  std::vector<lockwarden::v1::ListLocksRequest> list_locks;
  std::vector<lockwarden::v1::ListWaitersRequest> list_waiters;
  int server_status_calls = 0;
  std::vector<lockwarden::v1::ForceReleaseRequest> force_releases;
  std::vector<lockwarden::v1::SimulateClientRebootRequest> reboots;
  std::vector<lockwarden::v1::DrainGatewayRequest> drains;
  std::vector<lockwarden::v1::EndGraceRequest> end_graces;
  std::vector<lockwarden::v1::ExportSnapshotRequest> exports;
  // Every message of every ImportSnapshot stream, in order.
  std::vector<lockwarden::v1::ImportSnapshotRequest> imports;
  // Value of the "authorization" metadata of the last call ("" if none).
  std::string last_authorization;
  // RPCs answered "not the leader" (standby mode).
  int redirects = 0;
};

class FakeLockwardenServer {
 public:
  // Starts on 127.0.0.1 with an OS-chosen port. A non-empty
  // `standby_leader_address` makes it a standby pointing there.
  // `credentials` default to plain text.
  static std::unique_ptr<FakeLockwardenServer> Start(
      std::string standby_leader_address = "",
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~FakeLockwardenServer();

  std::string address() const;
  RecordedRequests recorded() const;
  // Health of a named service (the process, "", is always SERVING).
  void SetServing(const std::string& service, bool serving);

  class State;  // shared with the service implementations

 private:
  FakeLockwardenServer() = default;
  std::shared_ptr<State> state_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace lockwarden::cli::testing

#endif  // LOCKWARDEN_CLI_FAKE_LOCKWARDEN_SERVER_H_
