// Admin state kept by the core: the durable drain flag of gateway
// identities (restart and replica/failover keep it) and the staged snapshot
// import marker (an interrupted import is never served; a replica follows an
// import commit by commit).
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/codec.h"
#include "server/core/core_test_util.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

using ::lockwarden::core::testing::CoreHarness;
using ::lockwarden::core::testing::MakeOwner;
using ::lockwarden::testing::StatusIs;

using KV = std::vector<std::pair<std::string, std::string>>;
using Records = std::map<std::string, std::string>;

KV Flat(const Records& r) { return KV(r.begin(), r.end()); }

bool Draining(const LockCore& core, const std::string& gateway) {
  for (const GatewayInfo& g : core.ListGateways()) {
    if (g.name == gateway) return g.draining;
  }
  ADD_FAILURE() << "no gateway " << gateway;
  return false;
}

// The record changes that turn `before` into `after` (one commit), as a
// replica watching the store sees them; `before` becomes `after`.
std::vector<LockCore::RecordChange> Changes(Records& before, const Records& after) {
  std::vector<LockCore::RecordChange> out;
  for (const auto& [key, value] : before) {
    if (!after.count(key)) out.push_back({key, value, std::nullopt});
  }
  for (const auto& [key, value] : after) {
    auto it = before.find(key);
    if (it == before.end()) {
      out.push_back({key, std::nullopt, value});
    } else if (it->second != value) {
      out.push_back({key, it->second, value});
    }
  }
  before = after;
  return out;
}

TEST(DrainTest, DrainedIdentityQueuesNoNewWaiterAndGrantsTheOldOnes) {
  CoreHarness h;
  const Owner a = MakeOwner("a", 1), b = MakeOwner("b", 1), c = MakeOwner("c", 1);
  ASSERT_EQ(h.Lock("f", a, 0, 10, true).status, LockStatus::kGranted);
  ASSERT_EQ(h.Lock("f", b, 0, 10, true, /*block=*/true).status, LockStatus::kBlocked);
  EXPECT_EQ(h.Apply(DrainGatewayCmd{"d1", "gw-a", true}).reply.status, LockStatus::kGranted);
  EXPECT_TRUE(Draining(h.core(), "gw-a"));
  // A blocking LOCK that cannot be granted now is answered DENIED (naming
  // the holder) instead of queueing; one that can is granted.
  const Reply denied = h.Lock("f", c, 0, 10, true, /*block=*/true);
  EXPECT_EQ(denied.status, LockStatus::kDenied);
  ASSERT_TRUE(denied.holder.has_value());
  EXPECT_EQ(denied.holder->owner, a);
  EXPECT_EQ(h.Lock("g", c, 0, 10, true, /*block=*/true).status, LockStatus::kGranted);
  EXPECT_EQ(h.core().Counters().waiters, 1u);
  // The waiter queued before the drain is still granted in order.
  h.Unlock("f", a, 0, 0);
  ASSERT_EQ(h.core().Counters().waiters, 0u);
  EXPECT_THAT(h.Locks("f"), ::testing::ElementsAre("b/1 [0+10] X unconfirmed"));
  LW_EXPECT_OK(h.Verify());
  // Undrained: blocking LOCKs queue again.
  EXPECT_EQ(h.Apply(DrainGatewayCmd{"d2", "gw-a", false}).reply.status, LockStatus::kGranted);
  EXPECT_EQ(h.Lock("f", c, 0, 10, true, /*block=*/true).status, LockStatus::kBlocked);
  LW_EXPECT_OK(h.Verify());
}

TEST(DrainTest, UnknownIdentityIsNotFoundAndRepeatsWriteNothing) {
  CoreHarness h;
  EXPECT_EQ(h.Apply(DrainGatewayCmd{"", "nobody", true}).reply.status, LockStatus::kNotFound);
  h.Lock("f", MakeOwner("a", 1), 0, 1, true);
  EXPECT_FALSE(h.Apply(DrainGatewayCmd{"", "gw-a", true}).delta.empty());
  EXPECT_TRUE(h.Apply(DrainGatewayCmd{"", "gw-a", true}).delta.empty());  // Idempotent.
  EXPECT_EQ(h.Apply(DrainGatewayCmd{"", "", true}).reply.status, LockStatus::kInvalid);
}

