// Unit tests of the NSM rules, grace, FREE_ALL, shares, event outboxes,
// request dedup and the named limits.
#include <limits>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/core_test_util.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

using ::lockwarden::core::testing::CoreHarness;
using ::lockwarden::core::testing::MakeOwner;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const MonitorId kLockd{"gw-host", 100021, 4, 16};
const std::string kPriv(16, 'p');

MonCmd Mon(const std::string& gateway, const std::string& mon_name) {
  return MonCmd{"", gateway, mon_name, kLockd, kPriv};
}

ShareCmd Share(const std::string& fh, const std::string& client,
               ShareMode access, ShareMode deny) {
  ShareCmd c;
  c.gateway = "gw-a";
  c.fh = fh;
  c.client = client;
  c.oh = "oh";
  c.access = access;
  c.deny = deny;
  return c;
}

TEST(NsmTest, GatewayStateStartsOddAndBumpsByTwoOnSimuCrashOnly) {
  CoreHarness h;
  EXPECT_EQ(h.core().Stat("gw-a").nsm_state, 1);
  EXPECT_EQ(h.Apply(Mon("gw-a", "client1")).reply.nsm_state, 1);
  h.Lock("f", MakeOwner("client1", 1), 0, 0, true);
  EXPECT_EQ(h.Apply(SimuCrashCmd{"", "gw-a"}).reply.nsm_state, 3);
  EXPECT_EQ(h.Apply(ResetGatewayCmd{"", "gw-a"}).reply.nsm_state, 5);
  EXPECT_EQ(h.core().Stat("gw-a").nsm_state, 5);
  EXPECT_EQ(h.core().Stat("gw-b").nsm_state, 1);
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, MonUnmonUnmonAllExactMatch) {
  CoreHarness h;
  h.Apply(Mon("gw-a", "c1"));
  h.Apply(Mon("gw-a", "c2"));
  MonitorId other = kLockd;
  other.my_proc = 17;
  h.Apply(MonCmd{"", "gw-a", "c1", other, kPriv});
  EXPECT_EQ(h.core().ListMonitors("gw-a").size(), 3u);
  h.Apply(Mon("gw-a", "c1"));  // Re-registering is idempotent.
  EXPECT_EQ(h.core().ListMonitors("").size(), 3u);
  h.Apply(UnmonCmd{"", "gw-a", "c1", MonitorId{"gw-host", 100021, 4, 99}});
  EXPECT_EQ(h.core().ListMonitors("").size(), 3u);
  h.Apply(UnmonCmd{"", "gw-a", "c1", kLockd});
  EXPECT_EQ(h.core().ListMonitors("").size(), 2u);
  h.Apply(UnmonAllCmd{"", "gw-a", kLockd});
  ASSERT_EQ(h.core().ListMonitors("").size(), 1u);
  EXPECT_EQ(h.core().ListMonitors("")[0].my_id.my_proc, 17u);
  EXPECT_EQ(h.Apply(MonCmd{"", "gw-a", "c1", kLockd, "short"}).reply.status,
            LockStatus::kInvalid);
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, SimuCrashReleasesIdentityLocksNotifiesAndEntersGrace) {
  CoreHarness h;
  h.Apply(Mon("gw-a", "c1"));
  h.Apply(Mon("gw-a", "c2"));
  h.Apply(Mon("gw-b", "c3"));
  h.Lock("f", MakeOwner("c1", 1), 0, 10, true);
  h.Apply(Share("f", "c2", ShareMode::kRead, ShareMode::kNone));
  h.gateway = "gw-b";
  h.Lock("f", MakeOwner("c3", 1), 20, 10, true);
  h.gateway = "gw-a";
  Effects fx = h.Apply(SimuCrashCmd{"", "gw-a"});
  EXPECT_EQ(fx.reply.released, 2u);
  ASSERT_EQ(fx.events.size(), 2u);
  const auto& n = std::get<SmNotifyEvent>(fx.events[0].body);
  EXPECT_EQ(n.target, "c1");
  EXPECT_EQ(n.mon_name, "gw-a");
  EXPECT_EQ(n.state, 3);
  EXPECT_EQ(std::get<SmNotifyEvent>(fx.events[1].body).target, "c2");
  EXPECT_THAT(h.Locks("f"), ElementsAre("c3/1 [20+10] X"));
  const GatewayInfo g = h.core().ListGateways()[0];
  EXPECT_EQ(g.grace_until_ms, h.now_ms + 90000);
  ASSERT_EQ(g.ledger.size(), 2u);
  // In grace: only reclaims through gw-a.
  EXPECT_EQ(h.Lock("f", MakeOwner("c9", 1), 50, 1, true).status,
            LockStatus::kGrace);
  EXPECT_EQ(h.Test("f", MakeOwner("c9", 1), 50, 1, true).status,
            LockStatus::kGrace);
  EXPECT_EQ(h.Unlock("f", MakeOwner("c9", 1), 50, 1).status,
            LockStatus::kGrace);
  LockCmd reclaim = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  reclaim.reclaim = true;
  EXPECT_EQ(h.Apply(reclaim).reply.status, LockStatus::kGranted);
  // gw-b is not in grace.
  h.gateway = "gw-b";
  EXPECT_EQ(h.Lock("f", MakeOwner("c9", 1), 50, 1, true).status,
            LockStatus::kGranted);
  LW_EXPECT_OK(h.Verify());
  // At the deadline a Tick ends grace; a reclaim outside grace is refused.
  h.gateway = "gw-a";
  h.now_ms += 90000;
  EXPECT_EQ(h.core().NextDeadlineMs(), h.now_ms);
  h.Apply(TickCmd{});
  EXPECT_EQ(h.core().ListGateways()[0].grace_until_ms, 0);
  EXPECT_EQ(h.Apply(reclaim).reply.status, LockStatus::kGrace);
  EXPECT_EQ(h.Lock("f", MakeOwner("c9", 1), 60, 1, true).status,
            LockStatus::kGranted);
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, GraceLiftsEarlyWhenEveryLedgerClientIsDone) {
  CoreHarness h;
  h.Lock("f", MakeOwner("c1", 1), 0, 10, true);
  h.Lock("f", MakeOwner("c2", 1), 20, 10, true);
  h.Apply(SimuCrashCmd{"", "gw-a"});
  LockCmd reclaim = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  reclaim.reclaim = true;
  h.Apply(reclaim);
  // c1's first normal request ends its reclaim phase but c2 is pending.
  EXPECT_EQ(h.Lock("f", MakeOwner("c1", 1), 100, 1, true).status,
            LockStatus::kGrace);
  // c2 says FREE_ALL (it rebooted): last one, grace lifts.
  h.Apply(FreeAllCmd{"", "gw-a", "c2", 7});
  EXPECT_EQ(h.core().ListGateways()[0].grace_until_ms, 0);
  EXPECT_EQ(h.Lock("f", MakeOwner("c1", 1), 100, 1, true).status,
            LockStatus::kGranted);
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, CrashWithoutHoldersHasNoGrace) {
  CoreHarness h;
  h.Apply(SimuCrashCmd{"", "gw-a"});
  EXPECT_EQ(h.core().ListGateways()[0].grace_until_ms, 0);
  EXPECT_EQ(h.Lock("f", MakeOwner("c1", 1), 0, 1, true).status,
            LockStatus::kGranted);
}

