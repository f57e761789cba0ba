// ReplicaState (LockCore::ApplyRecords) against random traffic: a leader
// core applies random commands; each command's Delta becomes the watch
// events of one etcd revision (one Txn: the last mutation of each key, as
// EtcdStore sends it); a replica applies them. After every revision the
// replica's invariants hold, and regularly its Snapshot() and DebugString()
// equal the leader's and a core rebuilt from the replica's records.
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
  o.dedup_entries_max = 50;  // Evictions delete d/ records.
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

// One Txn's worth of watch events from a Delta: the last mutation of each
// key, deletes of absent keys dropped (etcd emits no event for them).
std::vector<store::WatchEvent> EventsOf(const Delta& delta, int64_t revision,
                                        std::map<std::string, std::string>& store) {
  std::map<std::string, const Mutation*> last;
  for (const Mutation& m : delta) last[m.key] = &m;
  std::vector<store::WatchEvent> events;
  for (const auto& [key, m] : last) {
    store::WatchEvent e;
    e.key = key;
    e.mod_revision = revision;
    if (m->op == Mutation::Op::kPut) {
      e.type = store::WatchEvent::Type::kPut;
      e.value = m->value;
      store[key] = m->value;
    } else {
      if (store.erase(key) == 0) continue;
      e.type = store::WatchEvent::Type::kDelete;
    }
    events.push_back(std::move(e));
  }
  return events;
}

TEST(ReplicaStateTest, FollowsRandomTrafficAndEqualsARebuiltCore) {
  std::cout << "seed " << g_seed << " (replay with --seed=" << g_seed << ")" << std::endl;
  SCOPED_TRACE(absl::StrCat("seed ", g_seed));
  Traffic traffic(g_seed);
  core::LockCore leader(Options());
  std::map<std::string, std::string> store;
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  int64_t revision = 1;
  int64_t now_ms = 0;
  std::vector<store::WatchEvent> batch;  // Several revisions per Apply, sometimes.
  std::map<std::string, int> puts, deletes;  // By family: what was exercised.
  for (int step = 0; step < kSteps; ++step) {
    now_ms += step % 3;
    core::Effects fx = leader.Apply(traffic.Next(leader), now_ms);
    if (fx.delta.empty()) continue;
    std::vector<store::WatchEvent> events = EventsOf(fx.delta, ++revision, store);
    for (const store::WatchEvent& e : events) {
      ++(e.type == store::WatchEvent::Type::kPut ? puts : deletes)[e.key.substr(0, 2)];
    }
    batch.insert(batch.end(), events.begin(), events.end());
    if (step % 4 != 0) continue;
    absl::Status s = replica->Apply(batch);
    ASSERT_TRUE(s.ok()) << "step " << step << ": " << s;
    batch.clear();
    ASSERT_THAT(replica->core().CheckInvariants(), IsOk()) << "step " << step;
    ASSERT_EQ(replica->records(), store) << "step " << step;
    if (step % 16 == 0) {
      ASSERT_EQ(replica->core().Snapshot(), leader.Snapshot()) << "step " << step;
      ASSERT_EQ(replica->core().DebugString(), leader.DebugString()) << "step " << step;
    }
  }
  ASSERT_THAT(replica->Apply(batch), IsOk());
  EXPECT_EQ(replica->revision(), revision);
  EXPECT_EQ(replica->core().Snapshot(), leader.Snapshot());
  std::vector<std::pair<std::string, std::string>> flat(store.begin(), store.end());
  absl::StatusOr<core::LockCore> rebuilt = core::LockCore::Rebuild(Options(), flat);
  ASSERT_THAT(rebuilt, IsOk());
  EXPECT_EQ(replica->core().Snapshot(), rebuilt->Snapshot());
  EXPECT_EQ(replica->core().DebugString(), rebuilt->DebugString());
  const core::CoreCounters c = leader.Counters();
  std::cout << "final: locks " << c.locks << " waiters " << c.waiters << " events "
            << c.events << " revisions " << revision << std::endl;
  EXPECT_GT(revision, kSteps / 4);
  for (const char* family : {"m/", "g/", "c/", "n/", "e/", "l/", "w/", "s/", "d/"}) {
    EXPECT_GT(puts[family], 0) << family;
    std::cout << family << " puts " << puts[family] << " deletes " << deletes[family] << "\n";
  }
  for (const char* family : {"n/", "e/", "l/", "w/", "s/", "d/"}) {
    EXPECT_GT(deletes[family], 0) << family;
  }
}

TEST(ReplicaStateTest, ReplayedRevisionsAreSkipped) {
  core::LockCore leader(Options());
  std::map<std::string, std::string> store;
  absl::StatusOr<ReplicaState> replica = ReplicaState::Load(Options(), {}, 1);
  ASSERT_THAT(replica, IsOk());
  core::LockCmd l;
  l.request_id = "r1";
  l.gateway = "gw-a";
  l.fh = "fh";
  l.owner = {"c", 1, "oh"};
  l.exclusive = true;
  std::vector<store::WatchEvent> events = EventsOf(leader.Apply(l, 0).delta, 2, store);
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
  absl::Status s = replica->Apply({e});
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
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
