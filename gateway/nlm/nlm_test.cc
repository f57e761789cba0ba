// NLM TEST (procedure 1) and TEST_MSG (6): LockService.Test.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoTest(const PendingPtr& p, NlmArgs args) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  auto req = std::make_shared<v1::TestRequest>();
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  req->set_exclusive(args.exclusive);
  server_->Call<v1::TestResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::TestResponse* resp, std::function<void(grpc::Status)> done) {
        stubs.lock->async()->Test(ctx, req.get(), resp, std::move(done));
      },
      [this, p](const grpc::Status& status, const v1::TestResponse& resp) {
        if (!status.ok()) {
          Finish(p, ServerFailure(p, status, "Test"));
          return;
        }
        NlmOutcome o;
        o.status = resp.status();
        if (resp.status() == v1::LOCK_STATUS_DENIED &&
            resp.has_conflicting_holder()) {
          o.holder = HolderOf(resp.conflicting_holder());
        }
        Finish(p, o);
      });
}

}  // namespace lockwarden::gateway::nlm
