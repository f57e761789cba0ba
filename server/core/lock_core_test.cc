// Unit tests of the byte-range rules: conflicts, split, merge, upgrade and
// downgrade, length 0 and the 2^64-1 edge, waiters, grants, cancel, deadlock.
#include "server/core/lock_core.h"

#include <limits>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/core_test_util.h"
#include "server/core/interval.h"

namespace lockwarden::core {
namespace {

using ::lockwarden::core::testing::CoreHarness;
using ::lockwarden::core::testing::MakeOwner;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST(IntervalTest, LengthZeroAndOverflowClampToLastByte) {
  EXPECT_EQ(ToInterval({5, 0}), (Interval{5, kMax}));
  EXPECT_EQ(ToInterval({kMax, 1}), (Interval{kMax, kMax}));
  EXPECT_EQ(ToInterval({kMax - 1, 10}), (Interval{kMax - 1, kMax}));
  EXPECT_EQ(ToInterval({10, kMax}), (Interval{10, kMax}));
  EXPECT_EQ(ToInterval({0, kMax}), (Interval{0, kMax - 1}));
  EXPECT_EQ(ToInterval({3, 4}), (Interval{3, 6}));
  EXPECT_EQ(ToRange({3, 6}), (Range{3, 4}));
  EXPECT_EQ(ToRange({7, kMax}), (Range{7, 0}));
  EXPECT_TRUE(Touches({0, 4}, {5, 9}));
  EXPECT_FALSE(Touches({0, 4}, {6, 9}));
  EXPECT_FALSE(Touches({kMax, kMax}, {0, 0}));
}

TEST(LockCoreTest, ExclusiveConflictsAcrossOwnersAndReportsHolder) {
  CoreHarness h;
  const Owner a = MakeOwner("hostA", 1), b = MakeOwner("hostB", 1);
  Reply r = h.Lock("f", a, 10, 10, true);
  EXPECT_EQ(r.status, LockStatus::kGranted);
  EXPECT_GT(r.fencing_token, 0u);
  r = h.Lock("f", b, 15, 1, false);
  ASSERT_EQ(r.status, LockStatus::kDenied);
  ASSERT_TRUE(r.holder.has_value());
  EXPECT_EQ(r.holder->owner, a);
  EXPECT_EQ(r.holder->range, (Range{10, 10}));
  EXPECT_TRUE(r.holder->exclusive);
  EXPECT_EQ(h.Lock("f", b, 20, 5, true).status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("g", b, 10, 10, true).status, LockStatus::kGranted);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, TwoSvidsOnOneHostConflictButOneOwnerNeverDoes) {
  CoreHarness h;
  const Owner p1 = MakeOwner("host", 100), p2 = MakeOwner("host", 200);
  EXPECT_EQ(h.Lock("f", p1, 0, 100, true).status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("f", p2, 50, 1, false).status, LockStatus::kDenied);
  EXPECT_EQ(h.Lock("f", p1, 50, 1, true).status, LockStatus::kGranted);
  EXPECT_EQ(h.Test("f", p1, 0, 0, true).status, LockStatus::kGranted);
  EXPECT_EQ(h.Test("f", p2, 0, 0, false).status, LockStatus::kDenied);
}

TEST(LockCoreTest, SharedLocksCoexist) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  EXPECT_EQ(h.Lock("f", a, 0, 0, false).status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("f", b, 0, 0, false).status, LockStatus::kGranted);
  EXPECT_EQ(h.Test("f", MakeOwner("c", 1), 5, 5, true).status,
            LockStatus::kDenied);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, OverlappingAndAdjacentLocksOfOneOwnerMerge) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1);
  h.Lock("f", a, 0, 10, true);
  h.Lock("f", a, 10, 10, true);  // Adjacent.
  h.Lock("f", a, 15, 10, true);  // Overlapping.
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+25] X"));
  const uint64_t token = h.Lock("f", a, 3, 4, true).fencing_token;
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+25] X"));  // Covered.
  EXPECT_EQ(h.core().ListLocks({}, 0, 10)[0].fencing_token, token);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, PartialUnlockSplitsWithFreshTokens) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1);
  const uint64_t t0 = h.Lock("f", a, 0, 100, false).fencing_token;
  EXPECT_EQ(h.Unlock("f", a, 40, 10).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+40] S", "a/1 [50+50] S"));
  for (const LockInfo& l : h.core().ListLocks({}, 0, 10)) {
    EXPECT_GT(l.fencing_token, t0);
  }
  // Unlocking what is not held is GRANTED and changes nothing.
  EXPECT_EQ(h.Unlock("f", a, 40, 10).status, LockStatus::kGranted);
  EXPECT_EQ(h.Unlock("nofile", a, 0, 0).status, LockStatus::kGranted);
  EXPECT_EQ(h.Unlock("f", a, 0, 0).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, UpgradeAndDowngradeInPlace) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1);
  h.Lock("f", a, 0, 100, false);
  EXPECT_EQ(h.Lock("f", a, 20, 10, true).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"),
              ElementsAre("a/1 [0+20] S", "a/1 [20+10] X", "a/1 [30+70] S"));
  EXPECT_EQ(h.Lock("f", a, 0, 100, false).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+100] S"));
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, FailedUpgradeLeavesOldLockUntouched) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f", a, 0, 100, false);
  h.Lock("f", b, 50, 1, false);
  const auto before = h.core().Snapshot();
  Reply r = h.Lock("f", a, 0, 100, true);
  EXPECT_EQ(r.status, LockStatus::kDenied);
  EXPECT_EQ(r.holder->owner, b);
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+100] S", "b/1 [50+1] S"));
  EXPECT_EQ(h.core().Snapshot(), before);
}

