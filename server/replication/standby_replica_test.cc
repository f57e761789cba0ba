// ReplicaState (LockCore::ApplyRecords) against random traffic: a leader
// core applies random commands; each command's Delta becomes the watch
// events of one etcd revision (one Txn: the last mutation of each key, as
// EtcdStore sends it, with prev_kv and create_revision as etcd fills them);
// a replica applies them. After every revision the replica's invariants
// hold, and regularly its Snapshot() and DebugString() equal the leader's,
// the store's and a core rebuilt from the store. Also: changes whose
// previous value etcd compacted (ABORTED, then a reload), several changes
// of one key in a revision, and a staged snapshot import.
//
// Seed: --seed=N or LW_SEED=N replays a run; printed at the start.
#include "server/replication/standby_replica.h"

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::replication {
namespace {

using ::lockwarden::testing::IsOk;

uint64_t g_seed = 0;
constexpr int kSteps = 20'000;
constexpr int kFiles = 6;
constexpr int kClients = 5;
const core::MonitorId kLockd{"gw-host", 100021, 4, 16};

core::CoreOptions Options() {
  core::CoreOptions o;
  o.grant_timeout_ms = 40;
  o.grace_period_ms = 100;
  o.dedup_entries_max = 50;  // Evictions overwrite d/ ring slots in place.
  o.waiters_per_file_max = 4;
  return o;
}

class Traffic {
 public:
  explicit Traffic(uint64_t seed) : rng_(seed) {}

  core::Command Next(const core::LockCore& leader) {
    const std::string id = absl::StrCat("r", ++request_);
    const std::string gw = Chance(80) ? "gw-a" : "gw-b";
    const std::string fh = absl::StrCat("fh", Uniform(0, kFiles - 1));
    const int c = Uniform(0, kClients - 1);
    const std::string client = absl::StrCat("client", c);
    const core::Owner owner{client, static_cast<uint32_t>(Uniform(1, 2)), "oh"};
    const core::Range range{static_cast<uint64_t>(Uniform(0, 40)),
                            static_cast<uint64_t>(Uniform(0, 20))};
    switch (Uniform(0, 15)) {
      case 0: case 1: case 2: case 3: {
        core::LockCmd l;
        l.request_id = id;
        l.gateway = gw;
        l.fh = fh;
        l.owner = owner;
        l.range = range;
        l.exclusive = Chance(60);
        l.block = Chance(50);
        l.monitored = !Chance(15);
        l.client_state = states_[c];
        // Clients move between a few addresses: client records change.
        l.client_address = absl::StrCat("198.18.0.", Uniform(1, 6));
        l.callback = "cb";
        l.cookie = "ck";
        return l;
      }
      case 4: case 5:
        return core::UnlockCmd{id, gw, fh, owner, range};
      case 6: {
        core::CancelCmd x{id, gw, fh, owner, range};
        x.exclusive = Chance(50);
        return x;
      }
      case 7: case 8: {
        // Ack the oldest pending event of a gateway, if any.
        std::vector<core::Event> pending = leader.PendingEvents(gw, 0, 1);
        if (pending.empty()) return core::TickCmd{};
        core::AckEventCmd a;
        a.request_id = id;
        a.gateway = gw;
        a.sequence = pending[0].sequence;
        return a;
      }
      case 9:
        return core::TickCmd{};
      case 10: {
        core::MonCmd m;
        m.request_id = id;
        m.gateway = gw;
        m.mon_name = client;
        m.my_id = kLockd;
        m.priv = std::string(16, 'p');
        return m;
      }
      case 11:
        if (Chance(50)) return core::UnmonCmd{id, gw, client, kLockd};
        return core::NotifyCmd{id, gw, client, states_[c] += 2};
      case 12: {
        core::ShareCmd s;
        s.request_id = id;
        s.gateway = gw;
        s.fh = fh;
        s.client = client;
        s.oh = "so";
        s.access = static_cast<core::ShareMode>(Uniform(1, 3));
        s.deny = static_cast<core::ShareMode>(Uniform(0, 2));
        s.client_state = states_[c];
        return s;
      }
      case 13:
        return core::UnshareCmd{id, gw, fh, client, "so"};
      case 14:
        if (Chance(20)) return core::SimuCrashCmd{id, gw};
        return core::FreeAllCmd{id, gw, client, 0};
      default: {
        core::ForceReleaseCmd f;
        f.request_id = id;
        f.target = core::ForceReleaseCmd::Target::kFile;
        f.fh = fh;
        return f;
      }
    }
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

  std::mt19937_64 rng_;
  uint64_t request_ = 0;
  int32_t states_[kClients] = {1, 1, 1, 1, 1};
};

// The state prefix as etcd keeps it (value and create revision per key),
// and the watch events of one Txn as etcd sends them with prev_kv: the last
// mutation of each key, deletes of absent keys dropped (etcd emits no event
// for them), prev_value on every update and delete, none on a create.
class EtcdModel {
 public:
  // `drop_percent` of the updates and deletes lose their previous value,
  // as when etcd compacted the revision before them.
  std::vector<store::WatchEvent> Commit(const Delta& delta, int64_t revision,
                                        int drop_percent = 0,
                                        std::mt19937_64* rng = nullptr) {
    std::map<std::string, const Mutation*> last;
    for (const Mutation& m : delta) last[m.key] = &m;
    std::vector<store::WatchEvent> events;
    for (const auto& [key, m] : last) {
      auto it = keys_.find(key);
      store::WatchEvent e;
      e.key = key;
      e.mod_revision = revision;
      if (it != keys_.end()) e.prev_value = it->second.value;
      if (m->op == Mutation::Op::kPut) {
        e.type = store::WatchEvent::Type::kPut;
        e.value = m->value;
        e.create_revision =
            it != keys_.end() ? it->second.create_revision : revision;
        keys_[key] = {m->value, e.create_revision};
      } else {
        if (it == keys_.end()) continue;
        e.type = store::WatchEvent::Type::kDelete;
        keys_.erase(it);
      }
      if (e.prev_value.has_value() && drop_percent > 0 &&
          std::uniform_int_distribution<int>(0, 99)(*rng) < drop_percent) {
        e.prev_value.reset();
      }
      events.push_back(std::move(e));
    }
    return events;
  }
  std::map<std::string, std::string> Values() const {
    std::map<std::string, std::string> out;
    for (const auto& [k, e] : keys_) out.emplace(k, e.value);
    return out;
  }
  std::vector<std::pair<std::string, std::string>> Flat() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, e] : keys_) out.emplace_back(k, e.value);
    return out;
  }

 private:
  struct Entry {
    std::string value;
    int64_t create_revision = 0;
  };
  std::map<std::string, Entry> keys_;
};