TEST(NsmTest, StaleNotifyReleasesNothingFreshNotifyReleasesOlderLocks) {
  CoreHarness h;
  h.Apply(Mon("gw-a", "c1"));
  h.Apply(Mon("gw-b", "c1"));
  LockCmd l = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  l.client_state = 5;
  h.Apply(l);
  EXPECT_EQ(h.core().ListClients()[0].nsm_state, 5);
  Effects fx = h.Apply(NotifyCmd{"", "gw-a", "c1", 3});
  EXPECT_TRUE(fx.reply.stale);
  EXPECT_TRUE(fx.events.empty());
  fx = h.Apply(NotifyCmd{"", "gw-a", "c1", 5});
  EXPECT_TRUE(fx.reply.stale);
  EXPECT_THAT(h.Locks("f"), ElementsAre("c1/1 [0+10] X"));
  fx = h.Apply(NotifyCmd{"", "gw-a", "c1", 7});
  EXPECT_FALSE(fx.reply.stale);
  EXPECT_EQ(fx.reply.released, 1u);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  ASSERT_EQ(fx.events.size(), 2u);  // One per registration (gw-a, gw-b).
  const auto& cb = std::get<StatusCallbackEvent>(fx.events[0].body);
  EXPECT_EQ(fx.events[0].gateway, "gw-a");
  EXPECT_EQ(fx.events[1].gateway, "gw-b");
  EXPECT_EQ(cb.mon_name, "c1");
  EXPECT_EQ(cb.state, 7);
  EXPECT_EQ(cb.my_id, kLockd);
  EXPECT_EQ(cb.priv, kPriv);
  EXPECT_EQ(h.core().ListClients()[0].nsm_state, 7);
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, NotifyOvertakenByNewIncarnationStillReleasesOldLocks) {
  CoreHarness h;
  LockCmd old_lock = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  old_lock.client_state = 5;
  h.Apply(old_lock);
  LockCmd new_lock = h.LockReq("f", MakeOwner("c1", 2), 20, 10, true);
  new_lock.client_state = 7;  // The rebooted client locks first...
  h.Apply(new_lock);
  Effects fx = h.Apply(NotifyCmd{"", "gw-a", "c1", 7});  // ...then notifies.
  EXPECT_FALSE(fx.reply.stale);
  EXPECT_EQ(fx.reply.released, 1u);
  EXPECT_THAT(h.Locks("f"), ElementsAre("c1/2 [20+10] X"));
  EXPECT_TRUE(h.Apply(NotifyCmd{"", "gw-a", "c1", 7}).reply.stale);
}

