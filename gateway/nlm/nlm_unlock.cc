// NLM UNLOCK (4) and UNLOCK_MSG (9): LockService.Unlock.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoUnlock(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  v1::SessionCall call;
  v1::UnlockRequest* req = call.mutable_unlock();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  CallServer(p, std::move(call), "Unlock", [this, p](const v1::SessionResult& r) {
    NlmOutcome o;
    o.status = r.unlock().status();
    Finish(p, o);
  });
}

}  // namespace lockwarden::gateway::nlm