TEST(ReplicaStateTest, FollowsRandomTrafficAndEqualsARebuiltCore) {
  std::cout << "seed " << g_seed << " (replay with --seed=" << g_seed << ")" << std::endl;
  SCOPED_TRACE(absl::StrCat("seed ", g_seed));
  Traffic traffic(g_seed);
  core::LockCore leader(Options());
  EtcdModel store;
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  int64_t revision = 1;
  int64_t now_ms = 0;
  std::vector<store::WatchEvent> batch;  // Several revisions per Apply, sometimes.
  // By family: what was exercised (updates: puts with a previous value).
  std::map<std::string, int> puts, updates, deletes;
  for (int step = 0; step < kSteps; ++step) {
    now_ms += step % 3;
    core::Effects fx = leader.Apply(traffic.Next(leader), now_ms);
    if (fx.delta.empty()) continue;
    std::vector<store::WatchEvent> events = store.Commit(fx.delta, ++revision);
    for (const store::WatchEvent& e : events) {
      const std::string family = e.key.substr(0, 2);
      if (e.type == store::WatchEvent::Type::kDelete) {
        ++deletes[family];
      } else {
        ++puts[family];
        if (e.prev_value.has_value()) ++updates[family];
      }
    }
    batch.insert(batch.end(), events.begin(), events.end());
    if (step % 4 != 0) continue;
    absl::Status s = replica->Apply(batch);
    ASSERT_TRUE(s.ok()) << "step " << step << ": " << s;
    batch.clear();
    ASSERT_THAT(replica->core().CheckInvariants(), IsOk()) << "step " << step;
    if (step % 16 == 0) {
      ASSERT_EQ(replica->core().Snapshot(), store.Values()) << "step " << step;
      ASSERT_EQ(replica->core().Snapshot(), leader.Snapshot()) << "step " << step;
      ASSERT_EQ(replica->core().DebugString(), leader.DebugString()) << "step " << step;
    }
  }
  ASSERT_THAT(replica->Apply(batch), IsOk());
  EXPECT_EQ(replica->revision(), revision);
  EXPECT_EQ(replica->core().Snapshot(), leader.Snapshot());
  absl::StatusOr<core::LockCore> rebuilt =
      core::LockCore::Rebuild(Options(), store.Flat());
  ASSERT_THAT(rebuilt, IsOk());
  EXPECT_EQ(replica->core().Snapshot(), rebuilt->Snapshot());
  EXPECT_EQ(replica->core().DebugString(), rebuilt->DebugString());
  const core::CoreCounters c = leader.Counters();
  std::cout << "final: locks " << c.locks << " waiters " << c.waiters << " events "
            << c.events << " revisions " << revision << std::endl;
  EXPECT_GT(revision, kSteps / 4);
  for (const char* family : {"m/", "g/", "c/", "n/", "e/", "l/", "w/", "s/", "d/"}) {
    EXPECT_GT(puts[family], 0) << family;
    std::cout << family << " puts " << puts[family] << " (updates "
              << updates[family] << ") deletes " << deletes[family] << "\n";
  }
  EXPECT_GT(updates["m/"], 0);
  for (const char* family : {"n/", "e/", "l/", "w/", "s/"}) {
    EXPECT_GT(deletes[family], 0) << family;
  }
  // Dedup records leave by deletion or are overwritten in place (a ring of
  // slots); either way an old value goes out.
  EXPECT_GT(deletes["d/"] + updates["d/"], 0);
}