TEST(NsmTest, NotifySparesNmLockLocksAndWaitersFreeAllEndsThem) {
  CoreHarness h;
  LockCmd nm = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  nm.client_state = 5;
  nm.monitored = false;  // NM_LOCK: a client without statd.
  h.Apply(nm);
  LockCmd mon = h.LockReq("f", MakeOwner("c1", 2), 20, 10, true);
  mon.client_state = 5;
  h.Apply(mon);
  // A monitored LOCK adjacent to the owner's NM_LOCK range must not merge.
  LockCmd nm_next = h.LockReq("f", MakeOwner("c1", 1), 10, 5, true);
  nm_next.client_state = 5;
  h.Apply(nm_next);
  LockCmd blocked = h.LockReq("f", MakeOwner("c1", 3), 0, 1, true, true);
  blocked.client_state = 5;
  blocked.monitored = false;
  EXPECT_EQ(h.Apply(blocked).reply.status, LockStatus::kBlocked);
  ASSERT_EQ(h.core().ListLocks({}, 0, 10).size(), 3u);
  EXPECT_FALSE(h.core().ListLocks({}, 0, 10)[0].monitored);
  LW_EXPECT_OK(h.Verify());  // The flag survives a rebuild.

  Effects fx = h.Apply(NotifyCmd{"", "gw-a", "c1", 7});
  EXPECT_FALSE(fx.reply.stale);
  EXPECT_EQ(fx.reply.released, 2u);  // Only the two monitored locks.
  EXPECT_THAT(h.Locks("f"), ElementsAre("c1/1 [0+10] X"));
  ASSERT_EQ(h.core().ListWaiters({}, 0, 10).size(), 1u);
  EXPECT_FALSE(h.core().ListWaiters({}, 0, 10)[0].monitored);
  LW_EXPECT_OK(h.Verify());

  fx = h.Apply(FreeAllCmd{"", "gw-a", "c1", 7});
  EXPECT_EQ(fx.reply.released, 2u);  // The NM_LOCK lock and its waiter.
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  LW_EXPECT_OK(h.Verify());
}

TEST(NsmTest, SmNotifyCarriesTheClientsLastSeenAddressesDurably) {
  CoreHarness h;
  h.Apply(Mon("gw-a", "c1"));
  for (const char* address : {"198.18.0.1", "198.18.0.2", "198.18.0.1",
                              "198.18.0.3", "198.18.0.4", "198.18.0.5"}) {
    LockCmd l = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
    l.client_address = address;
    h.Apply(l);
  }
  ASSERT_EQ(h.core().ListClients().size(), 1u);
  EXPECT_THAT(h.core().ListClients()[0].addresses,
              ElementsAre("198.18.0.5", "198.18.0.4", "198.18.0.3",
                          "198.18.0.1"));
  // Seeing the most recent address again writes nothing.
  LockCmd again = h.LockReq("f", MakeOwner("c1", 1), 0, 10, true);
  again.client_address = "198.18.0.5";
  EXPECT_TRUE(h.Apply(again).delta.empty());
  LW_EXPECT_OK(h.Verify());  // Addresses survive a rebuild.

  Effects fx = h.Apply(SimuCrashCmd{"", "gw-a"});
  ASSERT_EQ(fx.events.size(), 1u);
  const auto& n = std::get<SmNotifyEvent>(fx.events[0].body);
  EXPECT_EQ(n.target, "c1");
  EXPECT_THAT(n.addresses, ElementsAre("198.18.0.5", "198.18.0.4",
                                       "198.18.0.3", "198.18.0.1"));
  LW_EXPECT_OK(h.Verify());  // The event's addresses too.

  LockCmd huge = h.LockReq("f", MakeOwner("c1", 2), 20, 10, true);
  huge.client_address = std::string(kClientAddressMaxBytes + 1, '1');
  EXPECT_EQ(h.Apply(huge).reply.status, LockStatus::kInvalid);
}

