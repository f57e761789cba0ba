// NLM TEST (procedure 1) and TEST_MSG (6): LockService.Test.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoTest(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  v1::SessionCall call;
  v1::TestRequest* req = call.mutable_test();
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  req->set_exclusive(args.exclusive);
  CallServer(p, std::move(call), "Test", [this, p](const v1::SessionResult& r) {
    const v1::TestResponse& resp = r.test();
    NlmOutcome o;
    o.status = resp.status();
    if (resp.status() == v1::LOCK_STATUS_DENIED && resp.has_conflicting_holder()) {
      o.holder = HolderOf(resp.conflicting_holder());
    }
    Finish(p, o);
  });
}

}  // namespace lockwarden::gateway::nlm
