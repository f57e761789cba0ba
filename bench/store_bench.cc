// store_bench: what a durable commit costs on this machine.
//   (a) 4 KiB write + fdatasync on the filesystem of --dir (append, as a WAL
//       does, and overwrite in place);
//   (b) RocksDbStore::Commit() latency, one small batch at a time;
//   (c) CommitPipeline throughput over RocksDbStore with 1, 16 and 64
//       closed-loop submitters (each waits for its ack before the next),
//       which is how concurrent lock requests reach the store.
// Prints figures; never passes or fails on time. Build with -c opt:
//   bazel run -c opt //bench:store_bench -- --dir=/var/lib/lockwarden
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/store/commit_pipeline.h"
#include "server/store/rocksdb_store.h"

ABSL_FLAG(std::string, dir, "",
          "Directory on the filesystem to measure (default $TMPDIR or /tmp); "
          "a fresh subdirectory is created and removed");
ABSL_FLAG(int, fsync_iterations, 1000, "Writes per fdatasync measurement");
ABSL_FLAG(int, commit_iterations, 1000, "Sequential RocksDbStore commits");
ABSL_FLAG(double, pipeline_seconds, 3.0,
          "Duration of each CommitPipeline measurement");

namespace lockwarden::store {
namespace {

// Bounds every loop whose length depends on timing.
constexpr uint64_t kMaxOpsPerSubmitter = 10000000;

struct Percentiles {
  absl::Duration p50, p99, max;
};

Percentiles Summarise(std::vector<absl::Duration> samples) {
  if (samples.empty()) return {};
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    return samples[std::min(samples.size() - 1,
                            static_cast<size_t>(q * samples.size()))];
  };
  return {at(0.50), at(0.99), samples.back()};
}

std::string Us(absl::Duration d) {
  return absl::StrFormat("%.1f", absl::ToDoubleMicroseconds(d));
}

void Fail(const std::string& what) {
  std::fprintf(stderr, "store_bench: %s\n", what.c_str());
  std::exit(1);
}

std::string MakeWorkDir() {
  std::string root = absl::GetFlag(FLAGS_dir);
  if (root.empty()) {
    const char* tmp = getenv("TMPDIR");
    root = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  std::string pattern = absl::StrCat(root, "/store_bench.XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) Fail("mkdtemp in " + root);
  return pattern;
}

// (a) One 4 KiB write followed by fdatasync, `iterations` times.
Percentiles FsyncLatency(const std::string& dir, bool append, int iterations) {
  const std::string path = absl::StrCat(dir, append ? "/append" : "/overwrite");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) Fail("open " + path);
  std::string block(4096, 'x');
  std::vector<absl::Duration> samples;
  for (int i = 0; i < iterations; ++i) {
    const off_t offset = append ? static_cast<off_t>(i) * 4096 : 0;
    const absl::Time start = absl::Now();
    if (pwrite(fd, block.data(), block.size(), offset) !=
        static_cast<ssize_t>(block.size())) {
      Fail("pwrite " + path);
    }
    if (fdatasync(fd) != 0) Fail("fdatasync " + path);
    samples.push_back(absl::Now() - start);
  }
  close(fd);
  unlink(path.c_str());
  return Summarise(std::move(samples));
}

// A delta shaped like one lock request: the lock record and an owner index.
Delta RequestDelta(uint64_t client, uint64_t seq) {
  const std::string id = absl::StrFormat("%06d/%010d", client, seq % 4096);
  return {Mutation::Put(absl::StrCat("lock/fh-0123456789abcdef/", id),
                        std::string(96, 'v')),
          Mutation::Put(absl::StrCat("owner/", id), std::string(32, 'o'))};
}

// (b) Sequential commits of one small batch each.
Percentiles CommitLatency(RocksDbStore& store, int iterations) {
  std::vector<absl::Duration> samples;
  for (int i = 0; i < iterations; ++i) {
    const Delta delta = RequestDelta(0, static_cast<uint64_t>(i));
    const absl::Time start = absl::Now();
    absl::Status s = store.Commit(delta);
    if (!s.ok()) Fail(s.ToString());
    samples.push_back(absl::Now() - start);
  }
  return Summarise(std::move(samples));
}

// Waits for one ack at a time: a closed-loop client.
class AckWaiter {
 public:
  CommitPipeline::Callback Next() {
    absl::MutexLock lock(&mu_);
    ++expected_;
    return [this](absl::Status s) {
      if (!s.ok()) Fail(s.ToString());
      absl::MutexLock lock(&mu_);
      ++acked_;
    };
  }
  void Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &AckWaiter::Caught));
  }

 private:
  bool Caught() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return acked_ == expected_;
  }
  absl::Mutex mu_;
  uint64_t expected_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_ ABSL_GUARDED_BY(mu_) = 0;
};

