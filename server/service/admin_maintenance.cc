// AdminService maintenance calls: DrainGateway and EndGrace.
//
// DrainGateway sets a leader-local flag (GatewayActivity) that the activity
// interceptor applies to every later LockService.Lock through the identity:
// a blocking LOCK that cannot be granted at once is answered DENIED instead
// of BLOCKED, so no new waiter queues behind the identity. Everything else
// (immediate locks, UNLOCK, CANCEL, acks, SM_NOTIFY, already queued waiters
// and their grants) works as usual, so draining never strands a client:
// the queue only empties. The flag is memory of the serving leader: a
// restart or a failover clears it (docs/api.md, docs/operations.md).
//
// EndGrace is a core command (durable, deduplicated by request_id): the
// identity's grace period and reclaim ledger end now. The core released the
// lost state when the state number was bumped, so nothing is freed here:
// non-reclaim requests are simply accepted again.
#include <string>
#include <variant>

#include "absl/strings/str_cat.h"
#include "server/service/admin_service.h"
#include "server/service/convert.h"

namespace lockwarden::service {

using admin_internal::Audit;
using admin_internal::Finish;

grpc::ServerUnaryReactor* AdminServiceImpl::DrainGateway(
    grpc::CallbackServerContext* ctx, const v1::DrainGatewayRequest* request,
    v1::DrainGatewayResponse* response) {
  const std::string target = absl::StrCat("gateway ", request->gateway_id(),
                                          request->drain() ? " drain" : " undrain");
  if (absl::Status s = Admit(ctx, "DrainGateway", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  if (request->gateway_id().empty() || request->gateway_id().size() > kNameBytesMax) {
    return Finish(ctx, absl::InvalidArgumentError("gateway_id: 1..1024 bytes required"));
  }
  bool known = false;
  uint64_t waiters = 0;
  uint64_t events = 0;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (const core::GatewayInfo& g : core.ListGateways()) {
      if (g.name != request->gateway_id()) continue;
      known = true;
      events = g.pending_events;
      core::LockFilter filter;
      filter.gateway = g.name;
      waiters = core.ListWaiters(filter, 0, core.options().waiters_max).size();
    }
  });
  if (s.ok() && !known) {
    s = absl::NotFoundError(
        absl::StrCat("gateway_id: unknown gateway identity '", request->gateway_id(), "'"));
  }
  if (s.ok()) {
    activity_.SetDraining(request->gateway_id(), request->drain());
    response->set_draining(request->drain());
    response->set_waiter_count(waiters);
    response->set_pending_events(events);
  }
  Audit("DrainGateway", auth_.CallerIdentity(*ctx), request->reason(), target, s);
  return Finish(ctx, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::EndGrace(grpc::CallbackServerContext* ctx,
                                                     const v1::EndGraceRequest* request,
                                                     v1::EndGraceResponse* response) {
  const std::string target = absl::StrCat("gateway ", request->gateway_id());
  if (absl::Status s = Admit(ctx, "EndGrace", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  if (request->gateway_id().empty() || request->gateway_id().size() > kNameBytesMax) {
    return Finish(ctx, absl::InvalidArgumentError("gateway_id: 1..1024 bytes required"));
  }
  core::EndGraceCmd cmd;
  cmd.request_id = request->request_id();
  cmd.gateway = request->gateway_id();
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const std::string caller = auth_.CallerIdentity(*ctx);
  const std::string reason = request->reason();
  const std::string gateway = request->gateway_id();
  runner_->Submit(cmd, [=](absl::StatusOr<core::Reply> r) {
    absl::Status status = r.status();
    if (r.ok()) {
      switch (r->status) {
        case core::LockStatus::kGranted:
          response->set_released_locks(0);
          response->set_released_shares(0);
          break;
        case core::LockStatus::kNotFound:
          status = absl::NotFoundError(
              absl::StrCat("gateway_id: unknown gateway identity '", gateway, "'"));
          break;
        case core::LockStatus::kGrace:
          status = absl::FailedPreconditionError(
              absl::StrCat("gateway identity '", gateway, "' is not in a grace period"));
          break;
        default:
          status = absl::InvalidArgumentError(r->message);
          break;
      }
    }
    Audit("EndGrace", caller, reason, target, status);
    reactor->Finish(ToGrpcStatus(status));
  });
  return reactor;
}

}  // namespace lockwarden::service
