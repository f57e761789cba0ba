// NLM FREE_ALL (23), versions 3 and 4: LockService.FreeAll. The procedure
// has a void reply, so a failure cannot be reported to the client: it is
// logged (and the reply still sent, so the client does not retransmit
// forever; its locks stay until an SM_NOTIFY or an admin releases them).
#include <memory>
#include <utility>

#include "common/logging.h"
#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoFreeAll(const PendingPtr& p, NlmNotifyArgs args) {
  if (args.name.empty() || args.name.size() > kMaxCallerNameBytes) {
    edge_rejections_.fetch_add(1);
    LogEvent(LogLevel::kWarn, "nlm_request_rejected",
             {{"proc", p->call->procedure().name},
              {"peer", p->call->context().peer_address},
              {"reason", "FREE_ALL name is empty or longer than 1024 bytes"}});
    (void)p->call->Reply(nullptr);
    return;
  }
  RecordCaller(*p->call, args.name);
  auto req = std::make_shared<v1::FreeAllRequest>();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_client_name(args.name);
  req->set_state(args.state);
  server_->Call<v1::FreeAllResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::FreeAllResponse* resp, std::function<void(grpc::Status)> cb) {
        stubs.lock->async()->FreeAll(ctx, req.get(), resp, std::move(cb));
      },
      [this, p, name = args.name](const grpc::Status& status,
                                  const v1::FreeAllResponse& resp) {
        if (!status.ok()) {
          server_errors_.fetch_add(1);
          LogEvent(LogLevel::kError, "nlm_free_all_failed",
                   {{"client", name},
                    {"peer", p->call->context().peer_address},
                    {"code", static_cast<int>(status.error_code())},
                    {"error", status.error_message()}});
        } else {
          LogEvent(LogLevel::kInfo, "nlm_free_all",
                   {{"client", name},
                    {"released_locks", resp.released_locks()},
                    {"released_shares", resp.released_shares()},
                    {"cancelled_waiters", resp.cancelled_waiters()}});
        }
        (void)p->call->Reply(nullptr);
      });
}

}  // namespace lockwarden::gateway::nlm
