// Request dedup ring (lock_core_dedup.cc): one put per remembered reply,
// wrap-around, a limit changed between restarts, records of the layout
// before the ring, a crash between migration commits, and a replica
// following it all with ApplyRecords.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/core/codec.h"
#include "server/core/core_test_util.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using Store = std::map<std::string, std::string>;
using KV = std::vector<std::pair<std::string, std::string>>;

CoreOptions WithRing(size_t n) {
  CoreOptions o;
  o.dedup_entries_max = n;
  return o;
}

// Step i's command: LOCK (even) or UNLOCK (odd) of one byte, id "r<i>".
Command StepCommand(int i) {
  const Owner owner{"client", 1, "oh"};
  const Range range{static_cast<uint64_t>(i / 2 % 5), 1};
  if (i % 2 == 0) {
    LockCmd l;
    l.request_id = absl::StrCat("r", i);
    l.gateway = "gw";
    l.fh = "fh";
    l.owner = owner;
    l.range = range;
    l.exclusive = true;
    return l;
  }
  return UnlockCmd{absl::StrCat("r", i), "gw", "fh", owner, range};
}

// A core and the store its deltas build (as a commit pipeline would).
struct Node {
  explicit Node(LockCore c, Store s = {})
      : core(std::move(c)), store(std::move(s)) {}
  Effects Apply(const Command& cmd) {
    Effects fx = core.Apply(cmd, ++now_ms);
    for (const Mutation& m : fx.delta) {
      if (m.op == Mutation::Op::kPut) {
        store[m.key] = m.value;
      } else {
        store.erase(m.key);
      }
    }
    return fx;
  }
  LockCore core;
  Store store;
  int64_t now_ms = 1000;
};

KV Flat(const Store& s) { return KV(s.begin(), s.end()); }

// Invariants, store == Snapshot(), and a rebuild from the store has the same
// Snapshot() and DebugString().
absl::Status Verify(const Node& n, const CoreOptions& options) {
  absl::Status s = n.core.CheckInvariants();
  if (!s.ok()) return s;
  if (n.core.Snapshot() != n.store) {
    return absl::InternalError("store != snapshot");
  }
  absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options, Flat(n.store));
  if (!rebuilt.ok()) return rebuilt.status();
  if (rebuilt->Snapshot() != n.store) {
    return absl::InternalError("rebuilt snapshot != store");
  }
  if (rebuilt->DebugString() != n.core.DebugString()) {
    return absl::InternalError(absl::StrCat("rebuilt:\n", rebuilt->DebugString(),
                                            "live:\n", n.core.DebugString()));
  }
  return absl::OkStatus();
}

std::vector<std::string> DedupKeys(const Store& s) {
  std::vector<std::string> out;
  for (const auto& [k, v] : s) {
    if (k.rfind("d/", 0) == 0) out.push_back(k);
  }
  return out;
}

// Whether a retry of step i's command is answered from the table (same
// reply, no delta) on a copy of the node.
bool Remembered(const Node& n, const CoreOptions& options, int i) {
  absl::StatusOr<LockCore> copy = LockCore::Rebuild(options, Flat(n.store));
  if (!copy.ok()) return false;
  return copy->Apply(StepCommand(i), n.now_ms + 1).delta.empty();
}

// The old (pre-ring) record of a ring record: key d/<sequence as id>, value
// without the trailing sequence; m/counters' next_id raised past the ids.
Store ToOldLayout(const Store& ring_store) {
  Store out;
  uint64_t max_sequence = 0;
  for (const auto& [k, v] : ring_store) {
    if (k.rfind("d/", 0) != 0) {
      out[k] = v;
      continue;
    }
    codec::DedupRecord rec;
    EXPECT_TRUE(codec::DecodeDedupRecord(k, v, &rec)) << k;
    codec::Writer w;
    w.Bytes(rec.request_id);
    w.U8(rec.command_kind);
    codec::WriteReply(w, rec.reply);
    out[codec::IdKey(codec::kDedupPrefix, rec.sequence)] = std::move(w).Finish();
    max_sequence = std::max(max_sequence, rec.sequence);
  }
  codec::Reader r(out.at("m/counters"));
  uint64_t token, event, id, dropped;
  EXPECT_TRUE(r.Version() && r.U64(&token) && r.U64(&event) && r.U64(&id) &&
              r.U64(&dropped));
  codec::Writer w;
  w.U64(token);
  w.U64(event);
  w.U64(std::max(id, max_sequence + 1));
  w.U64(dropped);
  out["m/counters"] = std::move(w).Finish();
  return out;
}

