// End to end: CommitPipeline over a RocksDbStore whose WAL fdatasync starts
// failing mid-run. After reopening, every acknowledged delta must be there,
// and what is there must be a prefix of the enqueue order: nothing enqueued
// after the failed group may have been made durable.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/commit_pipeline.h"
#include "server/store/rocksdb_store.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store {
namespace {

using Mode = testing::WalFaultFileSystem::Mode;

constexpr int kSubmitters = 4;
constexpr int kMaxDeltasPerSubmitter = 100000;
constexpr uint64_t kAcksBeforeFault = 200;

std::string Key(uint64_t seq) { return absl::StrFormat("d/%010d", seq); }

TEST(CommitPipelineRocksDbTest, SyncFailureLosesNothingAcknowledged) {
  testing::WalFaultEnv fault;
  RocksDbStoreOptions options;
  options.env_for_testing = fault.env.get();
  const std::string dir = testing::MakeTempDir("pipeline_rocksdb");
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      RocksDbStore::Open(dir, options);
  ASSERT_THAT(store, lockwarden::testing::IsOk());

  absl::Mutex mu;  // The "service" mutex, and guards the results.
  uint64_t next_seq = 0;
  std::vector<uint64_t> acked;
  std::vector<uint64_t> failed;
  uint64_t enqueued = 0;
  {
    CommitPipeline pipeline(store->get());
    std::vector<std::thread> submitters;
    for (int t = 0; t < kSubmitters; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < kMaxDeltasPerSubmitter; ++i) {
          absl::MutexLock lock(&mu);
          const uint64_t seq = ++next_seq;
          absl::Status s = pipeline.Enqueue(
              {Mutation::Put(Key(seq), "v"), Mutation::Put("last", Key(seq))},
              [&, seq](absl::Status result) {
                absl::MutexLock lock(&mu);
                (result.ok() ? acked : failed).push_back(seq);
              });
          if (!s.ok()) {
            // Broken (or momentarily full): stop once broken.
            if (absl::IsUnavailable(s)) return;
            continue;
          }
          ++enqueued;
        }
      });
    }
    ASSERT_TRUE([&] {
      for (int i = 0; i < 20000; ++i) {
        if (pipeline.Stats().deltas >= kAcksBeforeFault) return true;
        absl::SleepFor(absl::Milliseconds(1));
      }
      return false;
    }());
    fault.fs->set_mode(Mode::kFailSync);
    for (std::thread& t : submitters) t.join();
    pipeline.Shutdown();
    EXPECT_FALSE(pipeline.Healthy());
  }
  fault.fs->set_mode(Mode::kNone);
  store->reset();

  absl::MutexLock lock(&mu);
  ASSERT_EQ(acked.size() + failed.size(), enqueued);
  ASSERT_GE(acked.size(), kAcksBeforeFault);
  ASSERT_FALSE(failed.empty());
  // Acks are exactly the first |acked| deltas in enqueue order.
  std::vector<uint64_t> sorted = acked;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted.front(), 1u);
  EXPECT_EQ(sorted.back(), sorted.size());

  absl::StatusOr<std::unique_ptr<RocksDbStore>> reopened =
      RocksDbStore::Open(dir, options);
  ASSERT_THAT(reopened, lockwarden::testing::IsOk());
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> present =
      (*reopened)->LoadAll("d/");
  ASSERT_THAT(present, lockwarden::testing::IsOk());
  // What survived is a prefix 1..p of the enqueue order with p >= |acked|:
  // the failed group may or may not be there, nothing after it is.
  const uint64_t p = present->size();
  EXPECT_GE(p, acked.size());
  for (uint64_t i = 0; i < p; ++i) {
    ASSERT_EQ((*present)[i].first, Key(i + 1));
  }
  absl::StatusOr<std::optional<std::string>> last = (*reopened)->Get("last");
  ASSERT_THAT(last, lockwarden::testing::IsOk());
  EXPECT_EQ(*last, std::optional<std::string>(Key(p)));
  std::printf("acked %zu, failed %zu, recovered %llu\n", acked.size(),
              failed.size(), static_cast<unsigned long long>(p));
}

}  // namespace
}  // namespace lockwarden::store
