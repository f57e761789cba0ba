#include "server/service/admin_service.h"

#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace admin_internal {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Status CheckGatewayId(const std::string& gateway_id) {
  if (gateway_id.empty() || gateway_id.size() > kNameBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("gateway_id: 1..", kNameBytesMax, " bytes required"));
  }
  return absl::OkStatus();
}

absl::Status UnknownGatewayError(const std::string& gateway_id) {
  return absl::NotFoundError(
      absl::StrCat("gateway_id: unknown gateway identity '", gateway_id, "'"));
}

absl::Status ParsePage(int32_t page_size, const std::string& token,
                       size_t* limit, uint64_t* after) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size: must be >= 0");
  *limit = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  *after = 0;
  if (!token.empty() && !absl::SimpleAtoi(token, after)) {
    return absl::InvalidArgumentError("page_token: not a token from a previous page");
  }
  return absl::OkStatus();
}

}  // namespace admin_internal

namespace {

using admin_internal::ParsePage;

grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* ctx,
                               const absl::Status& status) {
  return admin_internal::Finish(ctx, status);
}

absl::StatusOr<core::LockFilter> ToFilter(const v1::LockFilter& f) {
  if (f.file_handle().size() > kFileHandleBytesMax) {
    return absl::InvalidArgumentError("filter.file_handle: longer than 64 bytes");
  }
  core::LockFilter out;
  out.fh = f.file_handle();
  out.client = f.client_name();
  if (f.has_owner() && out.client.empty()) out.client = f.owner().client_name();
  out.gateway = f.gateway_id();
  return out;
}

bool OwnerMatches(const v1::LockFilter& f, const core::Owner& o) {
  if (!f.has_owner()) return true;
  return o.client == f.owner().client_name() && o.svid == f.owner().svid() &&
         o.oh == f.owner().oh();
}

// Lists one page of items in stable-id order after `after`. `list(after,
// limit)` returns items in id order; `keep` filters; `emit` adds to the
// response. Scans only as far as the page needs (the core's lock is held
// meanwhile), so a page costs O(page), not O(table). Returns the next page
// token ("" on the last page); `*exhausted` tells whether the scan reached
// the end of the table.
template <typename Item, typename ListFn, typename IdFn, typename KeepFn,
          typename EmitFn>
std::string Paginate(ListFn list, IdFn id, KeepFn keep, EmitFn emit,
                     uint64_t after, size_t limit, uint64_t* emitted_count) {
  constexpr size_t kChunk = 256;
  uint64_t cursor = after;
  *emitted_count = 0;
  for (;;) {
    std::vector<Item> chunk = list(cursor, kChunk);
    for (const Item& item : chunk) {
      if (!keep(item)) {
        cursor = id(item);
        continue;
      }
      if (*emitted_count == limit) return absl::StrCat(cursor);  // More exist.
      emit(item);
      ++*emitted_count;
      cursor = id(item);
    }
    if (chunk.size() < kChunk) return std::string();
  }
}

// total_size: exact from the counters when unfiltered; for a filtered list,
// known only when everything fit on the first page (0 otherwise: unknown).
uint64_t TotalSize(bool filtered, uint64_t unfiltered_total, bool first_page,
                   const std::string& next_token, uint64_t emitted) {
  if (!filtered) return unfiltered_total;
  return first_page && next_token.empty() ? emitted : 0;
}

// Waiter.queue_position: 0-based place in its file's FIFO (id order). Each
// listed file's queue is scanned once per page (bounded by
// waiters_per_file_max).
class QueuePositions {
 public:
  explicit QueuePositions(const core::LockCore& core) : core_(core) {}
  uint32_t Of(const core::WaiterInfo& w) {
    auto [it, inserted] = files_.try_emplace(w.fh);
    if (inserted) {
      core::LockFilter only_file;
      only_file.fh = w.fh;
      uint32_t position = 0;
      for (const core::WaiterInfo& q :
           core_.ListWaiters(only_file, 0, core_.options().waiters_per_file_max)) {
        it->second[q.id] = position++;
      }
    }
    auto pos = it->second.find(w.id);
    return pos == it->second.end() ? 0 : pos->second;
  }

 private:
  const core::LockCore& core_;
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, uint32_t>> files_;
};