TEST(DrainTest, RestartKeepsTheDrain) {
  CoreHarness h;
  h.Lock("f", MakeOwner("a", 1), 0, 10, true);
  h.Apply(DrainGatewayCmd{"", "gw-a", true});
  LW_ASSERT_OK(h.Verify());  // Rebuild equality, drain flag included.
  LW_ASSERT_OK_AND_ASSIGN(LockCore rebuilt, LockCore::Rebuild(CoreOptions{}, Flat(h.store())));
  EXPECT_TRUE(Draining(rebuilt, "gw-a"));
  LockCmd blocking = h.LockReq("f", MakeOwner("b", 1), 0, 10, true, /*block=*/true);
  EXPECT_EQ(rebuilt.Apply(blocking, h.now_ms).reply.status, LockStatus::kDenied);
}

TEST(DrainTest, ReplicaFollowsDrainAndUndrain) {
  CoreHarness h;
  h.Lock("f", MakeOwner("a", 1), 0, 10, true);
  Records store = h.store();
  LW_ASSERT_OK_AND_ASSIGN(LockCore replica, LockCore::Rebuild(CoreOptions{}, Flat(store)));
  h.Apply(DrainGatewayCmd{"", "gw-a", true});
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, h.store())));
  EXPECT_TRUE(Draining(replica, "gw-a"));
  EXPECT_EQ(replica.Snapshot(), h.store());
  EXPECT_EQ(replica.DebugString(), h.core().DebugString());
  // The taken-over replica enforces the drain.
  LockCmd blocking = h.LockReq("f", MakeOwner("b", 1), 0, 10, true, /*block=*/true);
  EXPECT_EQ(replica.Apply(blocking, h.now_ms).reply.status, LockStatus::kDenied);
  h.Apply(DrainGatewayCmd{"", "gw-a", false});
  store = replica.Snapshot();
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, h.store())));
  EXPECT_FALSE(Draining(replica, "gw-a"));
}

std::string GatewayRecord(bool trailing, bool flag) {
  codec::Writer w;
  w.I32(3);
  w.I64(0);
  w.U64(0);
  if (trailing) w.Bool(flag);
  return std::move(w).Finish();
}

TEST(DrainTest, RecordsWithoutTheFlagStillReadAndAFalseFlagIsCorrupt) {
  CoreHarness h;
  h.Lock("f", MakeOwner("a", 1), 0, 1, true);
  Records store = h.store();
  store["g/gw-a"] = GatewayRecord(false, false);  // Written before drains existed.
  LW_ASSERT_OK_AND_ASSIGN(LockCore old, LockCore::Rebuild(CoreOptions{}, Flat(store)));
  EXPECT_FALSE(Draining(old, "gw-a"));
  EXPECT_EQ(old.ListGateways()[0].nsm_state, 3);
  store["g/gw-a"] = GatewayRecord(true, true);
  LW_ASSERT_OK_AND_ASSIGN(LockCore drained, LockCore::Rebuild(CoreOptions{}, Flat(store)));
  EXPECT_TRUE(Draining(drained, "gw-a"));
  store["g/gw-a"] = GatewayRecord(true, false);
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, Flat(store)).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

// ---- Staged import marker ------------------------------------------------

// Old state: locks through gw-a and gw-b; new state: other locks.
void OldState(CoreHarness& h) {
  h.Lock("f", MakeOwner("a", 1), 0, 10, true);
  h.Lock("f", MakeOwner("b", 1), 0, 10, true, /*block=*/true);
  h.gateway = "gw-b";
  h.Lock("g", MakeOwner("c", 1), 5, 5, false);
  h.gateway = "gw-a";
}

Records NewState() {
  CoreHarness h;
  h.gateway = "gw-n";
  for (int i = 0; i < 20; ++i) h.Lock("n" + std::to_string(i), MakeOwner("z", 1), 0, 1, true);
  return h.store();
}

