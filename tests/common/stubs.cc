#include "tests/common/stubs.h"

#include "absl/strings/str_cat.h"
#include "tests/common/server_process.h"

namespace lockwarden::testing {
namespace {

// Reads every page of one listing. `call(ctx, page_token, response)` issues
// one RPC; `take(response, out)` appends its rows.
template <typename Row, typename Response, typename CallFn, typename TakeFn>
absl::StatusOr<std::vector<Row>> ListAll(const char* what, CallFn call, TakeFn take) {
  std::vector<Row> out;
  std::string token;
  for (int page = 0; page < kListPagesMax; ++page) {
    auto ctx = ContextWithDeadline(kAdminCallTimeout);
    Response resp;
    grpc::Status s = call(ctx.get(), token, &resp);
    if (!s.ok()) {
      return absl::Status(FromGrpc(s).code(), absl::StrCat(what, ": ", s.error_message()));
    }
    take(resp, out);
    token = resp.next_page_token();
    if (token.empty()) return out;
  }
  return absl::OutOfRangeError(absl::StrCat(what, ": more than ", kListPagesMax, " pages"));
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

absl::StatusOr<std::vector<v1::Lock>> ListAllLocks(v1::AdminService::Stub& admin) {
  return ListAll<v1::Lock, v1::ListLocksResponse>(
      "ListLocks",
      [&](grpc::ClientContext* ctx, const std::string& token, v1::ListLocksResponse* r) {
        v1::ListLocksRequest req;
        req.set_page_size(1000);
        req.set_page_token(token);
        return admin.ListLocks(ctx, req, r);
      },
      [](const v1::ListLocksResponse& r, std::vector<v1::Lock>& out) {
        out.insert(out.end(), r.locks().begin(), r.locks().end());
      });
}

absl::StatusOr<std::vector<v1::Waiter>> ListAllWaiters(v1::AdminService::Stub& admin) {
  return ListAll<v1::Waiter, v1::ListWaitersResponse>(
      "ListWaiters",
      [&](grpc::ClientContext* ctx, const std::string& token, v1::ListWaitersResponse* r) {
        v1::ListWaitersRequest req;
        req.set_page_size(1000);
        req.set_page_token(token);
        return admin.ListWaiters(ctx, req, r);
      },
      [](const v1::ListWaitersResponse& r, std::vector<v1::Waiter>& out) {
        out.insert(out.end(), r.waiters().begin(), r.waiters().end());
      });
}

absl::StatusOr<std::vector<v1::Share>> ListAllShares(v1::AdminService::Stub& admin) {
  return ListAll<v1::Share, v1::ListSharesResponse>(
      "ListShares",
      [&](grpc::ClientContext* ctx, const std::string& token, v1::ListSharesResponse* r) {
        v1::ListSharesRequest req;
        req.set_page_size(1000);
        req.set_page_token(token);
        return admin.ListShares(ctx, req, r);
      },
      [](const v1::ListSharesResponse& r, std::vector<v1::Share>& out) {
        out.insert(out.end(), r.shares().begin(), r.shares().end());
      });
}

}  // namespace lockwarden::testing
