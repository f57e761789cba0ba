// Failover drills on a replicated lockwarden (3-member etcd, 3 servers on
// loopback), each checked by the crash tests' history checker
// (tests/crash/history.h): concurrent random LOCK/UNLOCK/CANCEL/AckGrant
// traffic against the leader records every operation with its invoke and
// completion times; a failure is injected; the state in etcd afterwards
// must be explained by a linearization of the history (acknowledged ops
// in, unknown ones in or out, replies as the client saw them, the final
// state equal to the model's: so no lock acknowledged and lost, no grace
// entered, no NSM state number changed, no SM_NOTIFY queued), and the new
// leader must serve exactly that state and answer retried requests from
// its dedup table.
//
//   KillNineLeaderRounds      kill -9 of the leader, 10 rounds
//   SigstopPastLeaseIsFenced  SIGSTOP the leader beyond its lease; a standby
//                             takes over; SIGCONT: the old leader's write is
//                             refused (fencing) and it steps down
//   KillNineEtcdLeader        kill -9 of the etcd raft leader under load
//   PartitionFromEtcd         the leader's etcd connections reset and
//                             refused (a TCP proxy per server and member):
//                             its lease runs out, a standby leads, the old
//                             leader steps down; healed, it is a standby
//
// Seeded: --seed=N or LW_SEED=N (traffic and kill moments; timing still
// varies between runs).
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"
#include "tests/common/test_seed.h"
#include "tests/crash/history.h"
#include "tests/crash/recovery_checks.h"
#include "tests/crash/traffic.h"
#include "tests/failover/ha_cluster.h"

namespace lockwarden::crash {
namespace {

using ::lockwarden::testing::HaCluster;
using ::lockwarden::testing::TestSeed;
using ::lockwarden::testing::HaClusterOptions;

constexpr int64_t kGrantTimeoutMs = 3'600'000;  // Never expires in a drill.
constexpr int kKillRounds = 10;
constexpr int kLeaseTtlMs = 2000;  // Short, so SIGSTOP-past-lease is quick.
constexpr absl::Duration kRpcTimeout = absl::Seconds(2);

std::string SaveHistory(const History& history, const std::string& name) {
  const char* dir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".txt");
  std::ofstream out(path);
  for (const Op& op : history) out << op.Describe() << "\n";
  return path;
}

class DrillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = TestSeed();
    std::printf("seed %llu (replay with --seed=%llu)\n",
                static_cast<unsigned long long>(seed_),
                static_cast<unsigned long long>(seed_));
    HaClusterOptions options;
    options.extra_args = {absl::StrCat("--grant-timeout-ms=", kGrantTimeoutMs),
                          absl::StrCat("--lease-ttl-ms=", kLeaseTtlMs)};
    options.proxy_etcd = proxy_etcd_;
    auto cluster = HaCluster::Start(options);
    ASSERT_THAT(cluster, testing::IsOk());
    cluster_ = *std::move(cluster);
  }

  TrafficOptions Options() const {
    TrafficOptions o;
    o.lanes = 6;
    o.rpc_timeout = kRpcTimeout;
    o.waiting = waiting_;
    return o;
  }

  std::unique_ptr<Traffic> StartTraffic(int leader, uint64_t seed) {
    auto t = std::make_unique<Traffic>(Options(), seed,
                                       [this, leader] { return cluster_->Channel(leader); }, &ids_);
    t->Start();
    return t;
  }

  // The whole check after a drill: history vs store, the leader serves the
  // store, no acknowledged lock lost, no conflicting locks, retries
  // deduplicated. Keeps the state for the next round.
  void CheckAfter(const std::string& drill, const History& history, int leader) {
    auto recovered = cluster_->ScanState();
    ASSERT_THAT(recovered, testing::IsOk());
    const core::CoreOptions model = ModelOptions(kGrantTimeoutMs);
    const CheckResult check = CheckRound(s0_, *recovered, history, model);
    ASSERT_TRUE(check.ok) << drill << ": " << check.failure
                          << "\nfull history: " << SaveHistory(history, drill);
    std::printf("%s: %zu ops (%zu acked, %zu applied; unknown: %zu applied, %zu lost), "
                "%zu keys\n",
                drill.c_str(), history.size(), check.acked, check.applied,
                check.unknown_applied, check.unknown_lost, recovered->size());
    std::fflush(stdout);
    testing::Stubs stubs(cluster_->Channel(leader));
    ASSERT_EQ(CompareServerWithStore(stubs, *recovered, model), "")
        << drill << ": the leader does not serve the store";
    auto locks = testing::ListAllLocks(*stubs.admin);
    ASSERT_THAT(locks, testing::IsOk());
    ASSERT_EQ(FindConflictingLocks(*locks), "");
    for (const Op& op : history) all_.push_back(op);
    ASSERT_EQ(FindMissingAckedLocks(all_, *locks), "") << drill;
    ASSERT_EQ(CheckRetriesAreDeduplicated(stubs, history, 12, rng_), "") << drill;
    CheckNoStateLoss(drill, stubs);
    auto waiters = testing::ListAllWaiters(*stubs.admin);
    ASSERT_THAT(waiters, testing::IsOk());
    waiting_.clear();
    for (const v1::Waiter& w : *waiters) {
      waiting_.push_back(CancelTarget{w.file_handle(), w.owner(), w.range(), w.exclusive()});
    }
    s0_ = *std::move(recovered);
  }

  // What a failover must never do, checked on the new leader: a gateway
  // identity in grace, a changed NSM state number, an SM_NOTIFY queued.
  void CheckNoStateLoss(const std::string& drill, testing::Stubs& stubs) {
    v1::ListGatewaysRequest request;
    request.set_page_size(1000);
    v1::ListGatewaysResponse response;
    auto ctx = testing::ContextWithDeadline(testing::kAdminCallTimeout);
    const grpc::Status st = stubs.admin->ListGateways(ctx.get(), request, &response);
    ASSERT_TRUE(st.ok()) << st.error_message();
    for (const v1::Gateway& g : response.gateways()) {
      EXPECT_FALSE(g.in_grace()) << drill << ": " << g.gateway_id() << " entered grace";
      EXPECT_EQ(g.pending_notification_events(), 0u)
          << drill << ": SM_NOTIFY queued for " << g.gateway_id();
      auto it = nsm_states_.emplace(g.gateway_id(), g.nsm_state()).first;
      EXPECT_EQ(it->second, g.nsm_state())
          << drill << ": NSM state number of " << g.gateway_id() << " changed";
    }
  }

  bool proxy_etcd_ = false;
  std::map<std::string, int32_t> nsm_states_;  // Gateway -> first seen.
  uint64_t seed_ = 0;
  std::mt19937_64 rng_{0};
  std::unique_ptr<HaCluster> cluster_;
  testing::RequestIdGenerator ids_{"drill"};
  KeyValues s0_;
  History all_;
  std::vector<CancelTarget> waiting_;
};