std::string Marker(uint64_t keys) {
  return codec::EncodeImportMarker(ImportMarker{keys, 77, "test import"});
}

TEST(ImportMarkerTest, StoreWithTheMarkerRebuildsAnInterruptedCore) {
  CoreHarness h;
  OldState(h);
  Records mix = h.store();
  const Records next = NewState();
  // Half of the new records written over the old ones: a lock now names a
  // gateway whose record is not there (a mix never decodes as a state).
  int n = 0;
  for (const auto& [k, v] : next) {
    if (k[0] == 'l' && n++ < 10) mix[k] = v;
  }
  mix[std::string(codec::kImportMarkerKey)] = Marker(next.size());
  LW_ASSERT_OK_AND_ASSIGN(LockCore core, LockCore::Rebuild(CoreOptions{}, Flat(mix)));
  ASSERT_TRUE(core.interrupted_import().has_value());
  EXPECT_EQ(core.interrupted_import()->key_count, next.size());
  EXPECT_EQ(core.interrupted_import()->source, "test import");
  EXPECT_EQ(core.Snapshot(), mix);  // Verbatim.
  EXPECT_EQ(core.Counters().locks, 0u);
  EXPECT_EQ(core.Counters().next_fencing_token, h.core().Counters().next_fencing_token);
  EXPECT_EQ(core.ListGateways().size(), 2u);  // gw-a and gw-b, decoded.
  LW_EXPECT_OK(core.CheckInvariants());
  // Nothing is served from it.
  Effects fx = core.Apply(h.LockReq("x", MakeOwner("q", 1), 0, 1, true), h.now_ms);
  EXPECT_EQ(fx.reply.status, LockStatus::kInvalid);
  EXPECT_TRUE(fx.delta.empty());
  EXPECT_EQ(core.Test({"gw-a", "f", MakeOwner("q", 1), {0, 1}, true}, h.now_ms).status,
            LockStatus::kInvalid);
  // A malformed marker is corruption.
  mix[std::string(codec::kImportMarkerKey)] = "\x01";
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, Flat(mix)).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ImportMarkerTest, ReplicaFollowsAStagedImportCommitByCommit) {
  CoreHarness h;
  OldState(h);
  Records store = h.store();
  LW_ASSERT_OK_AND_ASSIGN(LockCore replica, LockCore::Rebuild(CoreOptions{}, Flat(store)));
  const Records next = NewState();
  const std::string marker(codec::kImportMarkerKey);
  // Commit 1: the marker (and counters).
  Records after = store;
  after[marker] = Marker(next.size());
  after[std::string(codec::kCountersKey)] = next.at(std::string(codec::kCountersKey));
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, after)));
  ASSERT_TRUE(replica.interrupted_import().has_value());
  EXPECT_EQ(replica.Snapshot(), store);
  // Commit 2: every old record goes; commit 3..: the new ones, a few at a time.
  for (auto it = after.begin(); it != after.end();) {
    it = (it->first == marker || next.count(it->first)) ? std::next(it) : after.erase(it);
  }
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, after)));
  int n = 0;
  for (const auto& [k, v] : next) {
    after[k] = v;
    if (++n % 7 == 0) {
      LW_ASSERT_OK(replica.ApplyRecords(Changes(store, after)));
      ASSERT_TRUE(replica.interrupted_import().has_value());
    }
  }
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, after)));
  // Last commit: the marker goes; the replica now holds the imported state.
  after.erase(marker);
  LW_ASSERT_OK(replica.ApplyRecords(Changes(store, after)));
  EXPECT_FALSE(replica.interrupted_import().has_value());
  EXPECT_EQ(replica.Snapshot(), next);
  LW_ASSERT_OK_AND_ASSIGN(LockCore rebuilt, LockCore::Rebuild(CoreOptions{}, Flat(next)));
  EXPECT_EQ(replica.DebugString(), rebuilt.DebugString());
  EXPECT_EQ(replica.Counters().locks, 20u);
}

}  // namespace
}  // namespace lockwarden::core
