// Conversions between the gRPC API (lockwarden.v1) and the pure core's types,
// with validation. This is the one place that maps:
//   - request messages -> core commands (INVALID_ARGUMENT naming the field),
//   - core replies -> response messages and lockwarden.v1.LockStatus,
//   - absl::Status -> grpc::Status.
//
// Thread-safety: pure functions.
#ifndef LOCKWARDEN_SERVER_SERVICE_CONVERT_H_
#define LOCKWARDEN_SERVER_SERVICE_CONVERT_H_

#include <cstdint>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lockwarden/v1/admin_service.pb.h"
#include "lockwarden/v1/lock_service.pb.h"
#include "lockwarden/v1/monitor_service.pb.h"
#include "server/core/types.h"
#include "server/core/views.h"

namespace lockwarden::service {

// Field limits enforced at the API edge (the core checks them again).
inline constexpr size_t kFileHandleBytesMax = 64;     // NFSv3 file handle.
inline constexpr size_t kNameBytesMax = 1024;         // SM_MAXSTRLEN.
inline constexpr size_t kOpaqueBytesMax = 1024;       // MAXNETOBJ_SZ.
inline constexpr size_t kRequestIdBytesMax = 128;
inline constexpr size_t kPrivBytes = 16;              // NSM priv.

grpc::Status ToGrpcStatus(const absl::Status& status);

v1::LockStatus ToProto(core::LockStatus status);

absl::StatusOr<core::LockCmd> ToCommand(const v1::LockRequest& r);
absl::StatusOr<core::UnlockCmd> ToCommand(const v1::UnlockRequest& r);
absl::StatusOr<core::CancelCmd> ToCommand(const v1::CancelRequest& r);
absl::StatusOr<core::TestQuery> ToQuery(const v1::TestRequest& r);
absl::StatusOr<core::ShareCmd> ToCommand(const v1::ShareRequest& r);
absl::StatusOr<core::UnshareCmd> ToCommand(const v1::UnshareRequest& r);
absl::StatusOr<core::FreeAllCmd> ToCommand(const v1::FreeAllRequest& r);
absl::StatusOr<core::AckEventCmd> ToCommand(const v1::AckGrantRequest& r);
absl::StatusOr<core::MonCmd> ToCommand(const v1::MonRequest& r);
absl::StatusOr<core::UnmonCmd> ToCommand(const v1::UnmonRequest& r);
absl::StatusOr<core::UnmonAllCmd> ToCommand(const v1::UnmonAllRequest& r);
absl::StatusOr<core::NotifyCmd> ToCommand(const v1::NotifyRequest& r);
absl::StatusOr<core::SimuCrashCmd> ToCommand(const v1::SimuCrashRequest& r);

// A core reply that is not an NLM outcome but a malformed request.
absl::Status ReplyError(const core::Reply& reply);

// Durable core replies -> LockService responses (unary and Session alike).
void FillResponse(const core::Reply& r, v1::TestResponse* out);
void FillResponse(const core::Reply& r, v1::LockResponse* out);
void FillResponse(const core::Reply& r, v1::CancelResponse* out);
void FillResponse(const core::Reply& r, v1::UnlockResponse* out);
void FillResponse(const core::Reply& r, v1::ShareResponse* out);
void FillResponse(const core::Reply& r, v1::UnshareResponse* out);
void FillResponse(const core::Reply& r, v1::FreeAllResponse* out);
void FillResponse(const core::Reply& r, v1::AckGrantResponse* out);

void ToProto(const core::Owner& in, v1::LockOwner* out);
void ToProto(const core::Range& in, v1::ByteRange* out);
void ToProto(const core::Holder& in, v1::LockHolder* out);
void ToProto(const core::LockInfo& in, v1::Lock* out);
void ToProto(const core::WaiterInfo& in, v1::Waiter* out);
void ToProto(const core::ShareInfo& in, v1::Share* out);
void SetTimestampMs(int64_t unix_ms, google::protobuf::Timestamp* out);

// Fills a GrantEvent from a core Granted event; false if `e` is not one.
// The lock is granted when the event is created, so its confirmation
// deadline is created_ms + grant_timeout_ms.
bool ToGrantEvent(const core::Event& e, int64_t grant_timeout_ms,
                  v1::GrantEvent* out);
// The same without a deadline (admin views that show the lock's own).
inline bool ToGrantEvent(const core::Event& e, v1::GrantEvent* out) {
  if (!ToGrantEvent(e, 0, out)) return false;
  out->clear_deadline();
  return true;
}
// Fills a NotificationEvent from an SM_NOTIFY or status-callback event.
bool ToNotificationEvent(const core::Event& e, v1::NotificationEvent* out);

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_CONVERT_H_