TEST(LockCoreTest, LastByteAndToEofEdges) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  EXPECT_EQ(h.Lock("f", a, kMax, 1, true).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), ElementsAre(absl::StrCat("a/1 [", kMax, "+0] X")));
  EXPECT_EQ(h.Lock("f", b, 0, 0, false).status, LockStatus::kDenied);
  EXPECT_EQ(h.Lock("f", b, 0, kMax, false).status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("f", b, kMax - 5, 100, false).status, LockStatus::kDenied);
  // Overflowing lengths clamp: the same bytes as length 0.
  EXPECT_EQ(h.Lock("f", a, kMax - 10, kMax, true).status,
            LockStatus::kDenied);
  h.Unlock("f", b, 0, 0);
  EXPECT_EQ(h.Lock("f", a, kMax - 10, kMax, true).status,
            LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"),
              ElementsAre(absl::StrCat("a/1 [", kMax - 10, "+0] X")));
  EXPECT_EQ(h.Unlock("f", a, kMax, 0).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"),
              ElementsAre(absl::StrCat("a/1 [", kMax - 10, "+10] X")));
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, InvalidInputIsRejectedWithFieldName) {
  CoreHarness h;
  Reply r = h.Lock("", MakeOwner("a", 1), 0, 0, true);
  EXPECT_EQ(r.status, LockStatus::kInvalid);
  EXPECT_THAT(r.message, ::testing::HasSubstr("fh"));
  r = h.Lock(std::string(65, 'x'), MakeOwner("a", 1), 0, 0, true);
  EXPECT_EQ(r.status, LockStatus::kInvalid);
  r = h.Lock("f", MakeOwner("", 1), 0, 0, true);
  EXPECT_THAT(r.message, ::testing::HasSubstr("owner.client"));
  EXPECT_TRUE(h.core().Snapshot().size() <= 1);
}

