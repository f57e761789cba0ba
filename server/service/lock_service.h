// LockService (lockwarden.v1): NLM lock operations for gateways and gRPC
// clients, on the CoreRunner. See proto/lockwarden/v1/lock_service.proto.
//
// Thread-safety: handlers run concurrently on gRPC threads; all lock state
// is in the CoreRunner, the live Session streams in a SessionRegistry.
#ifndef LOCKWARDEN_SERVER_SERVICE_LOCK_SERVICE_H_
#define LOCKWARDEN_SERVER_SERVICE_LOCK_SERVICE_H_

#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "server/service/core_runner.h"
#include "server/service/session_stream.h"

namespace lockwarden::service {

class LockServiceImpl final : public v1::LockService::CallbackService {
 public:
  explicit LockServiceImpl(CoreRunner* runner) : runner_(runner) {}

  grpc::ServerUnaryReactor* Test(grpc::CallbackServerContext* ctx,
                                 const v1::TestRequest* request,
                                 v1::TestResponse* response) override;
  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx,
                                 const v1::LockRequest* request,
                                 v1::LockResponse* response) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx,
                                   const v1::CancelRequest* request,
                                   v1::CancelResponse* response) override;
  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx,
                                   const v1::UnlockRequest* request,
                                   v1::UnlockResponse* response) override;
  grpc::ServerUnaryReactor* Share(grpc::CallbackServerContext* ctx,
                                  const v1::ShareRequest* request,
                                  v1::ShareResponse* response) override;
  grpc::ServerUnaryReactor* Unshare(grpc::CallbackServerContext* ctx,
                                    const v1::UnshareRequest* request,
                                    v1::UnshareResponse* response) override;
  grpc::ServerUnaryReactor* FreeAll(grpc::CallbackServerContext* ctx,
                                    const v1::FreeAllRequest* request,
                                    v1::FreeAllResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchGrantsResponse>* WatchGrants(
      grpc::CallbackServerContext* ctx, const v1::WatchGrantsRequest* request) override;
  grpc::ServerUnaryReactor* AckGrant(grpc::CallbackServerContext* ctx,
                                     const v1::AckGrantRequest* request,
                                     v1::AckGrantResponse* response) override;
  grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse>* Session(
      grpc::CallbackServerContext* ctx) override;

  // Ends every Session stream (UNAVAILABLE, after answering what is in
  // flight) and refuses new ones: called when the server shuts down, so
  // that gateways move on at once instead of at the shutdown deadline.
  void CloseSessions() { sessions_.CloseAll(); }

 private:
  CoreRunner* const runner_;
  SessionRegistry sessions_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_LOCK_SERVICE_H_
