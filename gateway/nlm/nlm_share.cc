// NLM SHARE (20) and UNSHARE (21), versions 3 and 4: LockService.Share and
// LockService.Unshare. The reply's `sequence` is always 0: XNFS leaves it
// unspecified, and Linux lockd and NFS-Ganesha send 0 as well.
#include <memory>
#include <utility>

#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoShare(const PendingPtr& p, NlmShareArgs args, bool share) {
  if (RejectAtEdge(p, args.caller_name, args.fh, args.oh)) return;
  auto done = [this, p, share](const grpc::Status& status,
                               v1::LockStatus result) {
    if (!status.ok()) {
      Finish(p, ServerFailure(p, status, share ? "Share" : "Unshare"));
      return;
    }
    NlmOutcome o;
    o.status = result;
    Finish(p, o);
  };
  if (share) {
    auto req = std::make_shared<v1::ShareRequest>();
    req->set_request_id(p->request_id);
    req->set_gateway_id(options_.gateway_name);
    req->set_file_handle(args.fh);
    *req->mutable_owner() = ShareOwnerOf(args);
    req->set_access(ShareAccessOf(args.access));
    req->set_deny(ShareDenyOf(args.mode));
    req->set_reclaim(args.reclaim);
    server_->Call<v1::ShareResponse>(
        [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
              v1::ShareResponse* resp, std::function<void(grpc::Status)> cb) {
          stubs.lock->async()->Share(ctx, req.get(), resp, std::move(cb));
        },
        [done](const grpc::Status& status, const v1::ShareResponse& resp) {
          done(status, resp.status());
        });
    return;
  }
  auto req = std::make_shared<v1::UnshareRequest>();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.fh);
  *req->mutable_owner() = ShareOwnerOf(args);
  req->set_access(ShareAccessOf(args.access));
  req->set_deny(ShareDenyOf(args.mode));
  server_->Call<v1::UnshareResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::UnshareResponse* resp, std::function<void(grpc::Status)> cb) {
        stubs.lock->async()->Unshare(ctx, req.get(), resp, std::move(cb));
      },
      [done](const grpc::Status& status, const v1::UnshareResponse& resp) {
        done(status, resp.status());
      });
}

}  // namespace lockwarden::gateway::nlm
