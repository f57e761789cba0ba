// AdminService (lockwarden.v1): operators' view of and control over all lock
// state. See proto/lockwarden/v1/admin_service.proto.
//
// Thread-safety: handlers run concurrently; state lives in the CoreRunner;
// ServerInfo is constant after construction.
#ifndef LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_
#define LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_

#include <cstdint>
#include <string>

#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "server/service/core_runner.h"
#include "server/store/state_store.h"

namespace lockwarden::service {

inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;

// Facts about this process for GetServerStatus.
struct ServerInfo {
  std::string server_id;
  std::string listen_address;
  std::string version;
  int64_t started_ms = 0;
  v1::RecoveryStats recovery;
};

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // `runner` and `store` are not owned and must outlive the service.
  AdminServiceImpl(CoreRunner* runner, const store::StateStore* store,
                   const Clock* clock, ServerInfo info)
      : runner_(runner), store_(store), clock_(clock), info_(std::move(info)) {}

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

 private:
  CoreRunner* const runner_;
  const store::StateStore* const store_;
  const Clock* const clock_;
  const ServerInfo info_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_ADMIN_SERVICE_H_