TEST(DedupRingTest, ARememberedReplyIsOnePutAndTheRingWrapsAround) {
  const CoreOptions options = WithRing(4);
  Node n(LockCore{options});
  for (int i = 0; i < 11; ++i) {
    Effects fx = n.Apply(StepCommand(i));
    ASSERT_EQ(fx.reply.status, LockStatus::kGranted) << i;
    int puts = 0;
    for (const Mutation& m : fx.delta) {
      if (m.key.rfind("d/", 0) != 0) continue;
      ASSERT_EQ(m.op, Mutation::Op::kPut) << "step " << i << " deletes " << m.key;
      // Sequence i + 1 lives in slot (i + 1) % 4.
      EXPECT_EQ(m.key, codec::DedupRingKey(4, (i + 1) % 4));
      ++puts;
    }
    EXPECT_EQ(puts, 1) << i;
    ASSERT_THAT(Verify(n, options), IsOk()) << i;
  }
  EXPECT_EQ(DedupKeys(n.store).size(), 4u);
  EXPECT_EQ(n.core.Counters().dedup_entries, 4u);
  for (int i = 7; i < 11; ++i) EXPECT_TRUE(Remembered(n, options, i)) << i;
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(Remembered(n, options, i)) << i;
  // A retry answers the recorded reply and changes nothing.
  Effects retry = n.Apply(StepCommand(10));
  EXPECT_TRUE(retry.delta.empty());
  EXPECT_EQ(retry.reply.status, LockStatus::kGranted);
}

TEST(DedupRingTest, LockUnlockPairWritesFiveRecordsOnceTheTableIsFull) {
  const CoreOptions options = WithRing(8);
  Node n(LockCore{options});
  for (int i = 0; i < 20; ++i) n.Apply(StepCommand(i));
  // Steady state (table full): LOCK = lock put + counters (new token) +
  // dedup put; UNLOCK = lock delete + dedup put. Before the ring: the same
  // plus a dedup delete each and counters on the UNLOCK too (8).
  EXPECT_EQ(n.Apply(StepCommand(20)).delta.size(), 3u);
  EXPECT_EQ(n.Apply(StepCommand(21)).delta.size(), 2u);
}

TEST(DedupRingTest, AFreshCoreWritesItsCountersWithItsFirstRecord) {
  const CoreOptions options = WithRing(4);
  Node n(LockCore{options});
  // UNLOCK of nothing moves no counter but remembers its reply.
  n.Apply(StepCommand(1));
  EXPECT_EQ(n.store.count("m/counters"), 1u);
  EXPECT_EQ(DedupKeys(n.store).size(), 1u);
  EXPECT_THAT(Verify(n, options), IsOk());
}

// Records written with one limit, rebuilt with another: the table is the
// window of the newest N sequences, and the store converges to the ring.
void CheckLimitChange(size_t before, size_t after, int steps) {
  SCOPED_TRACE(absl::StrCat(before, " -> ", after));
  Node first(LockCore{WithRing(before)});
  for (int i = 0; i < steps; ++i) first.Apply(StepCommand(i));
  const CoreOptions options = WithRing(after);
  absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options, Flat(first.store));
  ASSERT_THAT(rebuilt, IsOk());
  Node n(*std::move(rebuilt), first.store);
  n.now_ms = first.now_ms;
  ASSERT_THAT(Verify(n, options), IsOk());
  const int kept = static_cast<int>(std::min(before, after));
  for (int i = 0; i < steps; ++i) {
    EXPECT_EQ(Remembered(n, options, i), i >= steps - kept) << i;
  }
  EXPECT_EQ(n.core.Counters().dedup_entries, static_cast<size_t>(kept));
  EXPECT_GT(n.core.Counters().dedup_records_to_migrate, 0u);
  // New traffic migrates the other records a few per commit.
  for (int i = steps; i < steps + 2 * static_cast<int>(std::max(before, after));
       ++i) {
    n.Apply(StepCommand(i));
    ASSERT_THAT(Verify(n, options), IsOk()) << i;
  }
  EXPECT_EQ(n.core.Counters().dedup_records_to_migrate, 0u);
  const std::string ring_prefix = codec::DedupRingKey(after, 0).substr(0, 11);
  for (const std::string& k : DedupKeys(n.store)) {
    EXPECT_EQ(k.substr(0, 11), ring_prefix) << k;
  }
  EXPECT_EQ(DedupKeys(n.store).size(), after);
}