TEST(NsmTest, StateNumbersCompareWithWraparound) {
  EXPECT_TRUE(NsmStateNewer(3, 1));
  EXPECT_FALSE(NsmStateNewer(1, 3));
  EXPECT_FALSE(NsmStateNewer(5, 5));
  EXPECT_TRUE(NsmStateNewer(std::numeric_limits<int32_t>::min() + 1,
                            std::numeric_limits<int32_t>::max()));
  EXPECT_TRUE(NsmStateNewer(1, -1));
}

TEST(NsmTest, FreeAllReleasesEverythingOfTheClientAndWakesWaiters) {
  CoreHarness h;
  h.Lock("f", MakeOwner("c1", 1), 0, 10, true);
  h.Lock("g", MakeOwner("c1", 2), 0, 10, true);
  h.Apply(Share("f", "c1", ShareMode::kRead, ShareMode::kWrite));
  h.Lock("f", MakeOwner("c2", 1), 0, 10, true, true);
  Effects fx = h.Apply(FreeAllCmd{"", "gw-a", "c1", 9});
  EXPECT_EQ(fx.reply.released, 3u);
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(std::get<GrantedEvent>(fx.events[0].body).owner.client, "c2");
  EXPECT_EQ(h.core().ListClients()[0].nsm_state, 9);
  LW_EXPECT_OK(h.Verify());
}

TEST(ShareTest, AccessAgainstDenyConflicts) {
  CoreHarness h;
  using M = ShareMode;
  EXPECT_EQ(h.Apply(Share("f", "a", M::kRead, M::kWrite)).reply.status,
            LockStatus::kGranted);
  EXPECT_EQ(h.Apply(Share("f", "b", M::kRead, M::kNone)).reply.status,
            LockStatus::kGranted);
  EXPECT_EQ(h.Apply(Share("f", "c", M::kWrite, M::kNone)).reply.status,
            LockStatus::kDenied);
  EXPECT_EQ(h.Apply(Share("f", "c", M::kRead, M::kRead)).reply.status,
            LockStatus::kDenied);
  // The same owner re-shares with new modes; no self-conflict.
  EXPECT_EQ(h.Apply(Share("f", "a", M::kReadWrite, M::kWrite)).reply.status,
            LockStatus::kGranted);
  EXPECT_EQ(h.core().ListShares({}, 0, 10).size(), 2u);
  EXPECT_EQ(h.Apply(UnshareCmd{"", "gw-a", "f", "a", "oh"}).reply.status,
            LockStatus::kGranted);
  EXPECT_EQ(h.Apply(Share("f", "c", M::kWrite, M::kNone)).reply.status,
            LockStatus::kGranted);
  LW_EXPECT_OK(h.Verify());
}

TEST(DedupTest, RepeatedRequestIdReturnsRecordedReplyAndChangesNothing) {
  CoreHarness h;
  LockCmd l = h.LockReq("f", MakeOwner("a", 1), 0, 10, true);
  l.request_id = "gw1:1";
  Effects first = h.Apply(l);
  h.Unlock("f", MakeOwner("a", 1), 0, 0);
  const auto before = h.core().Snapshot();
  Effects again = h.Apply(l);
  EXPECT_EQ(again.reply, first.reply);
  EXPECT_TRUE(again.delta.empty());
  EXPECT_EQ(h.core().Snapshot(), before);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  UnlockCmd u{"gw1:1", "gw-a", "f", MakeOwner("a", 1), {0, 0}};
  EXPECT_EQ(h.Apply(u).reply.status, LockStatus::kInvalid);
  LW_EXPECT_OK(h.Verify());
}

TEST(DedupTest, OldestEntriesAreEvictedAtTheLimit) {
  CoreOptions o;
  o.dedup_entries_max = 2;
  CoreHarness h(o);
  for (int i = 0; i < 3; ++i) {
    LockCmd l = h.LockReq("f", MakeOwner("a", 1), i * 10, 1, true);
    l.request_id = absl::StrCat("r", i);
    h.Apply(l);
  }
  EXPECT_EQ(h.core().Counters().dedup_entries, 2u);
  h.Unlock("f", MakeOwner("a", 1), 0, 0);
  LockCmd l = h.LockReq("f", MakeOwner("a", 1), 0, 1, true);
  l.request_id = "r0";  // Forgotten: applied again.
  h.Apply(l);
  EXPECT_THAT(h.Locks("f"), ElementsAre("a/1 [0+1] X"));
  LW_EXPECT_OK(h.Verify());
}