TEST(ReplicaStateTest, CompactedPreviousValuesAbortAndAReloadCatchesUp) {
  SCOPED_TRACE(absl::StrCat("seed ", g_seed));
  Traffic traffic(g_seed + 1);
  std::mt19937_64 rng(g_seed + 2);
  core::LockCore leader(Options());
  EtcdModel store;
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  int64_t revision = 1;
  int reloads = 0;
  for (int step = 0; step < kSteps / 4; ++step) {
    core::Effects fx = leader.Apply(traffic.Next(leader), step);
    if (fx.delta.empty()) continue;
    const std::vector<store::WatchEvent> events =
        store.Commit(fx.delta, ++revision, /*drop_percent=*/1, &rng);
    const std::map<std::string, std::string> before =
        replica->core().Snapshot();
    const int64_t applied = replica->revision();
    absl::Status s = replica->Apply(events);
    if (s.ok()) continue;
    ASSERT_EQ(s.code(), absl::StatusCode::kAborted)
        << "step " << step << ": " << s;
    // Refused whole: neither the core nor the revision moved.
    ASSERT_EQ(replica->revision(), applied);
    ASSERT_EQ(replica->core().Snapshot(), before) << "step " << step;
    ++reloads;
    replica = ReplicaState::Load(Options(), store.Flat(), revision);
    ASSERT_THAT(replica, IsOk());
    ASSERT_THAT(replica->Apply(events),
                IsOk());  // At or below the reload: skipped.
  }
  std::cout << "reloads " << reloads << " revisions " << revision << std::endl;
  EXPECT_GT(reloads, 0);
  ASSERT_THAT(replica->core().CheckInvariants(), IsOk());
  EXPECT_EQ(replica->core().Snapshot(), leader.Snapshot());
  EXPECT_EQ(replica->core().DebugString(), leader.DebugString());
}

core::LockCmd LockOf(const std::string& request_id, const std::string& fh,
                     uint64_t offset) {
  core::LockCmd l;
  l.request_id = request_id;
  l.gateway = "gw-a";
  l.fh = fh;
  l.owner = {"c", 1, "oh"};
  l.range = {offset, 1};
  l.exclusive = true;
  return l;
}

TEST(ReplicaStateTest, ReplayedRevisionsAreSkipped) {
  core::LockCore leader(Options());
  EtcdModel store;
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  std::vector<store::WatchEvent> events =
      store.Commit(leader.Apply(LockOf("r1", "fh", 0), 0).delta, 2);
  ASSERT_THAT(replica->Apply(events), IsOk());
  // A resumed watch may deliver revision 2 again: no double apply.
  ASSERT_THAT(replica->Apply(events), IsOk());
  EXPECT_EQ(replica->core().Snapshot(), leader.Snapshot());
  EXPECT_EQ(replica->core().Counters().locks, 1u);
}

TEST(ReplicaStateTest, AChangeThatDoesNotFitIsDataLoss) {
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  store::WatchEvent e;
  e.type = store::WatchEvent::Type::kPut;
  e.key = "l/00000000000000000001";
  e.value = "garbage";
  e.mod_revision = 2;
  e.create_revision = 2;  // A create: no previous value needed.
  absl::Status s = replica->Apply({e});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
}