TEST(DedupRingTest, ALimitChangedBetweenRestartsKeepsTheNewestAndConverges) {
  CheckLimitChange(64, 16, 100);  // Smaller: the newest 16 stay.
  CheckLimitChange(16, 64, 100);  // Larger: the 16 there were stay.
  CheckLimitChange(10, 100, 60);  // Old slots are new slots of others.
}

TEST(DedupRingTest, RecordsOfTheLayoutBeforeTheRingAreReadAndMigrated) {
  Node first(LockCore{WithRing(1000)});
  for (int i = 0; i < 50; ++i) first.Apply(StepCommand(i));
  const Store old_store = ToOldLayout(first.store);
  const CoreOptions options = WithRing(20);
  absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options, Flat(old_store));
  ASSERT_THAT(rebuilt, IsOk());
  Node n(*std::move(rebuilt), old_store);
  n.now_ms = first.now_ms;
  ASSERT_THAT(Verify(n, options), IsOk());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(Remembered(n, options, i), i >= 30) << i;
  EXPECT_EQ(n.core.Counters().dedup_records_to_migrate, 50u);
  for (int i = 50; i < 60; ++i) {
    Effects fx = n.Apply(StepCommand(i));
    EXPECT_LE(fx.delta.size(), 3u + 2 * 8) << i;  // Bounded per commit.
    ASSERT_THAT(Verify(n, options), IsOk()) << i;
  }
  EXPECT_EQ(n.core.Counters().dedup_records_to_migrate, 0u);
  EXPECT_EQ(DedupKeys(n.store).size(), 20u);
  for (int i = 0; i < 60; ++i) EXPECT_EQ(Remembered(n, options, i), i >= 40) << i;
}

// A crash after any migration commit: the store of that moment rebuilds to
// a core that remembers every reply of the window, and carrying on from it
// converges to the store of the run that did not crash.
TEST(DedupRingTest, ACrashBetweenMigrationCommitsLosesNoRememberedReply) {
  for (const auto& [before, after] :
       std::vector<std::pair<size_t, size_t>>{{10, 100}, {100, 10}, {0, 20}}) {
    SCOPED_TRACE(absl::StrCat(before, " -> ", after));
    Node first(LockCore{WithRing(before == 0 ? 1000 : before)});
    for (int i = 0; i < 150; ++i) first.Apply(StepCommand(i));
    const Store start =
        before == 0 ? ToOldLayout(first.store) : first.store;  // 0: old layout.
    const CoreOptions options = WithRing(after);
    absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options, Flat(start));
    ASSERT_THAT(rebuilt, IsOk());
    Node n(*std::move(rebuilt), start);
    n.now_ms = first.now_ms;
    int step = 150;
    while (n.core.Counters().dedup_records_to_migrate > 0 && step < 400) {
      n.Apply(StepCommand(step++));
      // Crash here: rebuild from this store and check the window.
      absl::StatusOr<LockCore> after_crash =
          LockCore::Rebuild(options, Flat(n.store));
      ASSERT_THAT(after_crash, IsOk()) << step;
      EXPECT_EQ(after_crash->DebugString(), n.core.DebugString()) << step;
      // Of the first run's 150 requests the newest `survivors` were
      // persisted (all of them in the old layout's big table).
      const int survivors = before == 0 ? 150 : static_cast<int>(before);
      for (int i = std::max(0, step - static_cast<int>(after)); i < step; ++i) {
        if (i < 150 - survivors) continue;
        EXPECT_TRUE(Remembered(n, options, i)) << "step " << step << " id " << i;
      }
    }
    EXPECT_EQ(n.core.Counters().dedup_records_to_migrate, 0u);
  }
}

