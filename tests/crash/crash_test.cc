// Crash test of lockwarden-server: random concurrent traffic, kill -9 at a
// random moment, restart on the same data dir, and check that the recovered
// state is explained by the history (tests/crash/history.h), that the
// restarted server serves exactly that state, holds no conflicting locks,
// lost no acknowledged lock, and answers retried requests from its dedup
// table.
//
// Seeded: --seed=N or LW_SEED=N replays a run (the kill moments are seeded
// too, but where the server is at that moment depends on timing, so a replay
// is similar, not identical). LW_CRASH_ROUNDS=N sets the number of rounds
// (tests/crash/soak.sh runs many). On failure the seed, the round, the
// failure with its diff and the path of the full history are printed.
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"
#include "tests/crash/history.h"
#include "tests/crash/recovery_checks.h"
#include "tests/crash/traffic.h"

namespace lockwarden::crash {
namespace {

// Grants stay unconfirmed far longer than a test runs, so the server never
// expires one on its own (the reference replay does not model wall time).
constexpr int64_t kGrantTimeoutMs = 3'600'000;
constexpr int kDefaultRounds = 25;
// How long traffic runs before the kill: uniform in this range.
constexpr int kKillAfterMinMs = 40;
constexpr int kKillAfterMaxMs = 500;
// Retried requests per round.
constexpr int kRetriesPerRound = 24;

uint64_t SeedFromFlagsOrEnv() {
  for (const std::string& arg : ::testing::internal::GetArgvs()) {
    absl::string_view v(arg);
    uint64_t seed = 0;
    if (absl::ConsumePrefix(&v, "--seed=") && absl::SimpleAtoi(v, &seed)) return seed;
  }
  const char* env = getenv("LW_SEED");
  uint64_t seed = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &seed)) return seed;
  return std::random_device{}();
}

int RoundsFromEnv() {
  const char* env = getenv("LW_CRASH_ROUNDS");
  int rounds = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &rounds) && rounds > 0) return rounds;
  return kDefaultRounds;
}

// Writes the whole history where Bazel keeps test outputs; returns the path.
std::string SaveHistory(const History& history, uint64_t seed, int round) {
  const char* dir = getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : "/tmp", "/crash-history-seed",
                                        seed, "-round", round, ".txt");
  std::ofstream out(path);
  for (const Op& op : history) out << op.Describe() << "\n";
  return path;
}

// "granted=.. denied=.. blocked=.. deadlock=.. acks=..": evidence that a round
// exercised every path.
std::string ReplyCounts(const History& history) {
  int granted = 0, denied = 0, blocked = 0, deadlock = 0, acks = 0;
  for (const Op& op : history) {
    if (!op.acked) continue;
    if (std::holds_alternative<v1::AckGrantRequest>(op.request)) {
      ++acks;
    } else if (std::holds_alternative<v1::LockRequest>(op.request)) {
      const absl::string_view r = op.reply;
      granted += absl::StartsWith(r, "LOCK_STATUS_GRANTED");
      denied += absl::StartsWith(r, "LOCK_STATUS_DENIED");
      blocked += absl::StartsWith(r, "LOCK_STATUS_BLOCKED");
      deadlock += absl::StartsWith(r, "LOCK_STATUS_DEADLOCK");
    }
  }
  return absl::StrCat("lock granted=", granted, " denied=", denied, " blocked=", blocked,
                      " deadlock=", deadlock, " grant acks=", acks);
}

TEST(CrashTest, KillNineRecoversALinearizableStateEveryRound) {
  const uint64_t seed = SeedFromFlagsOrEnv();
  const int rounds = RoundsFromEnv();
  std::printf("crash_test: seed=%llu rounds=%d (replay with --seed=%llu or LW_SEED)\n",
              static_cast<unsigned long long>(seed), rounds,
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  testing::ServerProcessOptions so;
  so.extra_args = {absl::StrCat("--grant-timeout-ms=", kGrantTimeoutMs), "--log-level=warn"};
  auto server = testing::ServerProcess::Start(so);
  ASSERT_TRUE(server.ok()) << server.status();
  const core::CoreOptions model_options = ModelOptions(kGrantTimeoutMs);
  testing::RequestIdGenerator ids("crash");
  std::mt19937_64 rng(seed);
  KeyValues s0;  // A fresh data dir holds nothing.
  std::vector<CancelTarget> waiting;  // Waiters the previous round left.
  History all;   // Every round's operations, for the acknowledged-lock check.
  uint64_t total_ops = 0, total_unknown_applied = 0, total_unknown_lost = 0;

  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE(absl::StrCat("seed ", seed, " round ", round));
    TrafficOptions traffic_options;
    traffic_options.waiting = waiting;
    Traffic traffic(traffic_options, seed + static_cast<uint64_t>(round),
                    [&] { return (*server)->NewChannel(); }, &ids);
    traffic.Start();
    const int kill_after_ms =
        kKillAfterMinMs + static_cast<int>(rng() % (kKillAfterMaxMs - kKillAfterMinMs));
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
    LW_ASSERT_OK((*server)->Kill(SIGKILL));
    traffic.Stop();
    History history = traffic.TakeHistory();

    auto recovered = LoadStore((*server)->data_dir());
    ASSERT_TRUE(recovered.ok()) << recovered.status();
    const CheckResult check = CheckRound(s0, *recovered, history, model_options);
    if (!check.ok) {
      FAIL() << "seed " << seed << " round " << round << ": " << check.failure
             << "\nfull history: " << SaveHistory(history, seed, round);
    }
    total_ops += history.size();
    total_unknown_applied += check.unknown_applied;
    total_unknown_lost += check.unknown_lost;
    std::printf("round %2d: kill after %3d ms, %5zu ops (%zu acked, %zu applied; unknown: %zu "
                "applied, %zu lost; %s), %zu keys, %zu waiters before\n",
                round, kill_after_ms, history.size(), check.acked, check.applied,
                check.unknown_applied, check.unknown_lost, ReplyCounts(history).c_str(),
                recovered->size(), waiting.size());
    std::fflush(stdout);

    LW_ASSERT_OK((*server)->Restart());
    testing::Stubs stubs((*server)->NewChannel());
    const std::string served = CompareServerWithStore(stubs, *recovered, model_options);
    ASSERT_EQ(served, "") << "restarted server does not serve the recovered store";
    auto locks = testing::ListAllLocks(*stubs.admin);
    ASSERT_TRUE(locks.ok()) << locks.status();
    ASSERT_EQ(FindConflictingLocks(*locks), "");
    for (Op& op : history) all.push_back(op);
    ASSERT_EQ(FindMissingAckedLocks(all, *locks), "")
        << "full history: " << SaveHistory(all, seed, round);
    ASSERT_EQ(CheckRetriesAreDeduplicated(stubs, history, kRetriesPerRound, rng), "");
    auto waiters = testing::ListAllWaiters(*stubs.admin);
    ASSERT_TRUE(waiters.ok()) << waiters.status();
    waiting.clear();
    for (const v1::Waiter& w : *waiters) {
      waiting.push_back(CancelTarget{w.file_handle(), w.owner(), w.range(), w.exclusive()});
    }
    // The retries changed nothing, so the store still holds `recovered`:
    // the next round starts from it.
    s0 = *std::move(recovered);
  }
  std::printf("crash_test: %d rounds, %llu ops, unknown-outcome ops: %llu applied, %llu lost\n",
              rounds, static_cast<unsigned long long>(total_ops),
              static_cast<unsigned long long>(total_unknown_applied),
              static_cast<unsigned long long>(total_unknown_lost));
}

}  // namespace
}  // namespace lockwarden::crash