TEST_F(DrillTest, KillNineLeaderRounds) {
  rng_.seed(seed_);
  absl::StatusOr<int> leader = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  std::vector<double> takeover_ms;
  for (int round = 0; round < kKillRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed_, " round ", round));
    auto traffic = StartTraffic(*leader, seed_ + round);
    absl::SleepFor(absl::Milliseconds(100 + rng_() % 300));
    const absl::Time killed = absl::Now();
    ASSERT_THAT(cluster_->Signal(*leader, SIGKILL), testing::IsOk());
    traffic->Stop();
    absl::StatusOr<int> next = cluster_->WaitForLeader(testing::kLeaderWaitMax, *leader);
    ASSERT_THAT(next, testing::IsOk());
    takeover_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - killed));
    CheckAfter(absl::StrCat("kill9-round", round), traffic->TakeHistory(), *next);
    if (HasFatalFailure()) return;
    ASSERT_THAT(cluster_->StartServer(*leader), testing::IsOk());  // Back as a standby.
    leader = next;
    absl::SleepFor(absl::Milliseconds(500));  // Let the standbys see it alive.
  }
  std::sort(takeover_ms.begin(), takeover_ms.end());
  std::printf("kill -9 takeover (kill -> new leader SERVING): p50 %.0f ms, max %.0f ms\n",
              takeover_ms[takeover_ms.size() / 2], takeover_ms.back());
}