// A replica following the leader's commits with ApplyRecords equals the
// leader and a rebuild of the store, through wrap-around and a migration.
TEST(DedupRingTest, AReplicaFollowingTheRingEqualsARebuild) {
  Node first(LockCore{WithRing(100)});
  for (int i = 0; i < 130; ++i) first.Apply(StepCommand(i));
  const Store start = ToOldLayout(first.store);
  const CoreOptions options = WithRing(16);
  absl::StatusOr<LockCore> leader_core = LockCore::Rebuild(options, Flat(start));
  absl::StatusOr<LockCore> replica = LockCore::Rebuild(options, Flat(start));
  ASSERT_THAT(leader_core, IsOk());
  ASSERT_THAT(replica, IsOk());
  Node leader(*std::move(leader_core), start);
  for (int i = 130; i < 200; ++i) {
    const Store before = leader.store;
    Effects fx = leader.Apply(StepCommand(i));
    // One commit's changes, as a watch delivers them: last write per key.
    std::map<std::string, const Mutation*> last;
    for (const Mutation& m : fx.delta) last[m.key] = &m;
    std::vector<LockCore::RecordChange> changes;
    for (const auto& [key, m] : last) {
      auto prev = before.find(key);
      if (m->op == Mutation::Op::kDelete && prev == before.end()) continue;
      LockCore::RecordChange c;
      c.key = key;
      if (prev != before.end()) c.previous = prev->second;
      if (m->op == Mutation::Op::kPut) c.value = m->value;
      changes.push_back(std::move(c));
    }
    ASSERT_THAT(replica->ApplyRecords(changes), IsOk()) << i;
    ASSERT_THAT(replica->CheckInvariants(), IsOk()) << i;
    ASSERT_EQ(replica->Snapshot(), leader.store) << i;
    ASSERT_EQ(replica->DebugString(), leader.core.DebugString()) << i;
    absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options, Flat(leader.store));
    ASSERT_THAT(rebuilt, IsOk());
    ASSERT_EQ(replica->DebugString(), rebuilt->DebugString()) << i;
  }
  EXPECT_EQ(replica->Counters().dedup_records_to_migrate, 0u);
}

TEST(DedupRingTest, AReplicaWithAnotherLimitRefusesTheLeadersRecords) {
  Node leader(LockCore{WithRing(8)});
  leader.Apply(StepCommand(0));
  LockCore replica(WithRing(16));
  std::vector<LockCore::RecordChange> changes;
  for (const auto& [k, v] : leader.store) changes.push_back({k, std::nullopt, v});
  EXPECT_THAT(replica.ApplyRecords(changes),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(DedupRingTest, MalformedRingRecordsAreDataLoss) {
  Node n(LockCore{WithRing(4)});
  for (int i = 0; i < 6; ++i) n.Apply(StepCommand(i));
  const std::string key = codec::DedupRingKey(4, 1);  // Sequence 5.
  ASSERT_EQ(n.store.count(key), 1u);
  codec::DedupRecord rec;
  ASSERT_TRUE(codec::DecodeDedupRecord(key, n.store.at(key), &rec));
  auto rebuild_with = [&](const std::string& k, const std::string& v) {
    Store s = n.store;
    s.erase(key);
    s[k] = v;
    return LockCore::Rebuild(WithRing(4), Flat(s)).status();
  };
  // Sequence 5 does not belong in slot 2.
  EXPECT_THAT(rebuild_with(codec::DedupRingKey(4, 2), n.store.at(key)),
              StatusIs(absl::StatusCode::kDataLoss));
  // A ring record without its sequence.
  codec::Writer w;
  w.Bytes(rec.request_id);
  w.U8(rec.command_kind);
  codec::WriteReply(w, rec.reply);
  EXPECT_THAT(rebuild_with(key, std::move(w).Finish()),
              StatusIs(absl::StatusCode::kDataLoss));
  // The same sequence twice (another ring size's key).
  EXPECT_THAT(
      [&] {
        Store s = n.store;
        s[codec::DedupRingKey(8, 5)] = n.store.at(key);
        return LockCore::Rebuild(WithRing(4), Flat(s)).status();
      }(),
      StatusIs(absl::StatusCode::kDataLoss));
  // Not a dedup key of either layout.
  EXPECT_THAT(rebuild_with("d/xyz", n.store.at(key)),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(DedupRingTest, IdsThatDifferInOneByteAreDifferentRequests) {
  Node n(LockCore{WithRing(16)});
  UnlockCmd a{"gw-1/100", "gw", "fh", {"c", 1, "oh"}, {0, 1}};
  UnlockCmd b = a;
  b.request_id = "gw-1/101";
  EXPECT_FALSE(n.Apply(a).delta.empty());
  EXPECT_FALSE(n.Apply(b).delta.empty());
  EXPECT_TRUE(n.Apply(a).delta.empty());
  LockCmd reused;  // The same id for another command kind.
  reused.request_id = "gw-1/101";
  reused.gateway = "gw";
  reused.fh = "fh";
  reused.owner = {"c", 1, "oh"};
  EXPECT_EQ(n.Apply(reused).reply.status, LockStatus::kInvalid);
}

}  // namespace
}  // namespace lockwarden::core
