// standby_memory_bench: what a warm standby's copy of the state costs in
// memory, per lock.
//
//   1. Seeds the state prefix of a running etcd with --locks granted locks
//      (a LockCore applies LOCK commands; its deltas are committed through
//      an unfenced EtcdStore in batches within etcd's limits), unless
//      --seed=false.
//   2. Unless --seed_only: measures heap bytes in use (glibc mallinfo2) and
//      VmRSS around StandbyReplica::Start (scan + rebuild; the replica keeps
//      only the core), and around a key -> value map of the same records,
//      which is what the replica used to keep next to the core (the bytes
//      per lock that dropping it saved).
//
// With --seed_only it prepares etcd for measuring real lockwarden-server
// standbys (their VmRSS before/after, see docs/replication.md "Memory").
// Prints figures; never passes or fails. Build with -c opt:
//   bazel run -c opt //server/replication:standby_memory_bench --
//     --etcd_endpoints=http://127.0.0.1:2379 --locks=100000
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/core/lock_core.h"
#include "server/replication/standby_replica.h"
#include "server/store/etcd_store.h"

ABSL_FLAG(std::string, etcd_endpoints, "http://127.0.0.1:2379",
          "Comma-separated etcd URLs");
ABSL_FLAG(std::string, prefix, "/lockwarden/v1/state/",
          "State key prefix (lockwarden-server's --state-prefix default)");
ABSL_FLAG(int, locks, 100'000, "Locks to seed");
ABSL_FLAG(bool, seed, true, "Seed the prefix first (it must be empty)");
ABSL_FLAG(bool, seed_only, false, "Seed, then exit without measuring");

namespace lockwarden::replication {
namespace {

// Limits on what this tool accepts, so a typo cannot fill etcd.
constexpr int kLocksMax = 2'000'000;
constexpr int kLocksPerFile = 10;

size_t HeapInUse() { return mallinfo2().uordblks; }

size_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stoul(line.substr(6)) * 1024;  // "VmRSS:   1234 kB"
    }
  }
  return 0;
}

// A realistic NLM lock: a 32-byte NFSv3 file handle, a client host name,
// an 8-byte owner handle, ten non-adjacent locks per file.
core::LockCmd LockNumber(int i) {
  core::LockCmd l;
  l.request_id = absl::StrCat("seed-", i);
  l.gateway = "nfs-gateway.example";
  l.fh = absl::StrFormat("%032x", i / kLocksPerFile);
  l.owner = {absl::StrCat("client-", i % 1000, ".example"),
             static_cast<uint32_t>(i), "oh-12345"};
  l.range = {static_cast<uint64_t>(i % kLocksPerFile) * 100, 10};
  l.exclusive = true;
  l.monitored = true;
  l.client_state = 1;
  l.client_address = "198.18.0.1";
  return l;
}

absl::Status Seed(store::EtcdStore& store, int locks) {
  core::LockCore core{core::CoreOptions{}};
  const store::StoreLimits limits = store.Limits();
  Delta batch;
  size_t bytes = 0;
  size_t commits = 0;
  const absl::Time start = absl::Now();
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    absl::Status s = store.Commit(batch);
    batch.clear();
    bytes = 0;
    ++commits;
    return s;
  };
  for (int i = 0; i < locks; ++i) {
    core::Effects fx = core.Apply(LockNumber(i), i);
    if (fx.reply.status != core::LockStatus::kGranted) {
      return absl::InternalError(absl::StrCat("seed lock ", i, " not granted"));
    }
    size_t delta_bytes = 0;
    for (const Mutation& m : fx.delta) delta_bytes += store::MutationBytes(m);
    // Room for the whole delta (counting repeated keys: conservative).
    if (batch.size() + fx.delta.size() > limits.max_mutations_per_batch ||
        bytes + delta_bytes > limits.max_batch_bytes) {
      if (absl::Status s = flush(); !s.ok()) return s;
    }
    bytes += delta_bytes;
    for (Mutation& m : fx.delta) batch.push_back(std::move(m));
  }
  if (absl::Status s = flush(); !s.ok()) return s;
  std::printf(
      "seeded %d locks in %zu commits, %.1f s; core: %zu locks, %zu records\n",
      locks, commits, absl::ToDoubleSeconds(absl::Now() - start),
      core.Counters().locks, core.Snapshot().size());
  return absl::OkStatus();
}

int Run() {
  const int locks = absl::GetFlag(FLAGS_locks);
  if (locks <= 0 || locks > kLocksMax) {
    std::fprintf(stderr, "--locks must be 1..%d\n", kLocksMax);
    return 2;
  }
  store::EtcdStoreOptions options;
  options.client.endpoints =
      absl::StrSplit(absl::GetFlag(FLAGS_etcd_endpoints), ',');
  options.key_prefix = absl::GetFlag(FLAGS_prefix);
  options.fenced = false;
  absl::StatusOr<std::unique_ptr<store::EtcdStore>> store =
      store::EtcdStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "etcd: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_seed)) {
    if (absl::Status s = Seed(**store, locks); !s.ok()) {
      std::fprintf(stderr, "seed: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  if (absl::GetFlag(FLAGS_seed_only)) return 0;

  malloc_trim(0);
  const size_t heap0 = HeapInUse(), rss0 = RssBytes();
  absl::StatusOr<std::unique_ptr<StandbyReplica>> replica =
      StandbyReplica::Start(store->get(), core::CoreOptions{});
  if (!replica.ok()) {
    std::fprintf(stderr, "replica: %s\n", replica.status().ToString().c_str());
    return 1;
  }
  malloc_trim(0);
  const size_t heap1 = HeapInUse(), rss1 = RssBytes();
  const size_t records = (*replica)->stats().records_loaded;
  // The map the replica used to keep next to its core.
  std::map<std::string, std::string> records_map;
  absl::Status scanned =
      (*store)->Scan("", [&](absl::string_view k, absl::string_view v) {
        records_map.emplace(std::string(k), std::string(v));
        return absl::OkStatus();
      });
  if (!scanned.ok()) {
    std::fprintf(stderr, "scan: %s\n", scanned.ToString().c_str());
    return 1;
  }
  malloc_trim(0);
  const size_t heap2 = HeapInUse(), rss2 = RssBytes();
  auto per_lock = [locks](size_t a, size_t b) {
    return (static_cast<double>(b) - static_cast<double>(a)) / locks;
  };
  std::printf("locks %d, records %zu\n", locks, records);
  std::printf(
      "replica (core only):      heap %+.1f MiB (%.0f B/lock), rss %+.1f MiB "
      "(%.0f B/lock)\n",
      (static_cast<double>(heap1) - heap0) / (1 << 20), per_lock(heap0, heap1),
      (static_cast<double>(rss1) - rss0) / (1 << 20), per_lock(rss0, rss1));
  std::printf(
      "records map (dropped):    heap %+.1f MiB (%.0f B/lock), rss %+.1f MiB "
      "(%.0f B/lock)\n",
      (static_cast<double>(heap2) - heap1) / (1 << 20), per_lock(heap1, heap2),
      (static_cast<double>(rss2) - rss1) / (1 << 20), per_lock(rss1, rss2));
  return 0;
}

}  // namespace
}  // namespace lockwarden::replication

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return lockwarden::replication::Run();
}