bool Filtered(const v1::LockFilter& f) {
  return !f.file_handle().empty() || !f.client_name().empty() || f.has_owner() ||
         !f.gateway_id().empty();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::ListLocks(
    grpc::CallbackServerContext* ctx, const v1::ListLocksRequest* request,
    v1::ListLocksResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Fail(ctx, s);
  }
  auto filter = ToFilter(request->filter());
  if (!filter.ok()) return Fail(ctx, filter.status());
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    uint64_t emitted = 0;
    const std::string next = Paginate<core::LockInfo>(
        [&](uint64_t a, size_t n) { return core.ListLocks(*filter, a, n); },
        [](const core::LockInfo& l) { return l.fencing_token; },
        [&](const core::LockInfo& l) { return OwnerMatches(request->filter(), l.owner); },
        [&](const core::LockInfo& l) { ToProto(l, response->add_locks()); }, after,
        limit, &emitted);
    response->set_next_page_token(next);
    response->set_total_size(TotalSize(Filtered(request->filter()), core.Counters().locks,
                                       request->page_token().empty(), next, emitted));
  });
  return Fail(ctx, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListShares(
    grpc::CallbackServerContext* ctx, const v1::ListSharesRequest* request,
    v1::ListSharesResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Fail(ctx, s);
  }
  auto filter = ToFilter(request->filter());
  if (!filter.ok()) return Fail(ctx, filter.status());
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    uint64_t emitted = 0;
    const std::string next = Paginate<core::ShareInfo>(
        [&](uint64_t a, size_t n) { return core.ListShares(*filter, a, n); },
        [](const core::ShareInfo& s) { return s.id; },
        [&](const core::ShareInfo& s) {
          return !request->filter().has_owner() || s.oh == request->filter().owner().oh();
        },
        [&](const core::ShareInfo& s) { ToProto(s, response->add_shares()); }, after,
        limit, &emitted);
    response->set_next_page_token(next);
    response->set_total_size(TotalSize(Filtered(request->filter()), core.Counters().shares,
                                       request->page_token().empty(), next, emitted));
  });
  return Fail(ctx, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListWaiters(
    grpc::CallbackServerContext* ctx, const v1::ListWaitersRequest* request,
    v1::ListWaitersResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Fail(ctx, s);
  }
  auto filter = ToFilter(request->filter());
  if (!filter.ok()) return Fail(ctx, filter.status());
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t now_ms) {
    uint64_t emitted = 0;
    QueuePositions positions(core);
    const std::string next = Paginate<core::WaiterInfo>(
        [&](uint64_t a, size_t n) { return core.ListWaiters(*filter, a, n); },
        [](const core::WaiterInfo& w) { return w.id; },
        [&](const core::WaiterInfo& w) { return OwnerMatches(request->filter(), w.owner); },
        [&](const core::WaiterInfo& w) {
          v1::Waiter* out = response->add_waiters();
          ToProto(w, out);
          out->set_queue_position(positions.Of(w));
          // blocked_by: the first conflicting granted lock (by offset), as
          // TEST would report it; none when only earlier waiters block it.
          core::TestQuery q{w.gateway, w.fh, w.owner, w.range, w.exclusive};
          const core::Reply r = core.Test(q, now_ms);
          if (r.status == core::LockStatus::kDenied && r.holder) {
            ToProto(*r.holder, out->add_blocked_by());
          }
        },
        after, limit, &emitted);
    response->set_next_page_token(next);
    response->set_total_size(TotalSize(Filtered(request->filter()), core.Counters().waiters,
                                       request->page_token().empty(), next, emitted));
  });
  return Fail(ctx, s);
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetServerStatus(
    grpc::CallbackServerContext* ctx, const v1::GetServerStatusRequest* request,
    v1::GetServerStatusResponse* response) {
  (void)request;
  const absl::Status health = runner_->Health();
  const absl::Status store_health = store_->Health();
  response->set_role(leadership_ != nullptr ? leadership_->Role()
                                            : v1::SERVER_ROLE_LEADER);
  response->set_server_id(info_.server_id);
  std::string address = info_.listen_address;
  if (const int port = bound_port_.load(); port != 0 && absl::EndsWith(address, ":0")) {
    address = absl::StrCat(address.substr(0, address.size() - 1), port);
  }
  response->set_leader_address(leadership_ != nullptr ? leadership_->LeaderAddress()
                                                      : address);
  response->set_fencing_token(store_->FencingToken());
  const std::string backend = store_->BackendName();
  response->set_store_backend(backend.find("rocksdb") != std::string::npos
                                  ? v1::STORE_BACKEND_ROCKSDB
                              : backend.find("etcd") != std::string::npos
                                  ? v1::STORE_BACKEND_ETCD
                                  : v1::STORE_BACKEND_MEMORY);
  if (store_health.ok() && health.ok()) {
    response->set_store_health(v1::STORE_HEALTH_OK);
  } else {
    response->set_store_health(v1::STORE_HEALTH_UNAVAILABLE);
    response->set_store_health_detail(
        std::string(!store_health.ok() ? store_health.message() : health.message()));
  }
  const store::CommitPipelineStats stats = runner_->PipelineStats();
  v1::CommitStats* cs = response->mutable_commit_stats();
  cs->set_commits(stats.commits);
  cs->set_mutations(stats.mutations);
  cs->set_mean_batch_size(stats.mean_batch_deltas);
  cs->set_max_batch_size(stats.max_batch_deltas);
  cs->set_last_commit_latency_us(absl::ToInt64Microseconds(stats.last_commit_latency));
  cs->set_mean_commit_latency_us(absl::ToInt64Microseconds(stats.p50_commit_latency));
  cs->set_failed_commits(stats.failed_commits);
  response->set_version(info_.version);
  SetTimestampMs(info_.started_ms, response->mutable_started_at());
  response->set_uptime_ms(static_cast<uint64_t>(clock_->NowMs() - info_.started_ms));
  *response->mutable_recovery() = info_.recovery;
  (void)runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    const core::CoreCounters c = core.Counters();
    response->set_lock_count(c.locks);
    response->set_waiter_count(c.waiters);
  });
  return Fail(ctx, absl::OkStatus());
}

}  // namespace lockwarden::service