TEST(LimitsTest, NamedLimitsAnswerNoLocks) {
  CoreOptions o;
  o.locks_max = 2;
  o.waiters_per_file_max = 1;
  o.owners_max = 2;
  o.monitors_max = 1;
  CoreHarness h(o);
  const Owner a = MakeOwner("a", 1);
  h.Lock("f", a, 0, 10, true);
  h.Lock("f", a, 20, 10, true);
  Reply r = h.Lock("f", a, 40, 10, true);
  EXPECT_EQ(r.status, LockStatus::kNoLocks);
  EXPECT_THAT(r.message, ::testing::HasSubstr("locks_max"));
  EXPECT_EQ(h.Unlock("f", a, 5, 1).status, LockStatus::kNoLocks);  // Split.
  EXPECT_EQ(h.Lock("f", a, 10, 10, true).status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("f", MakeOwner("b", 1), 0, 1, true, true).status,
            LockStatus::kBlocked);
  r = h.Lock("f", MakeOwner("b", 1), 2, 1, true, true);
  EXPECT_EQ(r.status, LockStatus::kNoLocks);
  EXPECT_THAT(r.message, ::testing::HasSubstr("waiters_per_file_max"));
  r = h.Lock("g", MakeOwner("d", 1), 0, 1, true);
  EXPECT_EQ(r.status, LockStatus::kNoLocks);
  EXPECT_THAT(r.message, ::testing::HasSubstr("owners_max"));
  h.Apply(Mon("gw-a", "x"));
  EXPECT_EQ(h.Apply(Mon("gw-a", "y")).reply.status, LockStatus::kNoLocks);
  LW_EXPECT_OK(h.Verify());
}

TEST(EventsTest, SequencesIncreaseAndPendingEventsPaginates) {
  CoreHarness h;
  h.Apply(Mon("gw-a", "c1"));
  h.Apply(Mon("gw-a", "c2"));
  h.Apply(Mon("gw-a", "c3"));
  Effects fx = h.Apply(SimuCrashCmd{"", "gw-a"});
  ASSERT_EQ(fx.events.size(), 3u);
  EXPECT_LT(fx.events[0].sequence, fx.events[1].sequence);
  auto page = h.core().PendingEvents("gw-a", fx.events[0].sequence, 1);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].sequence, fx.events[1].sequence);
  EXPECT_EQ(h.Ack(fx.events[1], AckOutcome::kFailedGiveUp).status,
            LockStatus::kGranted);
  EXPECT_EQ(h.core().PendingEvents("gw-a", 0, 10).size(), 2u);
  LW_EXPECT_OK(h.Verify());
}

TEST(EventsTest, FullOutboxEvictsOldestAndAnEvictedGrantExpires) {
  CoreOptions o;
  o.events_per_gateway_max = 2;
  CoreHarness h(o);
  h.Lock("f", MakeOwner("a", 1), 0, 0, true);
  EXPECT_EQ(h.Lock("f", MakeOwner("b", 1), 0, 0, true, true).status,
            LockStatus::kBlocked);
  h.Unlock("f", MakeOwner("a", 1), 0, 0);  // Granted event: outbox 1.
  MonitorId other = kLockd;
  other.my_proc = 17;
  h.Apply(Mon("gw-a", "h1"));
  h.Apply(MonCmd{"", "gw-a", "h1", other, kPriv});
  Effects fx = h.Apply(NotifyCmd{"", "gw-a", "h1", 3});  // 2 callbacks.
  EXPECT_EQ(fx.events.size(), 2u);
  EXPECT_EQ(h.core().Counters().events_dropped, 1u);
  const auto pending = h.core().PendingEvents("gw-a", 0, 10);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<StatusCallbackEvent>(pending[0].body));
  EXPECT_EQ(h.core().ListLocks({}, 0, 10)[0].grant_event_sequence, 0u);
  LW_EXPECT_OK(h.Verify());
  // A blocking request finds the outbox full: NOLOCKS, not queued.
  h.Lock("g", MakeOwner("a", 1), 0, 0, true);
  Reply r = h.Lock("g", MakeOwner("c", 1), 0, 0, true, true);
  EXPECT_EQ(r.status, LockStatus::kNoLocks);
  EXPECT_THAT(r.message, ::testing::HasSubstr("events_per_gateway_max"));
  // The grant whose event was evicted expires and passes on.
  h.now_ms += o.grant_timeout_ms;
  EXPECT_EQ(h.Apply(TickCmd{}).reply.released, 1u);
  EXPECT_THAT(h.Locks("f"), IsEmpty());
  LW_EXPECT_OK(h.Verify());
}

}  // namespace
}  // namespace lockwarden::core
