// Client-side helpers for process-level tests: the three lockwarden.v1 stubs
// on one channel, and full (paginated) reads of the admin listings.
//
//   Stubs stubs(server->NewChannel());
//   auto locks = ListAllLocks(*stubs.admin);   // every page
//
// Thread-safety: gRPC stubs are thread-safe; the functions are stateless.
#ifndef LOCKWARDEN_TESTS_COMMON_STUBS_H_
#define LOCKWARDEN_TESTS_COMMON_STUBS_H_

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"

namespace lockwarden::testing {

// Deadline of one unary admin/list call in these helpers.
inline constexpr absl::Duration kAdminCallTimeout = absl::Seconds(30);
// Bound on pages one ListAll* call reads (1000 rows each).
inline constexpr int kListPagesMax = 10000;

struct Stubs {
  explicit Stubs(std::shared_ptr<grpc::Channel> ch)
      : channel(ch),
        lock(v1::LockService::NewStub(ch)),
        monitor(v1::MonitorService::NewStub(ch)),
        admin(v1::AdminService::NewStub(ch)) {}

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::LockService::Stub> lock;
  std::unique_ptr<v1::MonitorService::Stub> monitor;
  std::unique_ptr<v1::AdminService::Stub> admin;
};

// Every lock / waiter / share, all pages, in the server's order (fencing
// token / waiter id / share id).
absl::StatusOr<std::vector<v1::Lock>> ListAllLocks(v1::AdminService::Stub& admin);
absl::StatusOr<std::vector<v1::Waiter>> ListAllWaiters(v1::AdminService::Stub& admin);
absl::StatusOr<std::vector<v1::Share>> ListAllShares(v1::AdminService::Stub& admin);

// grpc::Status -> absl::Status with the same code and message.
absl::Status FromGrpc(const grpc::Status& s);

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_COMMON_STUBS_H_
