// AdminService maintenance calls: DrainGateway (and EndGrace).
//
// DrainGateway sets a leader-local flag (GatewayActivity) that the activity
// interceptor applies to every later LockService.Lock through the identity:
// a blocking LOCK that cannot be granted at once is answered DENIED instead
// of BLOCKED, so no new waiter queues behind the identity. Everything else
// (immediate locks, UNLOCK, CANCEL, acks, SM_NOTIFY, already queued waiters
// and their grants) works as usual, so draining never strands a client:
// the queue only empties. The flag is memory of the serving leader: a
// restart or a failover clears it (docs/api.md, docs/operations.md).
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

}  // namespace lockwarden::service