TEST_F(DrillTest, SigstopPastLeaseIsFencedAndStepsDown) {
  rng_.seed(seed_);
  absl::StatusOr<int> old = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(old, testing::IsOk());
  auto before = StartTraffic(*old, seed_);
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_THAT(cluster_->Signal(*old, SIGSTOP), testing::IsOk());
  const absl::Time stopped = absl::Now();
  absl::StatusOr<int> next = cluster_->WaitForLeader(testing::kLeaderWaitMax, *old);
  ASSERT_THAT(next, testing::IsOk());
  std::printf("SIGSTOP: a standby took over after %.0f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - stopped));
  before->Stop();  // Lanes stuck on the stopped leader time out: unknown.
  History history = before->TakeHistory();
  // The new leader takes writes while the old one is stopped.
  auto during = StartTraffic(*next, seed_ + 1);
  absl::SleepFor(absl::Milliseconds(400));
  during->Stop();
  for (Op& op : during->TakeHistory()) history.push_back(std::move(op));
  absl::SleepFor(std::max(absl::ZeroDuration(),
                          stopped + absl::Milliseconds(kLeaseTtlMs + 1000) - absl::Now()));

  // SIGCONT, and at once a LOCK straight at the old leader: whatever its
  // stale core says, the write must not reach etcd.
  v1::LockRequest probe;
  probe.set_request_id(ids_.Next());
  probe.set_gateway_id("gw-fencing");
  probe.set_file_handle("fenced-file");
  probe.mutable_owner()->set_client_name("fenced-client");
  probe.mutable_owner()->set_svid(1);
  probe.mutable_range()->set_length(1);
  probe.set_exclusive(true);
  ASSERT_THAT(cluster_->Signal(*old, SIGCONT), testing::IsOk());
  testing::Stubs old_stubs(cluster_->Channel(*old));
  v1::LockResponse response;
  auto ctx = testing::ContextWithDeadline(absl::Seconds(5));
  const grpc::Status st = old_stubs.lock->Lock(ctx.get(), probe, &response);
  EXPECT_FALSE(st.ok()) << "the deposed leader acknowledged a LOCK: "
                        << response.ShortDebugString();
  std::printf("SIGCONT: LOCK at the old leader answered %d %s\n", st.error_code(),
              st.error_message().c_str());
  // It steps down: NOT_SERVING for the lock service, and says so in its log.
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline &&
         (cluster_->Serving(*old) ||
          !absl::StrContains(cluster_->LogTail(*old, 1 << 20), "standby_again"))) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_FALSE(cluster_->Serving(*old));
  EXPECT_TRUE(absl::StrContains(cluster_->LogTail(*old, 1 << 20), "standby_again"))
      << cluster_->LogTail(*old);
  std::printf("SIGCONT: the old leader stepped down after %.0f ms\n",
              absl::ToDoubleMilliseconds(absl::Now() - (deadline - absl::Seconds(15))));
  auto state = cluster_->ScanState();
  ASSERT_THAT(state, testing::IsOk());
  for (const auto& [key, value] : *state) {
    ASSERT_FALSE(absl::StrContains(value, probe.request_id()))
        << "the fenced LOCK reached etcd: " << key;
    ASSERT_FALSE(absl::StrContains(value, "fenced-file")) << key;
  }
  absl::StatusOr<int> leader = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  EXPECT_NE(*leader, *old);
  CheckAfter("sigstop", history, *leader);
}

TEST_F(DrillTest, KillNineEtcdLeaderUnderLoad) {
  rng_.seed(seed_);
  absl::StatusOr<int> leader = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  absl::StatusOr<int> etcd_leader = cluster_->etcd().LeaderIndex(absl::Seconds(10));
  ASSERT_THAT(etcd_leader, testing::IsOk());
  auto traffic = StartTraffic(*leader, seed_);
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_THAT(cluster_->etcd().Kill(*etcd_leader), testing::IsOk());
  absl::SleepFor(absl::Milliseconds(1500));  // Lanes stop at their first error.
  traffic->Stop();
  History history = traffic->TakeHistory();
  ASSERT_THAT(cluster_->etcd().Restart(*etcd_leader), testing::IsOk());
  ASSERT_THAT(cluster_->etcd().WaitHealthy(absl::Seconds(30)), testing::IsOk());
  absl::StatusOr<int> after = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(after, testing::IsOk());
  std::printf("etcd leader kill: lockwarden leader %s\n",
              *after == *leader ? "kept its lease" : "changed");
  CheckAfter("etcd-leader-kill", history, *after);
}

class PartitionDrillTest : public DrillTest {
 protected:
  PartitionDrillTest() { proxy_etcd_ = true; }
};

TEST_F(PartitionDrillTest, LeaderCutOffFromEtcdIsReplacedAndStepsDown) {
  rng_.seed(seed_);
  absl::StatusOr<int> old = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(old, testing::IsOk());
  auto traffic = StartTraffic(*old, seed_);
  absl::SleepFor(absl::Milliseconds(300));
  cluster_->CutFromEtcd(*old);
  const absl::Time cut = absl::Now();
  // The old leader is alive (the standbys' probes see it), so only its
  // lease ends its term: at most the TTL on etcd, and locally.
  absl::StatusOr<int> next = cluster_->WaitForLeader(testing::kLeaderWaitMax, *old);
  ASSERT_THAT(next, testing::IsOk());
  std::printf("partition: a standby leads %.0f ms after the cut\n",
              absl::ToDoubleMilliseconds(absl::Now() - cut));
  traffic->Stop();
  History history = traffic->TakeHistory();
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline && cluster_->Serving(*old)) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_FALSE(cluster_->Serving(*old)) << "the cut-off leader still serves";
  std::printf("partition: the old leader stopped serving %.0f ms after the cut\n",
              absl::ToDoubleMilliseconds(absl::Now() - cut));
  // Writes through the new leader while the old one is still cut off.
  auto during = StartTraffic(*next, seed_ + 1);
  absl::SleepFor(absl::Milliseconds(400));
  during->Stop();
  for (Op& op : during->TakeHistory()) history.push_back(std::move(op));
  ASSERT_THAT(cluster_->HealToEtcd(*old), testing::IsOk());
  absl::SleepFor(absl::Seconds(2));  // It rejoins as a standby.
  EXPECT_FALSE(cluster_->Serving(*old));
  absl::StatusOr<int> leader = cluster_->WaitForLeader(testing::kLeaderWaitMax);
  ASSERT_THAT(leader, testing::IsOk());
  EXPECT_EQ(*leader, *next);
  CheckAfter("partition", history, *leader);
}

}  // namespace
}  // namespace lockwarden::crash
