// NLM UNLOCK (4) and UNLOCK_MSG (9): LockService.Unlock.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoUnlock(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  auto req = std::make_shared<v1::UnlockRequest>();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  server_->Call<v1::UnlockResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::UnlockResponse* resp, std::function<void(grpc::Status)> done) {
        stubs.lock->async()->Unlock(ctx, req.get(), resp, std::move(done));
      },
      [this, p](const grpc::Status& status, const v1::UnlockResponse& resp) {
        if (!status.ok()) {
          Finish(p, ServerFailure(p, status, "Unlock"));
          return;
        }
        NlmOutcome o;
        o.status = resp.status();
        Finish(p, o);
      });
}

}  // namespace lockwarden::gateway::nlm
