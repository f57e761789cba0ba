// AdminService maintenance calls: DrainGateway and EndGrace.
//
// DrainGateway is a core command (core::DrainGatewayCmd: durable in the
// identity's record, replicated, deduplicated by request_id). While an
// identity is drained the core answers a blocking LOCK through it that
// cannot be granted at once with DENIED instead of queueing a waiter.
// Everything else (immediate locks, UNLOCK, CANCEL, acks, SM_NOTIFY, waiters
// queued before the drain and their grants) works as usual, so draining
// never strands a client: the queue only empties. The gateway learns it is
// drained from ListGateways and reports itself not ready (gateway/health).
// The activity interceptor keeps a copy of the flags only to count the
// blocking LOCKs a drain answered (metrics).
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

using admin_internal::Finish;
using admin_internal::CheckGatewayId;
using admin_internal::UnknownGatewayError;

void AdminServiceImpl::LoadDrainFlags() {
  (void)runner_->ReadNow([this](const core::LockCore& core, int64_t) {
    for (const core::GatewayInfo& g : core.ListGateways()) {
      activity_.SetDraining(g.name, g.draining);
    }
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DrainGateway(
    grpc::CallbackServerContext* ctx, const v1::DrainGatewayRequest* request,
    v1::DrainGatewayResponse* response) {
  const std::string target = absl::StrCat("gateway ", request->gateway_id(),
                                          request->drain() ? " drain" : " undrain");
  if (absl::Status s = Admit(ctx, "DrainGateway", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  if (absl::Status s = CheckGatewayId(request->gateway_id()); !s.ok()) {
    return Admitted(ctx, "DrainGateway", request->reason(), target).Finish(s);
  }
  core::DrainGatewayCmd cmd;
  cmd.request_id = request->request_id();
  cmd.gateway = request->gateway_id();
  cmd.drain = request->drain();
  const std::string gateway = request->gateway_id();
  return SubmitMutation(
      ctx, "DrainGateway", request->reason(), target, cmd,
      [this, gateway, response](const absl::StatusOr<core::Reply>& r) {
        absl::Status status = r.status();
        if (r.ok() && r->status == core::LockStatus::kNotFound) {
          status = UnknownGatewayError(gateway);
        } else if (r.ok() && r->status != core::LockStatus::kGranted) {
          status = absl::InvalidArgumentError(r->message);
        }
        if (status.ok()) {
          status = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
            for (const core::GatewayInfo& g : core.ListGateways()) {
              if (g.name != gateway) continue;
              response->set_draining(g.draining);
              response->set_pending_events(g.pending_events);
              core::LockFilter filter;
              filter.gateway = g.name;
              response->set_waiter_count(
                  core.ListWaiters(filter, 0, core.options().waiters_max)
                      .size());
              activity_.SetDraining(gateway, g.draining);
            }
          });
        }
        return status;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::EndGrace(grpc::CallbackServerContext* ctx,
                                                     const v1::EndGraceRequest* request,
                                                     v1::EndGraceResponse* response) {
  const std::string target = absl::StrCat("gateway ", request->gateway_id());
  if (absl::Status s = Admit(ctx, "EndGrace", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  if (absl::Status s = CheckGatewayId(request->gateway_id()); !s.ok()) {
    return Admitted(ctx, "EndGrace", request->reason(), target).Finish(s);
  }
  core::EndGraceCmd cmd;
  cmd.request_id = request->request_id();
  cmd.gateway = request->gateway_id();
  const std::string gateway = request->gateway_id();
  return SubmitMutation(
      ctx, "EndGrace", request->reason(), target, cmd,
      [gateway, response](const absl::StatusOr<core::Reply>& r) {
        if (!r.ok()) return r.status();
        switch (r->status) {
          case core::LockStatus::kGranted:
            response->set_released_locks(0);
            response->set_released_shares(0);
            return absl::OkStatus();
          case core::LockStatus::kNotFound:
            return UnknownGatewayError(gateway);
          case core::LockStatus::kGrace:
            return absl::FailedPreconditionError(absl::StrCat(
                "gateway identity '", gateway, "' is not in a grace period"));
          default:
            return absl::InvalidArgumentError(r->message);
        }
      });
}

}  // namespace lockwarden::service
