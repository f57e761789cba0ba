// NLM CANCEL (3) and CANCEL_MSG (8): LockService.Cancel.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoCancel(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  auto req = std::make_shared<v1::CancelRequest>();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  req->set_exclusive(args.exclusive);
  req->set_block(args.block);
  server_->Call<v1::CancelResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::CancelResponse* resp, std::function<void(grpc::Status)> done) {
        stubs.lock->async()->Cancel(ctx, req.get(), resp, std::move(done));
      },
      [this, p](const grpc::Status& status, const v1::CancelResponse& resp) {
        if (!status.ok()) {
          Finish(p, ServerFailure(p, status, "Cancel"));
          return;
        }
        NlmOutcome o;
        o.status = resp.status();
        Finish(p, o);
      });
}

}  // namespace lockwarden::gateway::nlm
