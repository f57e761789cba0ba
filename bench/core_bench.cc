// Throughput and memory of the lock core alone (no storage, no RPC):
// LOCK/UNLOCK, TEST and conflicting LOCK with 1,000 / 100,000 / 1,000,000
// held locks over 10,000 files, and heap bytes per held lock.
//
//   bazel run -c opt //bench:core_bench
//   valgrind --tool=callgrind bazel-bin/bench/core_bench
//     --benchmark_filter=WithRequestIds/1000 --benchmark_min_time=0.01
//   (one command line)
//
// Every Apply includes building its Delta (the encoded records the service
// would commit), as in production. Figures only: nothing here passes or
// fails on time.
#include <malloc.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "server/core/lock_core.h"
#include "valgrind/callgrind.h"  // No-op macros outside valgrind.

namespace lockwarden::core {
namespace {

constexpr int kFiles = 10'000;
constexpr int kClients = 100;
constexpr int kSvidsPerClient = 10;  // 1,000 owners.
constexpr uint64_t kStride = 100;    // Held lock k of a file: [k*100, +10).

std::string FileHandle(int f) {
  // 32-byte handles, like a typical NFSv3 server's.
  std::string fh = absl::StrCat("fh-", f);
  fh.resize(32, '.');
  return fh;
}

Owner OwnerOf(uint64_t i) {
  return Owner{absl::StrCat("client-", i % kClients),
               static_cast<uint32_t>((i / kClients) % kSvidsPerClient),
               "owner-handle"};
}

struct Fixture {
  std::unique_ptr<LockCore> core;
  std::vector<std::string> fhs;
  int64_t heap_bytes = 0;  // Heap growth while building the held locks.
  int64_t now = 1;
};

// Bytes in use, including blocks big enough to be mmapped (a table's
// vector), which uordblks leaves out.
int64_t HeapInUse() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<int64_t>(m.uordblks + m.hblkhd);
}

// Builds (once per size) a core holding `held` exclusive locks spread
// evenly over the files, each owned by one of 1,000 owners.
Fixture& FixtureFor(int64_t held) {
  static auto* fixtures = new std::map<int64_t, Fixture>();
  auto it = fixtures->find(held);
  if (it != fixtures->end()) return it->second;
  Fixture& fx = (*fixtures)[held];
  for (int f = 0; f < kFiles; ++f) fx.fhs.push_back(FileHandle(f));
  const int64_t before = HeapInUse();
  fx.core = std::make_unique<LockCore>(CoreOptions{});
  LockCmd c;
  c.gateway = "gateway-a";
  c.exclusive = true;
  c.client_state = 1;
  for (int64_t i = 0; i < held; ++i) {
    c.fh = fx.fhs[i % kFiles];
    c.owner = OwnerOf(static_cast<uint64_t>(i));
    c.range = Range{static_cast<uint64_t>(i / kFiles) * kStride, 10};
    Effects e = fx.core->Apply(c, fx.now);
    if (e.reply.status != LockStatus::kGranted) std::abort();
  }
  fx.heap_bytes = HeapInUse() - before;
  return fx;
}

void SetCounters(benchmark::State& state, const Fixture& fx, int64_t held,
                 int ops_per_iteration) {
  state.SetItemsProcessed(state.iterations() * ops_per_iteration);
  state.counters["held_locks"] = static_cast<double>(held);
  state.counters["heap_bytes_per_lock"] =
      held > 0 ? static_cast<double>(fx.heap_bytes) / held : 0;
}

// LOCK then UNLOCK of a free range on a random file: 2 core ops.
void BM_LockUnlock(benchmark::State& state) {
  const int64_t held = state.range(0);
  Fixture& fx = FixtureFor(held);
  std::mt19937_64 rng(1);
  LockCmd lock;
  lock.gateway = "gateway-a";
  lock.exclusive = true;
  lock.client_state = 1;
  UnlockCmd unlock;
  unlock.gateway = "gateway-a";
  for (auto _ : state) {
    const uint64_t r = rng();
    lock.fh = fx.fhs[r % kFiles];
    lock.owner = OwnerOf(r >> 20);
    // Between held locks: [k*100 + 50, +10) never conflicts.
    lock.range = Range{((r >> 40) % 100) * kStride + 50, 10};
    Effects a = fx.core->Apply(lock, ++fx.now);
    unlock.fh = lock.fh;
    unlock.owner = lock.owner;
    unlock.range = lock.range;
    Effects b = fx.core->Apply(unlock, ++fx.now);
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  }
  SetCounters(state, fx, held, 2);
}

// BM_LockUnlock with a request id on every command, as the service sends
// them: each Apply also remembers its reply in the dedup table, which is
// full (dedup_entries_max entries, the default 100,000) before timing
// starts, so every new entry evicts the oldest.
void BM_LockUnlockWithRequestIds(benchmark::State& state) {
  const int64_t held = state.range(0);
  Fixture& fx = FixtureFor(held);
  std::mt19937_64 rng(4);
  LockCmd lock;
  lock.gateway = "gateway-a";
  lock.exclusive = true;
  lock.client_state = 1;
  UnlockCmd unlock;
  unlock.gateway = "gateway-a";
  // Gateway-style ids: instance prefix + counter (gateway/nlm/request_id.h).
  static uint64_t next_id = 0;
  auto pair = [&] {
    const uint64_t r = rng();
    lock.request_id = absl::StrCat("gw-instance-7f3a9c/", ++next_id);
    lock.fh = fx.fhs[r % kFiles];
    lock.owner = OwnerOf(r >> 20);
    lock.range = Range{((r >> 40) % 100) * kStride + 50, 10};
    Effects a = fx.core->Apply(lock, ++fx.now);
    unlock.request_id = absl::StrCat("gw-instance-7f3a9c/", ++next_id);
    unlock.fh = lock.fh;
    unlock.owner = lock.owner;
    unlock.range = lock.range;
    Effects b = fx.core->Apply(unlock, ++fx.now);
    benchmark::DoNotOptimize(a);
    benchmark::DoNotOptimize(b);
  };
  static bool filled = false;
  static double heap_per_entry = 0;  // Heap growth while filling the table.
  if (!filled) {
    const size_t entries = CoreOptions{}.dedup_entries_max;
    const int64_t before = HeapInUse();
    for (size_t i = 0; i < entries / 2; ++i) pair();
    heap_per_entry = static_cast<double>(HeapInUse() - before) / entries;
    filled = true;
  }
  // Under `valgrind --tool=callgrind --collect-atstart=yes`, the counts left
  // at exit are those of the last (reported) run: instructions per pair =
  // Ir / Iterations, independent of machine load.
  CALLGRIND_ZERO_STATS;
  for (auto _ : state) pair();
  SetCounters(state, fx, held, 2);
  state.counters["heap_bytes_per_dedup_entry"] = heap_per_entry;
}

// TEST of a random range: conflicts with a held lock about half the time.
void BM_Test(benchmark::State& state) {
  const int64_t held = state.range(0);
  Fixture& fx = FixtureFor(held);
  std::mt19937_64 rng(2);
  TestQuery q;
  q.gateway = "gateway-a";
  q.exclusive = false;
  q.owner = Owner{"tester", 1, "oh"};
  const uint64_t per_file = std::max<int64_t>(1, held / kFiles);
  for (auto _ : state) {
    const uint64_t r = rng();
    q.fh = fx.fhs[r % kFiles];
    q.range = Range{((r >> 20) % per_file) * kStride + ((r >> 50) % 2) * 50, 5};
    Reply reply = fx.core->Test(q, fx.now);
    benchmark::DoNotOptimize(reply);
  }
  SetCounters(state, fx, held, 1);
}

// Non-blocking LOCK that conflicts: DENIED with the holder.
void BM_LockDenied(benchmark::State& state) {
  const int64_t held = state.range(0);
  Fixture& fx = FixtureFor(held);
  std::mt19937_64 rng(3);
  LockCmd lock;
  lock.gateway = "gateway-a";
  lock.exclusive = false;
  lock.owner = Owner{"intruder", 1, "oh"};
  const uint64_t per_file = std::max<int64_t>(1, held / kFiles);
  for (auto _ : state) {
    const uint64_t r = rng();
    const uint64_t i = r % static_cast<uint64_t>(held);
    lock.fh = fx.fhs[i % kFiles];
    lock.range = Range{(i / kFiles % per_file) * kStride + 2, 3};
    Effects e = fx.core->Apply(lock, ++fx.now);
    if (e.reply.status != LockStatus::kDenied) std::abort();
    benchmark::DoNotOptimize(e);
  }
  SetCounters(state, fx, held, 1);
}

BENCHMARK(BM_LockUnlock)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_LockUnlockWithRequestIds)->Arg(1'000)->Arg(100'000);
BENCHMARK(BM_Test)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);
BENCHMARK(BM_LockDenied)->Arg(1'000)->Arg(100'000)->Arg(1'000'000);

}  // namespace
}  // namespace lockwarden::core

BENCHMARK_MAIN();
