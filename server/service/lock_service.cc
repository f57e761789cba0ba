#include "server/service/lock_service.h"

#include "server/service/convert.h"
#include "server/service/event_stream.h"
#include "server/service/unary.h"

namespace lockwarden::service {
namespace {

// FillResponse for whichever response type SubmitUnary passes.
constexpr auto kFill = [](const core::Reply& r, auto* out) {
  FillResponse(r, out);
};

}  // namespace

grpc::ServerUnaryReactor* LockServiceImpl::Test(grpc::CallbackServerContext* ctx,
                                                const v1::TestRequest* request,
                                                v1::TestResponse* response) {
  auto query = ToQuery(*request);
  if (!query.ok()) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(ToGrpcStatus(query.status()));
    return reactor;
  }
  return ReadUnary(runner_, ctx, response,
                   [q = *std::move(query)](const core::LockCore& core, int64_t now,
                                           v1::TestResponse* out) {
                     FillResponse(core.Test(q, now), out);
                   });
}

grpc::ServerUnaryReactor* LockServiceImpl::Lock(grpc::CallbackServerContext* ctx,
                                                const v1::LockRequest* request,
                                                v1::LockResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerUnaryReactor* LockServiceImpl::Cancel(grpc::CallbackServerContext* ctx,
                                                  const v1::CancelRequest* request,
                                                  v1::CancelResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerUnaryReactor* LockServiceImpl::Unlock(grpc::CallbackServerContext* ctx,
                                                  const v1::UnlockRequest* request,
                                                  v1::UnlockResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerUnaryReactor* LockServiceImpl::Share(grpc::CallbackServerContext* ctx,
                                                 const v1::ShareRequest* request,
                                                 v1::ShareResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerUnaryReactor* LockServiceImpl::Unshare(grpc::CallbackServerContext* ctx,
                                                   const v1::UnshareRequest* request,
                                                   v1::UnshareResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerUnaryReactor* LockServiceImpl::FreeAll(grpc::CallbackServerContext* ctx,
                                                   const v1::FreeAllRequest* request,
                                                   v1::FreeAllResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerWriteReactor<v1::WatchGrantsResponse>* LockServiceImpl::WatchGrants(
    grpc::CallbackServerContext* ctx, const v1::WatchGrantsRequest* request) {
  (void)ctx;
  if (request->gateway_id().empty() || request->gateway_id().size() > kNameBytesMax) {
    return new FailedStream<v1::WatchGrantsResponse>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     "gateway_id: must be 1..1024 bytes"));
  }
  const int64_t grant_timeout_ms = runner_->core_options().grant_timeout_ms;
  return new EventStream<v1::WatchGrantsResponse>(
      runner_, request->gateway_id(), request->after_sequence(),
      [grant_timeout_ms](const core::Event& e, v1::WatchGrantsResponse* out) {
        v1::GrantEvent g;
        if (!ToGrantEvent(e, grant_timeout_ms, &g)) return false;
        *out->add_events() = std::move(g);
        return true;
      });
}

grpc::ServerUnaryReactor* LockServiceImpl::AckGrant(grpc::CallbackServerContext* ctx,
                                                    const v1::AckGrantRequest* request,
                                                    v1::AckGrantResponse* response) {
  return SubmitUnary(runner_, ctx, request, response, kFill);
}

grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse>*
LockServiceImpl::Session(grpc::CallbackServerContext* ctx) {
  (void)ctx;
  return new SessionStream(runner_, &sessions_);
}

}  // namespace lockwarden::service
