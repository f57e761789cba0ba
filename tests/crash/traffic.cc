#include "tests/crash/traffic.h"

#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/common/stubs.h"

namespace lockwarden::crash {
namespace {

// Blocked requests a lane remembers as CANCEL targets.
constexpr size_t kRememberedBlockedMax = 16;
// Client NSM state number sent with every LOCK (one per client: a client
// that changed it would look rebooted).
constexpr int32_t kClientState = 3;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using Target = CancelTarget;

}  // namespace

v1::LockOwner TrafficOwner(int i) {
  v1::LockOwner o;
  o.set_client_name(absl::StrCat("client-", i / 2));
  o.set_svid(100 + static_cast<uint32_t>(i));
  o.set_oh(absl::StrCat("oh-", i));
  return o;
}

std::string TrafficFile(int i) { return absl::StrCat("file-", i); }

Traffic::Traffic(TrafficOptions options, uint64_t seed, ChannelFactory channels,
                 testing::RequestIdGenerator* ids)
    : options_(std::move(options)), seed_(seed), channels_(std::move(channels)), ids_(ids) {
  lanes_.resize(static_cast<size_t>(options_.lanes) + 1);
}

Traffic::~Traffic() { Stop(); }

void Traffic::Start() {
  for (int lane = 0; lane < options_.lanes; ++lane) {
    threads_.emplace_back([this, lane] { RunLane(lane); });
  }
  if (options_.ack_grants) {
    threads_.emplace_back([this] { RunAcker(options_.lanes); });
  }
}

void Traffic::Stop() {
  stop_.store(true);
  {
    absl::MutexLock lock(&mu_);
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
  }
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

History Traffic::TakeHistory() {
  History all;
  for (History& h : lanes_) {
    for (Op& op : h) all.push_back(std::move(op));
    h.clear();
  }
  return all;
}

Op Traffic::Call(testing::Stubs& stubs, int lane, Request request) {
  Op op = Invoke(stubs, lane, std::move(request), options_.rpc_timeout);
  if (op.acked) acked_.fetch_add(1);
  return op;
}

Op Invoke(testing::Stubs& stubs, int lane, Request request, absl::Duration timeout) {
  Op op;
  op.lane = lane;
  op.request = std::move(request);
  auto ctx = testing::ContextWithDeadline(timeout);
  grpc::Status status;
  std::string reply;
  op.invoke_ns = NowNs();
  std::visit(
      [&](const auto& req) {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, v1::LockRequest>) {
          v1::LockResponse r;
          status = stubs.lock->Lock(ctx.get(), req, &r);
          reply = CanonicalReply(r);
        } else if constexpr (std::is_same_v<T, v1::UnlockRequest>) {
          v1::UnlockResponse r;
          status = stubs.lock->Unlock(ctx.get(), req, &r);
          reply = CanonicalReply(r);
        } else if constexpr (std::is_same_v<T, v1::CancelRequest>) {
          v1::CancelResponse r;
          status = stubs.lock->Cancel(ctx.get(), req, &r);
          reply = CanonicalReply(r);
        } else {
          v1::AckGrantResponse r;
          status = stubs.lock->AckGrant(ctx.get(), req, &r);
          reply = CanonicalReply(r);
        }
      },
      op.request);
  if (status.ok()) {
    op.complete_ns = NowNs();
    op.acked = true;
    op.reply = std::move(reply);
  } else {
    op.error = absl::StrCat(status.error_code(), ": ", status.error_message());
  }
  return op;
}

void Traffic::RunLane(int lane) {
  std::mt19937_64 rng(seed_ * 1000003 + static_cast<uint64_t>(lane));
  auto uniform = [&rng](uint64_t n) { return rng() % n; };
  // Recent BLOCKED requests of this lane, starting with earlier rounds'.
  std::vector<Target> blocked;
  for (const Target& t : options_.waiting) {
    if (blocked.size() == kRememberedBlockedMax) break;
    if (uniform(static_cast<uint64_t>(options_.lanes)) == 0) blocked.push_back(t);
  }
  History& out = lanes_[static_cast<size_t>(lane)];
  testing::Stubs stubs(channels_());
  for (int n = 0; n < options_.ops_per_lane_max && !stop_.load(); ++n) {
    Target t;
    t.fh = TrafficFile(static_cast<int>(uniform(options_.files)));
    t.owner = TrafficOwner(static_cast<int>(uniform(options_.owners)));
    const uint64_t offset = uniform(options_.range_limit);
    t.range.set_offset(offset);
    t.range.set_length(uniform(10) == 0 ? 0 : 1 + uniform(options_.range_limit - offset));
    t.exclusive = uniform(2) == 0;
    const uint64_t dice = uniform(100);
    Request req;
    if (dice < 60) {
      v1::LockRequest r;
      r.set_request_id(ids_->Next());
      r.set_gateway_id(options_.gateway);
      r.set_file_handle(t.fh);
      *r.mutable_owner() = t.owner;
      *r.mutable_range() = t.range;
      r.set_exclusive(t.exclusive);
      r.set_block(dice >= 35);
      r.set_client_state(kClientState);
      r.set_monitored(uniform(2) == 0);
      if (r.block()) {
        r.mutable_callback()->set_client_address("127.0.0.1");
        r.mutable_callback()->set_nlm_version(4);
        r.mutable_callback()->set_transport(v1::TRANSPORT_TCP);
        r.mutable_callback()->set_caller_name(t.owner.client_name());
        r.set_cookie(absl::StrCat("cookie-", lane, "-", n));
      }
      req = std::move(r);
    } else if (dice < 88) {
      v1::UnlockRequest r;
      r.set_request_id(ids_->Next());
      r.set_gateway_id(options_.gateway);
      r.set_file_handle(t.fh);
      *r.mutable_owner() = t.owner;
      if (uniform(5) == 0) t.range.Clear();  // Whole file.
      *r.mutable_range() = t.range;
      req = std::move(r);
    } else {
      if (!blocked.empty() && uniform(10) < 7) t = blocked[uniform(blocked.size())];
      v1::CancelRequest r;
      r.set_request_id(ids_->Next());
      r.set_gateway_id(options_.gateway);
      r.set_file_handle(t.fh);
      *r.mutable_owner() = t.owner;
      *r.mutable_range() = t.range;
      r.set_exclusive(t.exclusive);
      r.set_block(true);
      req = std::move(r);
    }
    Op op = Call(stubs, lane, std::move(req));
    const bool failed = !op.acked;
    if (op.acked && op.reply.rfind("LOCK_STATUS_BLOCKED", 0) == 0) {
      const auto& r = std::get<v1::LockRequest>(op.request);
      if (blocked.size() == kRememberedBlockedMax) blocked.erase(blocked.begin());
      blocked.push_back(Target{r.file_handle(), r.owner(), r.range(), r.exclusive()});
    }
    out.push_back(std::move(op));
    if (failed) return;  // Unknown outcome: this lane's history ends here.
  }
}

void Traffic::RunAcker(int lane) {
  std::mt19937_64 rng(seed_ * 1000003 + static_cast<uint64_t>(lane));
  History& out = lanes_[static_cast<size_t>(lane)];
  testing::Stubs stubs(channels_());
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&mu_);
    if (stop_.load()) return;
    stream_ctx_ = &ctx;
  }
  v1::WatchGrantsRequest watch;
  watch.set_gateway_id(options_.gateway);
  watch.set_instance_name("crash-test-acker");
  auto stream = stubs.lock->WatchGrants(&ctx, watch);
  v1::WatchGrantsResponse msg;
  bool failed = false;
  int n = 0;
  while (!failed && !stop_.load() && n < options_.ops_per_lane_max && stream->Read(&msg)) {
    for (const v1::GrantEvent& e : msg.events()) {
      v1::AckGrantRequest ack;
      ack.set_request_id(ids_->Next());
      ack.set_gateway_id(options_.gateway);
      ack.set_sequence(e.sequence());
      ack.set_outcome(rng() % 100 < 85 ? v1::GRANT_OUTCOME_DELIVERED
                                       : v1::GRANT_OUTCOME_REFUSED);
      Op op = Call(stubs, lane, std::move(ack));
      op.event = e;
      failed = !op.acked;
      out.push_back(std::move(op));
      ++n;
      if (failed || stop_.load()) break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    stream_ctx_ = nullptr;
  }
  ctx.TryCancel();
  (void)stream->Finish();
}

}  // namespace lockwarden::crash
