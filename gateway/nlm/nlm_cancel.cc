// NLM CANCEL (3) and CANCEL_MSG (8): LockService.Cancel.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoCancel(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  v1::SessionCall call;
  v1::CancelRequest* req = call.mutable_cancel();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  req->set_exclusive(args.exclusive);
  req->set_block(args.block);
  CallServer(p, std::move(call), "Cancel", [this, p](const v1::SessionResult& r) {
    NlmOutcome o;
    o.status = r.cancel().status();
    Finish(p, o);
  });
}

}  // namespace lockwarden::gateway::nlm