struct PipelineFigures {
  double deltas_per_s, commits_per_s, mean_batch;
  uint64_t max_batch;
  absl::Duration p50_commit;
  Percentiles ack;
};

// (c) `submitters` threads, each enqueueing and awaiting one delta at a time.
PipelineFigures PipelineThroughput(RocksDbStore& store, int submitters,
                                   absl::Duration duration) {
  // Waiters outlive the pipeline: a callback may still be unlocking one.
  std::vector<std::unique_ptr<AckWaiter>> waiters;
  for (int t = 0; t < submitters; ++t) {
    waiters.push_back(std::make_unique<AckWaiter>());
  }
  CommitPipeline pipeline(&store);
  std::vector<std::thread> threads;
  std::vector<std::vector<absl::Duration>> acks(submitters);
  const absl::Time start = absl::Now();
  const absl::Time stop = start + duration;
  for (int t = 0; t < submitters; ++t) {
    threads.emplace_back([&, t] {
      AckWaiter& waiter = *waiters[t];
      for (uint64_t i = 0; i < kMaxOpsPerSubmitter && absl::Now() < stop; ++i) {
        const absl::Time sent = absl::Now();
        absl::Status s = pipeline.Enqueue(
            RequestDelta(static_cast<uint64_t>(t), i), waiter.Next());
        if (!s.ok()) Fail(s.ToString());
        waiter.Wait();
        acks[t].push_back(absl::Now() - sent);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  pipeline.Shutdown();
  const CommitPipelineStats stats = pipeline.Stats();
  std::vector<absl::Duration> all;
  for (auto& v : acks) all.insert(all.end(), v.begin(), v.end());
  return {static_cast<double>(stats.deltas) / seconds,
          static_cast<double>(stats.commits) / seconds,
          stats.mean_batch_deltas,
          stats.max_batch_deltas,
          stats.p50_commit_latency,
          Summarise(std::move(all))};
}

int Main() {
  const std::string dir = MakeWorkDir();
  std::printf("store_bench in %s\n\n", dir.c_str());

  const int fsyncs = absl::GetFlag(FLAGS_fsync_iterations);
  std::printf("(a) 4 KiB write + fdatasync, %d iterations\n", fsyncs);
  std::printf("%-12s %10s %10s %10s\n", "mode", "p50 us", "p99 us", "max us");
  for (bool append : {true, false}) {
    const Percentiles p = FsyncLatency(dir, append, fsyncs);
    std::printf("%-12s %10s %10s %10s\n", append ? "append" : "overwrite",
                Us(p.p50).c_str(), Us(p.p99).c_str(), Us(p.max).c_str());
  }

  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      RocksDbStore::Open(absl::StrCat(dir, "/rocksdb"));
  if (!store.ok()) Fail(store.status().ToString());

  const int commits = absl::GetFlag(FLAGS_commit_iterations);
  const Percentiles c = CommitLatency(**store, commits);
  std::printf("\n(b) RocksDbStore::Commit, 2 mutations (~200 B), sequential, "
              "%d commits\n", commits);
  std::printf("%10s %10s %10s\n", "p50 us", "p99 us", "max us");
  std::printf("%10s %10s %10s\n", Us(c.p50).c_str(), Us(c.p99).c_str(),
              Us(c.max).c_str());

  const absl::Duration duration =
      absl::Seconds(absl::GetFlag(FLAGS_pipeline_seconds));
  std::printf("\n(c) CommitPipeline over RocksDbStore, closed-loop submitters, "
              "%s each\n", absl::FormatDuration(duration).c_str());
  std::printf("%10s %12s %12s %10s %10s %12s %12s %12s\n", "submitters",
              "deltas/s", "commits/s", "mean batch", "max batch",
              "commit p50 us", "ack p50 us", "ack p99 us");
  for (int submitters : {1, 16, 64}) {
    const PipelineFigures f = PipelineThroughput(**store, submitters, duration);
    std::printf("%10d %12.0f %12.0f %10.1f %10llu %12s %12s %12s\n", submitters,
                f.deltas_per_s, f.commits_per_s, f.mean_batch,
                static_cast<unsigned long long>(f.max_batch),
                Us(f.p50_commit).c_str(), Us(f.ack.p50).c_str(),
                Us(f.ack.p99).c_str());
  }
  store->reset();
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  if (error) {
    std::fprintf(stderr, "store_bench: could not remove %s: %s\n",
                 dir.c_str(), error.message().c_str());
  }
  return 0;
}

}  // namespace
}  // namespace lockwarden::store

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return lockwarden::store::Main();
}
