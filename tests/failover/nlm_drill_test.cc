// A history-checked failover drill through a real lockwarden-gateway: NLM v4
// clients (libtirpc over TCP) lock and unlock through the gateway while the
// lockwarden leader is killed with kill -9, 5 rounds (3-member etcd, 3
// servers, 1 gateway following the leader). Every NLM call is recorded with
// its invoke and completion times as the crash checker's Op (the v1 request
// the gateway makes of it: file handle, owner {caller_name, svid, oh},
// range, exclusive), GRANTED/DENIED acknowledged, anything else (an RPC
// error or timeout, DENIED_NOLOCKS while no leader answered) of unknown
// outcome. After each round, on the new leader:
//   - every lock acknowledged GRANTED and not possibly released since is
//     still held by its owner (FindMissingAckedLocks), and no two held
//     locks conflict (FindConflictingLocks), as in drill_test;
//   - no two conflicting locks were ever GRANTED at once: for every pair of
//     acknowledged grants of different owners on overlapping bytes of one
//     file (one exclusive), the intervals in which both were certainly held
//     (from the GRANTED reply until the owner's next LOCK or UNLOCK of
//     those bytes is sent: a LOCK of the same owner may change the mode)
//     do not overlap;
//   - NLM calls were granted through the gateway after the kill.
// Seeded: --seed=N or LW_SEED=N.
#include <rpc/rpc.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gateway/gateway_process.h"
#include "gateway/nlm/nlm_test_client.h"
#include "gtest/gtest.h"
#include "tests/common/stubs.h"
#include "tests/common/test_seed.h"
#include "tests/crash/history.h"
#include "tests/crash/recovery_checks.h"
#include "tests/failover/ha_cluster.h"

namespace lockwarden::crash {
namespace {

using ::lockwarden::gateway::GatewayProcess;
using ::lockwarden::gateway::ReadyPorts;
using ::lockwarden::gateway::nlm::LockArgs4;
using ::lockwarden::gateway::nlm::Lock4Of;
using ::lockwarden::gateway::nlm::Spec;
using ::lockwarden::testing::HaCluster;
using ::lockwarden::testing::TestSeed;
using ::lockwarden::testing::HaClusterOptions;

constexpr int kRounds = 5;
constexpr int kLanes = 4;
constexpr int kFiles = 2;
constexpr uint64_t kRangeLimit = 16;
// Traffic before and after each kill.
constexpr absl::Duration kBeforeKill = absl::Milliseconds(600);
constexpr absl::Duration kAfterTakeover = absl::Milliseconds(600);
// One NLM call's client deadline: longer than a takeover plus the
// gateway's --failover-wait-ms, so most calls across a kill complete.
constexpr timeval kCallTimeout{5, 0};
constexpr int kCallsPerLaneMax = 100000;  // Bounds a lane's loop.

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the gateway asks of the lock service for this NLM lock.
v1::LockOwner OwnerOf(const Spec& s) {
  v1::LockOwner o;
  o.set_client_name(s.caller);
  o.set_svid(s.svid);
  o.set_oh(s.oh);
  return o;
}

// One lane: one NLM client (owner) with its own TCP connection.
class Lane {
 public:
  Lane(int index, int nlm_port, uint64_t seed) : index_(index), rng_(seed) {
    client_ = gateway::Connect(nlm_port, NLM_PROG, NLM4_VERS, true);
  }
  ~Lane() {
    if (client_ != nullptr) clnt_destroy(client_);
  }

  // Random LOCK (non-blocking) / UNLOCK of a lock it holds until `stop`.
  void Run(const std::atomic<bool>& stop, History* out) {
    for (int n = 0; n < kCallsPerLaneMax && !stop.load() && client_ != nullptr; ++n) {
      if (!held_.empty() && rng_() % 3 == 0) {
        const size_t i = rng_() % held_.size();
        const Spec s = held_[i];
        out->push_back(Unlock(s, n));
        if (out->back().acked) held_.erase(held_.begin() + static_cast<long>(i));
        continue;
      }
      Spec s = NewSpec(n);
      out->push_back(Lock(s));
      if (out->back().acked && out->back().reply == "LOCK_STATUS_GRANTED") held_.push_back(s);
    }
  }

