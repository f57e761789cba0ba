// Tests of the crash-history checker on histories produced by a simulated
// server (a LockCore applying the requests in a chosen order), so that both
// acceptance and each kind of rejection are known to work.
#include "tests/crash/history.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/service/convert.h"
#include "tests/crash/traffic.h"

namespace lockwarden::crash {
namespace {

constexpr int64_t kTimeoutMs = 3'600'000;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

v1::LockRequest Lock(const std::string& id, int owner, uint64_t off, uint64_t len, bool block) {
  v1::LockRequest r;
  r.set_request_id(id);
  r.set_gateway_id("gw");
  r.set_file_handle("f");
  *r.mutable_owner() = TrafficOwner(owner);
  r.mutable_range()->set_offset(off);
  r.mutable_range()->set_length(len);
  r.set_exclusive(true);
  r.set_block(block);
  return r;
}

v1::UnlockRequest Unlock(const std::string& id, int owner) {
  v1::UnlockRequest r;
  r.set_request_id(id);
  r.set_gateway_id("gw");
  r.set_file_handle("f");
  *r.mutable_owner() = TrafficOwner(owner);
  return r;
}

// A simulated server: applies ops in `apply_order` (indexes into `ops`),
// fills in the replies of the acked ones, and returns the store contents
// after the first `durable` of them.
KeyValues Simulate(History& ops, const std::vector<size_t>& apply_order, size_t durable) {
  core::LockCore server(ModelOptions(kTimeoutMs));
  int64_t now = 1000;
  KeyValues kvs;
  for (size_t k = 0; k < apply_order.size(); ++k) {
    Op& op = ops[apply_order[k]];
    core::Command cmd = std::visit(
        [](const auto& r) { return core::Command(*service::ToCommand(r)); }, op.request);
    core::Effects fx = server.Apply(cmd, now++);
    if (op.acked) op.reply = CanonicalReplyOfCore(op.request, fx.reply);
    if (k + 1 == durable) {
      const auto snap = server.Snapshot();
      kvs.assign(snap.begin(), snap.end());
    }
  }
  return kvs;
}

Op MakeOp(int lane, Request r, int64_t invoke, int64_t complete) {
  Op op;
  op.lane = lane;
  op.request = std::move(r);
  op.invoke_ns = invoke;
  op.complete_ns = complete;
  op.acked = complete != kNeverNs;
  return op;
}

// Owner 0 locks, owner 1 is denied, owner 2 blocks, owner 0 unlocks (owner 2
// is granted), then one unknown-outcome lock by owner 3.
History BaseHistory() {
  History h;
  h.push_back(MakeOp(0, Lock("a", 0, 0, 10, false), 0, 10));
  h.push_back(MakeOp(1, Lock("b", 1, 5, 5, false), 20, 30));
  h.push_back(MakeOp(2, Lock("c", 2, 0, 0, true), 40, 50));
  h.push_back(MakeOp(0, Unlock("d", 0), 60, 70));
  h.push_back(MakeOp(1, Lock("e", 3, 100, 1, false), 80, kNeverNs));
  return h;
}

TEST(HistoryCheckTest, AcceptsTheApplyOrderWithAnUnknownOpApplied) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3, 4}, 5);
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(r.unknown_applied, 1u);
  EXPECT_EQ(r.applied, 5u);
}

TEST(HistoryCheckTest, AcceptsAnUnknownOpThatWasLost) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3, 4}, 4);
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(r.unknown_lost, 1u);
}

TEST(HistoryCheckTest, AcceptsConcurrentOpsInEitherOrder) {
  History h = BaseHistory();
  h[1].invoke_ns = 5;  // b now overlaps a: the server may apply b first.
  KeyValues recovered = Simulate(h, {1, 0, 2, 3}, 4);
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_TRUE(r.ok) << r.failure;
}

TEST(HistoryCheckTest, RejectsALostAcknowledgedOp) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3, 4}, 3);  // d acked, not durable.
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("acknowledged operation lost"), std::string::npos) << r.failure;
}

TEST(HistoryCheckTest, RejectsAReplyTheModelDoesNotGive) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3}, 4);
  h[1].reply = "LOCK_STATUS_GRANTED token=2";  // The client was told b won.
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("server recorded reply"), std::string::npos) << r.failure;
}

TEST(HistoryCheckTest, RejectsAnApplyOrderAgainstRealTime) {
  History h = BaseHistory();
  // b applied before a although a completed (10) before b was invoked (20).
  KeyValues recovered = Simulate(h, {1, 0, 2, 3}, 4);
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("contradicts real time"), std::string::npos) << r.failure;
}

TEST(HistoryCheckTest, RejectsARecoveredStateThatIsNotTheReplay) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3}, 4);
  // Drop the granted waiter's lock and its event but keep the dedup record
  // of every op: a store that lost an applied effect.
  KeyValues damaged;
  for (const auto& kv : recovered) {
    if (kv.first.rfind("l/", 0) != 0 && kv.first.rfind("e/", 0) != 0) damaged.push_back(kv);
  }
  CheckResult r = CheckRound({}, damaged, h, ModelOptions(kTimeoutMs));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("recovered state differs"), std::string::npos) << r.failure;
}

TEST(HistoryCheckTest, RejectsAnOpNobodyIssued) {
  History h = BaseHistory();
  KeyValues recovered = Simulate(h, {0, 1, 2, 3, 4}, 5);
  h.pop_back();  // The applied unknown op is not in the history.
  CheckResult r = CheckRound({}, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("no client of this round issued"), std::string::npos) << r.failure;
}

TEST(HistoryCheckTest, ContinuesFromANonEmptyStart) {
  History first = BaseHistory();
  KeyValues s0 = Simulate(first, {0, 1, 2, 3, 4}, 5);
  // A second round on a server rebuilt from s0.
  auto server = core::LockCore::Rebuild(ModelOptions(kTimeoutMs), s0);
  ASSERT_TRUE(server.ok()) << server.status();
  History h;
  h.push_back(MakeOp(0, Lock("r2-a", 4, 100, 1, false), 1000, 1010));  // Denied by e.
  h.push_back(MakeOp(1, Unlock("r2-b", 3), 1020, 1030));
  KeyValues recovered;
  for (Op& op : h) {
    core::Command cmd = std::visit(
        [](const auto& r) { return core::Command(*service::ToCommand(r)); }, op.request);
    op.reply = CanonicalReplyOfCore(op.request, server->Apply(cmd, 5000).reply);
  }
  const auto snap = server->Snapshot();
  recovered.assign(snap.begin(), snap.end());
  EXPECT_EQ(h[0].reply.rfind("LOCK_STATUS_DENIED", 0), 0u) << h[0].reply;
  CheckResult r = CheckRound(s0, recovered, h, ModelOptions(kTimeoutMs));
  EXPECT_TRUE(r.ok) << r.failure;
}

TEST(LineDiffTest, ShowsOnlyDifferingLines) {
  EXPECT_EQ(LineDiff("a\nb\nc\n", "a\nc\nd\n"), "- b\n+ d\n");
}

}  // namespace
}  // namespace lockwarden::crash