// A replica at revision 2 holding one lock, and two alternative revision
// 3s: the unlock of that lock, or a second lock.
struct OneLock {
  OneLock() {
    store.Commit(leader.Apply(LockOf("r1", "fh", 0), 0).delta, 2);
    replica.emplace(*ReplicaState::Load(Options(), store.Flat(), 2));
    core::LockCore other = *core::LockCore::Rebuild(Options(), store.Flat());
    after_second_lock = store;
    core::UnlockCmd u{"r2", "gw-a", "fh", {"c", 1, "oh"}, core::Range{0, 0}};
    unlock = store.Commit(leader.Apply(u, 1).delta, 3);
    second_lock = after_second_lock.Commit(
        other.Apply(LockOf("r3", "fh2", 5), 1).delta, 3);
  }
  core::LockCore leader{Options()};
  EtcdModel store;              // After the unlock.
  EtcdModel after_second_lock;  // After the second lock instead.
  std::optional<ReplicaState> replica;
  std::vector<store::WatchEvent> unlock;
  std::vector<store::WatchEvent> second_lock;
};

TEST(ReplicaStateTest,
     ADeleteWithoutItsPreviousValueIsAbortedAndChangesNothing) {
  OneLock t;
  const std::map<std::string, std::string> before =
      t.replica->core().Snapshot();
  bool dropped = false;
  for (store::WatchEvent& e : t.unlock) {
    if (e.type != store::WatchEvent::Type::kDelete ||
        e.key.substr(0, 2) != "l/")
      continue;
    e.prev_value.reset();  // etcd compacted revision 2.
    dropped = true;
  }
  ASSERT_TRUE(dropped);
  absl::Status s = t.replica->Apply(t.unlock);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_NE(s.message().find("delete of 'l/"), absl::string_view::npos) << s;
  EXPECT_EQ(t.replica->revision(), 2);
  EXPECT_EQ(t.replica->core().Snapshot(), before);
  EXPECT_EQ(t.replica->core().Counters().locks, 1u);
  // With the previous values (as after a reload would not even need) it
  // applies.
  for (store::WatchEvent& e : t.unlock) {
    if (e.type == store::WatchEvent::Type::kDelete &&
        !e.prev_value.has_value()) {
      e.prev_value = before.at(e.key);
    }
  }
  ASSERT_THAT(t.replica->Apply(t.unlock), IsOk());
  EXPECT_EQ(t.replica->core().Snapshot(), t.leader.Snapshot());
}

TEST(ReplicaStateTest, AnUpdateWithoutItsPreviousValueIsAborted) {
  OneLock t;
  store::WatchEvent* update = nullptr;
  for (store::WatchEvent& e : t.second_lock) {
    if (e.type == store::WatchEvent::Type::kPut &&
        e.create_revision < e.mod_revision) {
      update = &e;  // E.g. the counters record, rewritten in place.
    }
  }
  ASSERT_NE(update, nullptr);
  update->prev_value.reset();
  absl::Status s = t.replica->Apply(t.second_lock);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_NE(s.message().find("update of"), absl::string_view::npos) << s;
  EXPECT_EQ(t.replica->revision(), 2);
  EXPECT_EQ(t.replica->core().Counters().locks, 1u);
}

TEST(ReplicaStateTest, APutWithoutAPreviousValueIsACreate) {
  OneLock t;
  // The second lock's l/ record is new: create_revision == mod_revision
  // and no prev_kv, as etcd sends a create.
  int creates = 0;
  for (const store::WatchEvent& e : t.second_lock) {
    if (e.type == store::WatchEvent::Type::kPut && !e.prev_value.has_value()) {
      EXPECT_EQ(e.create_revision, e.mod_revision);
      creates += e.key.substr(0, 2) == "l/";
    }
  }
  EXPECT_EQ(creates, 1);
  ASSERT_THAT(t.replica->Apply(t.second_lock), IsOk());
  EXPECT_EQ(t.replica->core().Counters().locks, 2u);
  ASSERT_THAT(t.replica->core().CheckInvariants(), IsOk());
}

