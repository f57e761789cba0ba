// Persistence tests: the codec, rebuild equality, counters that never go
// backwards, and corrupt input answered with DataLoss.
#include <limits>

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

TEST(CodecTest, VarintsZigzagAndBytesRoundTrip) {
  codec::Writer w;
  w.U64(0);
  w.U64(std::numeric_limits<uint64_t>::max());
  w.I64(-1);
  w.I64(std::numeric_limits<int64_t>::min());
  w.I32(std::numeric_limits<int32_t>::max());
  w.Bytes(std::string("a\0b", 3));
  w.Bool(true);
  const std::string s = std::move(w).Finish();
  codec::Reader r(s);
  uint64_t u;
  int64_t i;
  int32_t i32;
  std::string b;
  bool flag;
  ASSERT_TRUE(r.Version());
  ASSERT_TRUE(r.U64(&u));
  EXPECT_EQ(u, 0u);
  ASSERT_TRUE(r.U64(&u));
  EXPECT_EQ(u, std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(r.I64(&i));
  EXPECT_EQ(i, -1);
  ASSERT_TRUE(r.I64(&i));
  EXPECT_EQ(i, std::numeric_limits<int64_t>::min());
  ASSERT_TRUE(r.I32(&i32));
  EXPECT_EQ(i32, std::numeric_limits<int32_t>::max());
  ASSERT_TRUE(r.Bytes(&b));
  EXPECT_EQ(b, std::string("a\0b", 3));
  ASSERT_TRUE(r.Bool(&flag));
  EXPECT_TRUE(r.Done());
  // Truncation anywhere fails.
  for (size_t n = 1; n < s.size(); ++n) {
    codec::Reader t(absl::string_view(s.data(), n));
    bool ok = t.Version() && t.U64(&u) && t.U64(&u) && t.I64(&i) &&
              t.I64(&i) && t.I32(&i32) && t.Bytes(&b) && t.Bool(&flag);
    EXPECT_FALSE(ok && t.Done()) << n;
  }
}

TEST(CodecTest, IdKeysSortNumerically) {
  EXPECT_EQ(codec::IdKey("l/", 255), "l/00000000000000ff");
  uint64_t id;
  ASSERT_TRUE(codec::ParseIdKey("l/00000000000000ff", &id));
  EXPECT_EQ(id, 255u);
  EXPECT_FALSE(codec::ParseIdKey("l/00000000000000fg", &id));
  EXPECT_FALSE(codec::ParseIdKey("l/ff", &id));
  EXPECT_LT(codec::IdKey("e/", 9), codec::IdKey("e/", 10));
}

// A state with every kind of record.
void Populate(CoreHarness& h) {
  const MonitorId lockd{"gw-host", 100021, 4, 16};
  h.Apply(MonCmd{"m1", "gw-a", "c1", lockd, std::string(16, 'x')});
  h.Lock("f", MakeOwner("c1", 1), 0, 100, true);
  h.Lock("f", MakeOwner("c2", 1), 0, 10, false, true);  // Waiter.
  h.Lock("g", MakeOwner("c1", 1), 5, 0, false);
  h.Lock("g", MakeOwner("c3", 1), 5, 10, true, true);
  h.Unlock("g", MakeOwner("c1", 1), 0, 0);  // Unconfirmed grant + event.
  ShareCmd s;
  s.request_id = "s1";
  s.gateway = "gw-b";
  s.fh = "f";
  s.client = "c4";
  s.oh = "o";
  s.access = ShareMode::kRead;
  s.deny = ShareMode::kWrite;
  s.client_state = 3;
  h.Apply(s);
  h.Apply(NotifyCmd{"n1", "gw-a", "c9", 5});
  h.Lock("h", MakeOwner("c5", 1), 0, 1, true);
  h.Apply(SimuCrashCmd{"sc", "gw-b"});  // Grace + ledger on gw-b.
}

TEST(RebuildTest, RebuiltStateEqualsLiveState) {
  CoreHarness h;
  Populate(h);
  LW_ASSERT_OK(h.Verify());
  KV kv(h.store().begin(), h.store().end());
  LW_ASSERT_OK_AND_ASSIGN(LockCore rebuilt,
                          LockCore::Rebuild(CoreOptions{}, kv));
  EXPECT_EQ(rebuilt.DebugString(), h.core().DebugString());
  EXPECT_EQ(rebuilt.Counters().unconfirmed_grants, 1u);
  EXPECT_EQ(rebuilt.ListWaiters({}, 0, 10).size(), 1u);
  EXPECT_EQ(rebuilt.ListGateways()[1].ledger.size(), 1u);
  // The rebuilt core carries on exactly like the live one.
  const Owner c1 = MakeOwner("c1", 1);
  UnlockCmd u{"", "gw-a", "f", c1, {0, 0}};
  Effects live = h.core().Apply(u, h.now_ms);
  Effects again = rebuilt.Apply(u, h.now_ms);
  EXPECT_EQ(live.reply, again.reply);
  EXPECT_EQ(live.delta, again.delta);
  ASSERT_EQ(again.events.size(), 1u);
}

TEST(RebuildTest, CountersNeverGoBackwards) {
  CoreHarness h;
  const uint64_t t1 = h.Lock("f", MakeOwner("a", 1), 0, 1, true).fencing_token;
  h.Unlock("f", MakeOwner("a", 1), 0, 0);
  KV kv(h.store().begin(), h.store().end());
  LW_ASSERT_OK_AND_ASSIGN(LockCore rebuilt,
                          LockCore::Rebuild(CoreOptions{}, kv));
  LockCmd l = h.LockReq("f", MakeOwner("a", 1), 0, 1, true);
  EXPECT_GT(rebuilt.Apply(l, 0).reply.fencing_token, t1);
}

TEST(RebuildTest, EmptyStoreIsAFreshCore) {
  LW_ASSERT_OK_AND_ASSIGN(LockCore core, LockCore::Rebuild(CoreOptions{}, {}));
  EXPECT_EQ(core.Counters().locks, 0u);
}

TEST(RebuildTest, CorruptRecordsAreDataLoss) {
  CoreHarness h;
  Populate(h);
  const KV good(h.store().begin(), h.store().end());
  LW_ASSERT_OK(LockCore::Rebuild(CoreOptions{}, good).status());
  int cases = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    // Truncated values, an extra trailing byte, a bad version byte. (The
    // extra byte is 2, not a bool: a trailing 1 is a valid optional flag
    // on a gateway record, its drain flag.)
    for (int variant = 0; variant < 3; ++variant) {
      KV bad = good;
      std::string& v = bad[i].second;
      if (variant == 0) v.resize(v.size() - 1);
      if (variant == 1) v.push_back('\x02');
      if (variant == 2) v[0] = '\x07';
      EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, bad),
                  StatusIs(absl::StatusCode::kDataLoss))
          << bad[i].first << " variant " << variant;
      ++cases;
    }
  }
  EXPECT_GT(cases, 30);
  KV unknown = good;
  unknown.push_back({"zz", "x"});
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, unknown),
              StatusIs(absl::StatusCode::kDataLoss));
  KV no_counters;
  for (const auto& kv : good) {
    if (kv.first != "m/counters") no_counters.push_back(kv);
  }
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, no_counters),
              StatusIs(absl::StatusCode::kDataLoss));
  // A lock whose gateway record is missing.
  KV no_gateway;
  for (const auto& kv : good) {
    if (kv.first != "g/gw-a") no_gateway.push_back(kv);
  }
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, no_gateway),
              StatusIs(absl::StatusCode::kDataLoss));
  // Two conflicting exclusive locks: decodes, but breaks an invariant.
  KV conflict = good;
  std::string lock_key, lock_value;
  for (const auto& kv : good) {
    if (kv.first.rfind("l/", 0) == 0) {
      lock_key = kv.first;
      lock_value = kv.second;
    }
  }
  CoreHarness other;
  other.Lock("f", MakeOwner("zz", 1), 0, 0, true);
  for (const auto& kv : other.store()) {
    if (kv.first.rfind("l/", 0) == 0) conflict.push_back({"l/00000000000000ff", kv.second});
  }
  for (auto& kv : conflict) {
    if (kv.first == "m/counters") {
      codec::Writer w;
      w.U64(1000);
      w.U64(1000);
      w.U64(1000);
      w.U64(0);
      kv.second = std::move(w).Finish();
    }
  }
  EXPECT_THAT(LockCore::Rebuild(CoreOptions{}, conflict),
              StatusIs(absl::StatusCode::kDataLoss));
}

}  // namespace
}  // namespace lockwarden::core