 private:
  Spec NewSpec(int n) {
    Spec s;
    s.caller = absl::StrCat("nlm-client-", index_);
    s.oh = absl::StrCat("oh-", index_);
    s.svid = index_ + 1;
    s.fh = absl::StrCat("drill-file-", rng_() % kFiles);
    s.offset = rng_() % kRangeLimit;
    s.length = 1 + rng_() % 4;
    s.exclusive = rng_() % 3 != 0;
    s.block = false;
    s.cookie = absl::StrCat("c", index_, "-", n);
    return s;
  }

  Op Lock(Spec& s) {
    Op op;
    op.lane = index_;
    v1::LockRequest r;
    r.set_file_handle(s.fh);
    *r.mutable_owner() = OwnerOf(s);
    r.mutable_range()->set_offset(s.offset);
    r.mutable_range()->set_length(s.length);
    r.set_exclusive(s.exclusive);
    op.request = r;
    nlm4_lockargs a = LockArgs4(s);
    nlm4_res res{};
    op.invoke_ns = NowNs();
    const clnt_stat st = clnt_call(client_, NLMPROC4_LOCK, gateway::XdrProc(xdr_nlm4_lockargs),
                                   reinterpret_cast<caddr_t>(&a), gateway::XdrProc(xdr_nlm4_res),
                                   reinterpret_cast<caddr_t>(&res), kCallTimeout);
    Finish(st, st == RPC_SUCCESS ? res.stat.stat : NLM4_FAILED, &op);
    if (st == RPC_SUCCESS) gateway::XdrFree(gateway::XdrProc(xdr_nlm4_res), &res);
    return op;
  }

  Op Unlock(Spec s, int n) {
    s.cookie = absl::StrCat("u", index_, "-", n);
    Op op;
    op.lane = index_;
    v1::UnlockRequest r;
    r.set_file_handle(s.fh);
    *r.mutable_owner() = OwnerOf(s);
    r.mutable_range()->set_offset(s.offset);
    r.mutable_range()->set_length(s.length);
    op.request = r;
    nlm4_unlockargs a{};
    a.cookie = gateway::nlm::NetobjOf(s.cookie);
    a.alock = Lock4Of(s);
    nlm4_res res{};
    op.invoke_ns = NowNs();
    const clnt_stat st = clnt_call(client_, NLMPROC4_UNLOCK, gateway::XdrProc(xdr_nlm4_unlockargs),
                                   reinterpret_cast<caddr_t>(&a), gateway::XdrProc(xdr_nlm4_res),
                                   reinterpret_cast<caddr_t>(&res), kCallTimeout);
    Finish(st, st == RPC_SUCCESS ? res.stat.stat : NLM4_FAILED, &op);
    if (st == RPC_SUCCESS) gateway::XdrFree(gateway::XdrProc(xdr_nlm4_res), &res);
    return op;
  }

  // GRANTED and DENIED are answers of the lock service; anything else may
  // or may not have been applied.
  static void Finish(clnt_stat st, nlm4_stats stat, Op* op) {
    if (st == RPC_SUCCESS && (stat == NLM4_GRANTED || stat == NLM4_DENIED)) {
      op->complete_ns = NowNs();
      op->acked = true;
      op->reply = stat == NLM4_GRANTED ? "LOCK_STATUS_GRANTED" : "LOCK_STATUS_DENIED";
    } else {
      op->error = st != RPC_SUCCESS ? clnt_sperrno(st) : absl::StrCat("nlm4_stats ", stat);
    }
  }