TEST(LockCoreTest, BlockingConflictQueuesAndGrantsOnRelease) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f", a, 0, 10, true);
  Effects fx = h.Apply(h.LockReq("f", b, 5, 10, true, /*block=*/true));
  EXPECT_EQ(fx.reply.status, LockStatus::kBlocked);
  EXPECT_TRUE(fx.events.empty());
  // A repeat while waiting: BLOCKED, no second waiter.
  EXPECT_EQ(h.Lock("f", b, 5, 10, true, true).status, LockStatus::kBlocked);
  EXPECT_EQ(h.core().ListWaiters({}, 0, 10).size(), 1u);
  LW_EXPECT_OK(h.Verify());

  h.now_ms = 2000;
  UnlockCmd u{"", h.gateway, "f", a, {0, 0}};
  fx = h.Apply(u);
  ASSERT_EQ(fx.events.size(), 1u);
  const Event ev = fx.events[0];
  const auto& g = std::get<GrantedEvent>(ev.body);
  EXPECT_EQ(ev.gateway, "gw-a");
  EXPECT_EQ(g.owner, b);
  EXPECT_EQ(g.range, (Range{5, 10}));
  EXPECT_EQ(g.callback, "cb:b");
  EXPECT_EQ(g.cookie, "ck");
  EXPECT_THAT(h.Locks("f"), ElementsAre("b/1 [5+10] X unconfirmed"));
  EXPECT_EQ(h.core().NextDeadlineMs(), 2000 + 60000);
  EXPECT_EQ(h.core().PendingEvents("gw-a", 0, 10).size(), 1u);
  LW_EXPECT_OK(h.Verify());

  Reply r = h.Ack(ev, AckOutcome::kDelivered);
  EXPECT_EQ(r.fencing_token, g.fencing_token);
  EXPECT_THAT(h.Locks("f"), ElementsAre("b/1 [5+10] X"));
  EXPECT_TRUE(h.core().PendingEvents("gw-a", 0, 10).empty());
  EXPECT_EQ(h.core().NextDeadlineMs(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(h.Ack(ev, AckOutcome::kDelivered).status, LockStatus::kNotFound);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, RefusedAndExpiredGrantsPassOn) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1),
              c = MakeOwner("c", 1);
  h.Lock("f", a, 0, 0, true);
  h.Lock("f", b, 0, 0, true, true);
  h.Lock("f", c, 0, 0, true, true);
  Effects fx = h.Apply(UnlockCmd{"", h.gateway, "f", a, {0, 0}});
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(std::get<GrantedEvent>(fx.events[0].body).owner, b);
  fx = h.Apply(AckEventCmd{"", h.gateway, fx.events[0].sequence,
                           AckOutcome::kRefused});
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(std::get<GrantedEvent>(fx.events[0].body).owner, c);
  EXPECT_THAT(h.Locks("f"), ElementsAre("c/1 [0+0] X unconfirmed"));
  // c never answers: a Tick at the deadline releases the grant.
  h.now_ms += 60000;
  fx = h.Apply(TickCmd{});
  EXPECT_EQ(fx.reply.released, 1u);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  EXPECT_TRUE(h.core().PendingEvents("gw-a", 0, 10).empty());
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, FifoNeverLetsLaterWaiterOvertakeConflictingEarlierOne) {
  CoreHarness h;
  const Owner r1 = MakeOwner("r1", 1), w = MakeOwner("w", 1),
              r2 = MakeOwner("r2", 1), r3 = MakeOwner("r3", 1);
  h.Lock("f", r1, 0, 100, false);
  EXPECT_EQ(h.Lock("f", w, 0, 100, true, true).status, LockStatus::kBlocked);
  // A new request is checked against granted locks only (as every peer).
  EXPECT_EQ(h.Lock("f", r2, 0, 10, false, true).status, LockStatus::kGranted);
  h.Unlock("f", r2, 0, 0);
  // Queue behind the exclusive waiter: r3 waits for a *granted* conflict.
  h.Lock("f", MakeOwner("x", 1), 200, 10, true);
  EXPECT_EQ(h.Lock("f", r3, 150, 100, false, true).status,
            LockStatus::kBlocked);
  Effects fx = h.Apply(UnlockCmd{"", h.gateway, "f", r1, {0, 0}});
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(std::get<GrantedEvent>(fx.events[0].body).owner, w);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, ExclusiveWaiterIsNotStarvedBySharedWaiters) {
  CoreHarness h;
  const Owner holder = MakeOwner("h", 1), w = MakeOwner("w", 1);
  h.Lock("f", holder, 0, 0, true);
  h.Lock("f", w, 0, 0, true, true);
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(h.Lock("f", MakeOwner("r", i), 0, 0, false, true).status,
              LockStatus::kBlocked);
  }
  Effects fx = h.Apply(UnlockCmd{"", h.gateway, "f", holder, {0, 0}});
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(std::get<GrantedEvent>(fx.events[0].body).owner, w);
  // When w is done, all five readers are granted together.
  h.Ack(fx.events[0], AckOutcome::kDelivered);
  fx = h.Apply(UnlockCmd{"", h.gateway, "f", w, {0, 0}});
  EXPECT_EQ(fx.events.size(), 5u);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, CancelRemovesMatchingWaiterOnly) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f", a, 0, 10, true);
  h.Lock("f", b, 0, 10, true, true);
  EXPECT_EQ(h.Cancel("f", b, 0, 10, false).status, LockStatus::kDenied);
  EXPECT_EQ(h.Cancel("f", b, 0, 11, true).status, LockStatus::kDenied);
  EXPECT_EQ(h.Cancel("f", b, 0, 10, true).status, LockStatus::kGranted);
  EXPECT_TRUE(h.core().ListWaiters({}, 0, 10).empty());
  EXPECT_EQ(h.Cancel("f", b, 0, 10, true).status, LockStatus::kDenied);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, CancelOfUnconfirmedGrantReleasesItAndRetryConfirms) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f", a, 0, 10, true);
  h.Lock("f", b, 0, 10, true, true);
  h.Unlock("f", a, 0, 0);
  EXPECT_EQ(h.Cancel("f", b, 0, 10, true).status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  EXPECT_TRUE(h.core().PendingEvents("gw-a", 0, 10).empty());
  // A LOCK retry while the grant is unconfirmed confirms it.
  h.Lock("f", a, 0, 10, true);
  h.Lock("f", b, 0, 10, true, true);
  h.Unlock("f", a, 0, 0);
  Reply r = h.Lock("f", b, 0, 10, true, true);
  EXPECT_EQ(r.status, LockStatus::kGranted);
  EXPECT_THAT(h.Locks("f"), ElementsAre("b/1 [0+10] X"));
  EXPECT_TRUE(h.core().PendingEvents("gw-a", 0, 10).empty());
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, DeadlockAcrossFilesIsDetected) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f1", a, 0, 10, true);
  h.Lock("f2", b, 0, 10, true);
  EXPECT_EQ(h.Lock("f2", a, 0, 10, true, true).status, LockStatus::kBlocked);
  EXPECT_EQ(h.Lock("f1", b, 0, 10, true, true).status, LockStatus::kDeadlock);
  EXPECT_EQ(h.core().ListWaiters({}, 0, 10).size(), 1u);
  // Three owners, three files.
  const Owner c = MakeOwner("c", 1);
  h.Lock("f3", c, 0, 10, true);
  EXPECT_EQ(h.Lock("f3", b, 0, 10, true, true).status, LockStatus::kBlocked);
  EXPECT_EQ(h.Lock("f1", c, 0, 10, true, true).status, LockStatus::kDeadlock);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, NoFalseDeadlockOnDisjointRangesOrSharedModes) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f1", a, 0, 10, true);
  h.Lock("f1", b, 20, 10, false);
  h.Lock("f2", b, 0, 10, true);
  EXPECT_EQ(h.Lock("f2", a, 0, 10, true, true).status, LockStatus::kBlocked);
  // b wants a's file but a range a does not hold: no cycle, granted.
  EXPECT_EQ(h.Lock("f1", b, 10, 10, true, true).status, LockStatus::kGranted);
  // b waits on a third owner instead: still no cycle.
  const Owner c = MakeOwner("c", 1);
  h.Lock("f3", c, 0, 10, true);
  EXPECT_EQ(h.Lock("f3", b, 0, 10, true, true).status, LockStatus::kBlocked);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, DeadlockThroughEarlierWaiterIsDetected) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1),
              c = MakeOwner("c", 1);
  h.Lock("f1", c, 0, 10, true);
  h.Lock("f2", a, 0, 10, true);
  // b waits on f1 for c's lock.
  EXPECT_EQ(h.Lock("f1", b, 0, 10, true, true).status, LockStatus::kBlocked);
  // a queues behind b on f1 (b is an earlier conflicting waiter).
  EXPECT_EQ(h.Lock("f1", a, 0, 10, false, true).status, LockStatus::kBlocked);
  // b now asks for a's f2 lock: b -> a -> (waits for earlier waiter) b.
  EXPECT_EQ(h.Lock("f2", b, 0, 10, true, true).status, LockStatus::kDeadlock);
  LW_EXPECT_OK(h.Verify());
}

