#include "server/service/monitor_service.h"

#include "absl/strings/str_cat.h"
#include "server/service/convert.h"
#include "server/service/event_stream.h"
#include "server/service/unary.h"

namespace lockwarden::service {
namespace {

v1::NsmResult ToNsmResult(const core::Reply& r) {
  return r.status == core::LockStatus::kGranted ? v1::NSM_RESULT_SUCCESS
                                                : v1::NSM_RESULT_FAIL;
}

}  // namespace

grpc::ServerUnaryReactor* MonitorServiceImpl::Mon(grpc::CallbackServerContext* ctx,
                                                  const v1::MonRequest* request,
                                                  v1::MonResponse* response) {
  return SubmitUnary(runner_, ctx, request, response,
                     [](const core::Reply& r, v1::MonResponse* out) {
                       out->set_result(ToNsmResult(r));
                       out->set_state(r.nsm_state);
                     });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::Unmon(grpc::CallbackServerContext* ctx,
                                                    const v1::UnmonRequest* request,
                                                    v1::UnmonResponse* response) {
  return SubmitUnary(runner_, ctx, request, response,
                     [](const core::Reply& r, v1::UnmonResponse* out) {
                       out->set_state(r.nsm_state);
                     });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::UnmonAll(
    grpc::CallbackServerContext* ctx, const v1::UnmonAllRequest* request,
    v1::UnmonAllResponse* response) {
  return SubmitUnary(runner_, ctx, request, response,
                     [](const core::Reply& r, v1::UnmonAllResponse* out) {
                       out->set_state(r.nsm_state);
                       out->set_removed(r.released);
                     });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::Stat(grpc::CallbackServerContext* ctx,
                                                   const v1::StatRequest* request,
                                                   v1::StatResponse* response) {
  if (request->gateway_id().empty() || request->gateway_id().size() > kNameBytesMax) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "gateway_id: must be 1..1024 bytes"));
    return reactor;
  }
  if (request->mon_name().size() > kNameBytesMax) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "mon_name: longer than 1024 bytes"));
    return reactor;
  }
  return ReadUnary(runner_, ctx, response,
                   [gateway = request->gateway_id()](const core::LockCore& core,
                                                     int64_t, v1::StatResponse* out) {
                     core::Reply r = core.Stat(gateway);
                     out->set_result(ToNsmResult(r));
                     out->set_state(r.nsm_state);
                   });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::Notify(grpc::CallbackServerContext* ctx,
                                                     const v1::NotifyRequest* request,
                                                     v1::NotifyResponse* response) {
  return SubmitUnary(runner_, ctx, request, response,
                     [](const core::Reply& r, v1::NotifyResponse* out) {
                       out->set_stale(r.stale);
                       out->set_outcome(r.stale ? v1::NOTIFY_OUTCOME_STALE
                                                : v1::NOTIFY_OUTCOME_APPLIED);
                       // The core reports one total (locks + shares + waiters).
                       out->set_released_locks(r.released);
                     });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::SimuCrash(
    grpc::CallbackServerContext* ctx, const v1::SimuCrashRequest* request,
    v1::SimuCrashResponse* response) {
  const std::string gateway = request->gateway_id();
  CoreRunner* runner = runner_;
  return SubmitUnary(
      runner_, ctx, request, response,
      [runner, gateway](const core::Reply& r, v1::SimuCrashResponse* out) {
        out->set_state(r.nsm_state);
        // Best effort detail: when grace ends and how many notifications wait.
        (void)runner->ReadNow([&](const core::LockCore& core, int64_t) {
          for (const core::GatewayInfo& g : core.ListGateways()) {
            if (g.name != gateway) continue;
            if (g.grace_until_ms != 0) {
              SetTimestampMs(g.grace_until_ms, out->mutable_grace_ends_at());
            }
            out->set_notifications_queued(static_cast<uint32_t>(g.pending_events));
          }
        });
      });
}

grpc::ServerWriteReactor<v1::WatchNotificationsResponse>*
MonitorServiceImpl::WatchNotifications(grpc::CallbackServerContext* ctx,
                                       const v1::WatchNotificationsRequest* request) {
  (void)ctx;
  if (request->gateway_id().empty() || request->gateway_id().size() > kNameBytesMax) {
    return new FailedStream<v1::WatchNotificationsResponse>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                     "gateway_id: must be 1..1024 bytes"));
  }
  return new EventStream<v1::WatchNotificationsResponse>(
      runner_, request->gateway_id(), request->after_sequence(),
      [this](const core::Event& e, v1::WatchNotificationsResponse* out) {
        v1::NotificationEvent n;
        if (!ToNotificationEvent(e, &n)) return false;
        DeliveryStatus status;
        if (GetDeliveryStatus(e.gateway, e.sequence, &status)) {
          n.set_attempts(status.attempts);
        }
        *out->add_events() = std::move(n);
        return true;
      });
}

grpc::ServerUnaryReactor* MonitorServiceImpl::AckNotification(
    grpc::CallbackServerContext* ctx, const v1::AckNotificationRequest* request,
    v1::AckNotificationResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (request->gateway_id().empty() || request->sequence() == 0) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 request->gateway_id().empty()
                                     ? "gateway_id: must not be empty"
                                     : "sequence: must not be 0"));
    return reactor;
  }
  core::AckEventCmd cmd;
  cmd.request_id = request->request_id();
  cmd.gateway = request->gateway_id();
  cmd.sequence = request->sequence();
  switch (request->outcome()) {
    case v1::NOTIFICATION_OUTCOME_DELIVERED:
      cmd.outcome = core::AckOutcome::kDelivered;
      break;
    case v1::NOTIFICATION_OUTCOME_GAVE_UP:
      cmd.outcome = core::AckOutcome::kFailedGiveUp;
      break;
    case v1::NOTIFICATION_OUTCOME_FAILED:
      // Not final: the event stays pending; remember the attempt.
      RecordFailure(*request);
      response->set_applied(true);
      reactor->Finish(grpc::Status::OK);
      return reactor;
    default:
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "outcome: must be DELIVERED, FAILED or GAVE_UP"));
      return reactor;
  }
  runner_->Submit(std::move(cmd), [reactor, response](absl::StatusOr<core::Reply> r) {
    if (!r.ok()) {
      reactor->Finish(ToGrpcStatus(r.status()));
      return;
    }
    response->set_applied(r->status != core::LockStatus::kNotFound);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

void MonitorServiceImpl::RecordFailure(const v1::AckNotificationRequest& request) {
  absl::MutexLock lock(&mu_);
  auto key = std::make_pair(request.gateway_id(), request.sequence());
  auto [it, inserted] = delivery_.try_emplace(key);
  if (inserted) {
    delivery_order_.push_back(key);
    if (delivery_order_.size() > kDeliveryStatusEntriesMax) {
      delivery_.erase(delivery_order_.front());
      delivery_order_.pop_front();
    }
  }
  it->second.attempts = std::max(it->second.attempts + 1, request.attempts());
  it->second.last_error = request.last_error().substr(0, kNameBytesMax);
}

bool MonitorServiceImpl::GetDeliveryStatus(const std::string& gateway,
                                           uint64_t sequence,
                                           DeliveryStatus* out) const {
  absl::MutexLock lock(&mu_);
  auto it = delivery_.find(std::make_pair(gateway, sequence));
  if (it == delivery_.end()) return false;
  *out = it->second;
  return true;
}

}  // namespace lockwarden::service