  const int index_;
  std::mt19937_64 rng_;
  CLIENT* client_ = nullptr;
  std::vector<Spec> held_;
};

struct Span {
  uint64_t start = 0;
  uint64_t end = 0;  // Exclusive.
};

Span SpanOf(const v1::ByteRange& r) { return {r.offset(), r.offset() + r.length()}; }
bool Overlap(Span a, Span b) { return a.start < b.end && b.start < a.end; }

// See the file comment: no two conflicting grants certainly held at once.
std::string FindConcurrentConflictingGrants(const History& history) {
  struct Hold {
    const Op* op;
    const v1::LockRequest* lock;
    int64_t from_ns;
    int64_t until_ns;
  };
  std::vector<Hold> holds;
  for (const Op& op : history) {
    const auto* l = std::get_if<v1::LockRequest>(&op.request);
    if (l == nullptr || !op.acked || op.reply != "LOCK_STATUS_GRANTED") continue;
    Hold h{&op, l, op.complete_ns, kNeverNs};
    // Until the owner's next call on those bytes: an UNLOCK releases them,
    // a LOCK of the same owner may change their mode (POSIX: X -> S).
    for (const Op& other : history) {
      if (&other == &op || other.lane != op.lane || other.invoke_ns < op.invoke_ns) continue;
      const v1::ByteRange* range = nullptr;
      const std::string* file = nullptr;
      if (const auto* u = std::get_if<v1::UnlockRequest>(&other.request)) {
        range = &u->range();
        file = &u->file_handle();
      } else if (const auto* k = std::get_if<v1::LockRequest>(&other.request)) {
        range = &k->range();
        file = &k->file_handle();
      }
      if (range != nullptr && *file == l->file_handle() &&
          Overlap(SpanOf(*range), SpanOf(l->range()))) {
        h.until_ns = std::min(h.until_ns, other.invoke_ns);
      }
    }
    holds.push_back(h);
  }
  for (size_t i = 0; i < holds.size(); ++i) {
    for (size_t j = i + 1; j < holds.size(); ++j) {
      const Hold& a = holds[i];
      const Hold& b = holds[j];
      if (a.op->lane == b.op->lane || a.lock->file_handle() != b.lock->file_handle()) continue;
      if (!a.lock->exclusive() && !b.lock->exclusive()) continue;
      if (!Overlap(SpanOf(a.lock->range()), SpanOf(b.lock->range()))) continue;
      if (a.from_ns < b.until_ns && b.from_ns < a.until_ns) {
        return absl::StrCat("conflicting locks granted at once:\n  ", a.op->Describe(),
                            "\n  ", b.op->Describe());
      }
    }
  }
  return "";
}

Op GrantedLock(int lane, uint64_t offset, bool exclusive, int64_t invoke, int64_t complete) {
  Op op;
  op.lane = lane;
  v1::LockRequest r;
  r.set_file_handle("f");
  r.mutable_owner()->set_client_name(absl::StrCat("c", lane));
  r.mutable_range()->set_offset(offset);
  r.mutable_range()->set_length(2);
  r.set_exclusive(exclusive);
  op.request = r;
  op.invoke_ns = invoke;
  op.complete_ns = complete;
  op.acked = true;
  op.reply = "LOCK_STATUS_GRANTED";
  return op;
}

TEST(NlmDrillCheckTest, ConcurrentConflictingGrantsAreFound) {
  History h = {GrantedLock(0, 0, true, 10, 20), GrantedLock(1, 1, false, 30, 40)};
  EXPECT_NE(FindConcurrentConflictingGrants(h), "");
  // The first owner unlocked (sent at 25) before the second was granted.
  Op unlock;
  unlock.lane = 0;
  v1::UnlockRequest u;
  u.set_file_handle("f");
  u.mutable_range()->set_offset(0);
  u.mutable_range()->set_length(2);
  unlock.request = u;
  unlock.invoke_ns = 25;
  h.push_back(unlock);
  EXPECT_EQ(FindConcurrentConflictingGrants(h), "");
  // Shared with shared, or disjoint bytes, never conflict.
  EXPECT_EQ(FindConcurrentConflictingGrants(
                {GrantedLock(0, 0, false, 10, 20), GrantedLock(1, 0, false, 30, 40)}),
            "");
  EXPECT_EQ(FindConcurrentConflictingGrants(
                {GrantedLock(0, 0, true, 10, 20), GrantedLock(1, 2, true, 30, 40)}),
            "");
}

TEST(NlmDrillTest, KillNineLeaderUnderNlmTrafficThroughAGateway) {
  const uint64_t seed = TestSeed();
  std::printf("seed %llu (replay with --seed=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  HaClusterOptions options;
  options.extra_args = {"--grant-timeout-ms=3600000", "--lease-ttl-ms=2000"};
  auto cluster_or = HaCluster::Start(options);
  ASSERT_THAT(cluster_or, testing::IsOk());
  HaCluster& cluster = **cluster_or;
  std::vector<std::string> servers;
  for (int i = 0; i < cluster.size(); ++i) servers.push_back(cluster.address(i));
  const char* outputs = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  GatewayProcess gw({"--name=gw.drill", absl::StrCat("--server=", absl::StrJoin(servers, ",")),
                     "--nlm-port=0", "--nsm-port=0", "--portmap-port=0",
                     "--failover-wait-ms=3000"},
                    absl::StrCat(outputs != nullptr ? outputs : "/tmp", "/nlm-drill-gateway.log"));
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());

  absl::StatusOr<int> leader = cluster.WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  History all;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    std::atomic<bool> stop{false};
    std::vector<History> lanes(kLanes);
    std::vector<std::thread> threads;
    for (int i = 0; i < kLanes; ++i) {
      threads.emplace_back([&, i, lane_seed = rng()] {
        Lane lane(i, ports->nlm, lane_seed);
        lane.Run(stop, &lanes[i]);
      });
    }
    absl::SleepFor(kBeforeKill + absl::Milliseconds(rng() % 300));
    const int64_t killed_ns = NowNs();
    ASSERT_THAT(cluster.Signal(*leader, SIGKILL), testing::IsOk());
    absl::StatusOr<int> next = cluster.WaitForLeader(testing::kLeaderWaitMax, *leader);
    if (!next.ok()) {
      stop = true;
      for (std::thread& t : threads) t.join();
      FAIL() << next.status();
    }
    absl::SleepFor(kAfterTakeover);
    stop = true;
    for (std::thread& t : threads) t.join();

    History history;
    size_t granted_after_kill = 0;
    for (History& h : lanes) {
      for (Op& op : h) {
        if (op.acked && op.reply == "LOCK_STATUS_GRANTED" && op.invoke_ns > killed_ns) {
          ++granted_after_kill;
        }
        history.push_back(std::move(op));
      }
    }
    for (Op& op : history) all.push_back(op);
    size_t acked = 0;
    for (const Op& op : history) acked += op.acked ? 1 : 0;
    testing::Stubs stubs(cluster.Channel(*next));
    auto locks = testing::ListAllLocks(*stubs.admin);
    ASSERT_THAT(locks, testing::IsOk());
    std::printf("round %d: %zu NLM calls (%zu acknowledged, %zu GRANTED after the kill), "
                "%zu locks held\n",
                round, history.size(), acked, granted_after_kill, locks->size());
    std::fflush(stdout);
    EXPECT_GT(granted_after_kill, 0u) << "no lock granted through the gateway after the kill";
    ASSERT_EQ(FindConflictingLocks(*locks), "");
    ASSERT_EQ(FindMissingAckedLocks(all, *locks), "");
    ASSERT_EQ(FindConcurrentConflictingGrants(all), "");
    ASSERT_THAT(cluster.StartServer(*leader), testing::IsOk());  // Back as a standby.
    leader = next;
    absl::SleepFor(absl::Milliseconds(500));  // The standbys see the new leader alive.
  }
}

}  // namespace
}  // namespace lockwarden::crash