TEST(ReplicaStateTest, SeveralChangesOfOneKeyInARevisionAreOneChange) {
  OneLock t;
  // Revision 3 from a store that does not refuse them (etcd does): every
  // update written twice (first with the old value again), and a key
  // created and deleted; all events carry the value before the revision,
  // as etcd reads prev_kv at mod_revision - 1.
  std::vector<store::WatchEvent> events;
  int twice = 0;
  for (const store::WatchEvent& e : t.second_lock) {
    if (e.type == store::WatchEvent::Type::kPut && e.prev_value.has_value()) {
      store::WatchEvent same = e;
      same.value = *e.prev_value;
      events.push_back(same);
      ++twice;
    }
    events.push_back(e);
  }
  ASSERT_GT(twice, 0);
  store::WatchEvent ghost;
  ghost.type = store::WatchEvent::Type::kPut;
  ghost.key = "l/99999999999999999999";
  ghost.value = "not a lock: never decoded";
  ghost.mod_revision = 3;
  ghost.create_revision = 3;
  events.push_back(ghost);
  ghost.type = store::WatchEvent::Type::kDelete;
  ghost.value.clear();
  ghost.create_revision = 0;
  events.push_back(ghost);
  ASSERT_THAT(t.replica->Apply(events), IsOk());
  EXPECT_EQ(t.replica->revision(), 3);
  EXPECT_EQ(t.replica->core().Snapshot(), t.after_second_lock.Values());
  EXPECT_EQ(t.replica->core().Counters().locks, 2u);
}

// A staged snapshot import as CoreRunner commits it (marker, old records
// out, new ones in, marker deleted), followed with prev_kv; a delete
// without its previous value in the middle is refused like any other.
TEST(ReplicaStateTest, FollowsAStagedImportAndRefusesACompactedDeleteInIt) {
  core::LockCore old_state(Options());
  core::LockCore new_state(Options());
  // Tokens and ids start alike: the old state's last three locks have no
  // counterpart and are deleted, the rest are overwritten.
  for (int i = 0; i < 6; ++i) {
    (void)old_state.Apply(
        LockOf(absl::StrCat("o", i), absl::StrCat("old", i), i), i);
    if (i < 3)
      (void)new_state.Apply(
          LockOf(absl::StrCat("n", i), absl::StrCat("new", i), i), i);
  }
  EtcdModel store;
  const std::map<std::string, std::string> old_records = old_state.Snapshot();
  const std::map<std::string, std::string> new_records = new_state.Snapshot();
  Delta all;
  for (const auto& [k, v] : old_records) all.push_back(Mutation::Put(k, v));
  store.Commit(all, 2);
  absl::StatusOr<ReplicaState> replica =
      ReplicaState::Load(Options(), store.Flat(), 2);
  ASSERT_THAT(replica, IsOk());
  const std::string marker(core::codec::kImportMarkerKey);
  std::vector<Delta> commits;
  commits.push_back(
      {Mutation::Put(marker, core::codec::EncodeImportMarker(core::ImportMarker{
                                 new_records.size(), 7, "t"}))});
  Delta out, in;
  for (const auto& [k, v] : old_records) {
    if (!new_records.count(k)) out.push_back(Mutation::Delete(k));
  }
  for (const auto& [k, v] : new_records) in.push_back(Mutation::Put(k, v));
  commits.push_back(out);
  commits.push_back(in);
  commits.push_back({Mutation::Delete(marker)});
  int64_t revision = 2;
  for (size_t i = 0; i < commits.size(); ++i) {
    std::vector<store::WatchEvent> events =
        store.Commit(commits[i], ++revision);
    if (i == 1) {
      // The old records' deletes: one loses its previous value.
      ASSERT_FALSE(events.empty());
      std::vector<store::WatchEvent> compacted = events;
      compacted[0].prev_value.reset();
      EXPECT_EQ(replica->Apply(compacted).code(), absl::StatusCode::kAborted);
      EXPECT_EQ(replica->revision(), revision - 1);
      ASSERT_TRUE(replica->core().interrupted_import().has_value());
    }
    ASSERT_THAT(replica->Apply(events), IsOk()) << "commit " << i;
    EXPECT_EQ(replica->core().interrupted_import().has_value(),
              i + 1 < commits.size());
    EXPECT_EQ(replica->core().Snapshot(), store.Values()) << "commit " << i;
  }
  EXPECT_EQ(replica->core().Snapshot(), new_records);
  EXPECT_EQ(replica->core().DebugString(), new_state.DebugString());
  EXPECT_THAT(replica->core().CheckInvariants(), IsOk());
}

}  // namespace
}  // namespace lockwarden::replication

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  lockwarden::replication::g_seed =
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  if (const char* env = std::getenv("LW_SEED")) (void)absl::SimpleAtoi(env, &lockwarden::replication::g_seed);
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg(argv[i]);
    if (absl::ConsumePrefix(&arg, "--seed=")) {
      (void)absl::SimpleAtoi(arg, &lockwarden::replication::g_seed);
    }
  }
  return RUN_ALL_TESTS();
}