TEST(LockCoreTest, UpgradeDeadlockBetweenTwoReaders) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1);
  h.Lock("f", a, 0, 10, false);
  h.Lock("f", b, 0, 10, false);
  EXPECT_EQ(h.Lock("f", a, 0, 10, true, true).status, LockStatus::kBlocked);
  EXPECT_EQ(h.Lock("f", b, 0, 10, true, true).status, LockStatus::kDeadlock);
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+10] S", "b/1 [0+10] S"));
}

TEST(LockCoreTest, ForceReleaseByTokenOwnerClientAndFile) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), a2 = MakeOwner("a", 2),
              b = MakeOwner("b", 1);
  const uint64_t t = h.Lock("f", a, 0, 10, true).fencing_token;
  h.Lock("f", a2, 20, 10, true);
  h.Lock("g", b, 0, 10, true);
  h.Lock("g", a, 0, 10, true, true);
  ForceReleaseCmd c;
  c.target = ForceReleaseCmd::Target::kLock;
  c.fencing_token = t;
  EXPECT_EQ(h.Apply(c).reply.released, 1u);
  EXPECT_EQ(h.Apply(c).reply.status, LockStatus::kNotFound);
  c.target = ForceReleaseCmd::Target::kClient;
  c.client = "a";
  EXPECT_EQ(h.Apply(c).reply.released, 2u);  // a2's lock and a's waiter.
  c.target = ForceReleaseCmd::Target::kFile;
  c.fh = "g";
  EXPECT_EQ(h.Apply(c).reply.released, 1u);
  EXPECT_TRUE(h.core().ListLocks({}, 0, 10).empty());
  EXPECT_EQ(h.core().Counters().owners, 0u);
  LW_EXPECT_OK(h.Verify());
}

}  // namespace
}  // namespace lockwarden::core
