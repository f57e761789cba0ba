#include "server/store/commit_pipeline.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/memory_store.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using ::testing::Each;
using ::testing::Optional;
using testing::GatedStore;
using testing::RecordingStore;

constexpr absl::Duration kWait = absl::Seconds(20);

// Collects callback results; tests wait for a count with a timeout.
class Completions {
 public:
  CommitPipeline::Callback Callback(int id) {
    return [this, id](absl::Status s) {
      absl::MutexLock lock(&mu_);
      ids_.push_back(id);
      results_.push_back(std::move(s));
    };
  }
  bool WaitFor(size_t n, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return results_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }
  size_t count() {
    absl::MutexLock lock(&mu_);
    return results_.size();
  }
  std::vector<absl::Status> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  std::vector<int> ids() {
    absl::MutexLock lock(&mu_);
    return ids_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Status> results_ ABSL_GUARDED_BY(mu_);
};

Delta OnePut(int i) {
  return {Mutation::Put(absl::StrCat("k/", i), absl::StrCat(i))};
}

// Polls `pred` (cheap, thread-safe) until true or the deadline passes.
template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

TEST(CommitPipelineTest, ConcurrentSubmittersShareOneCommit) {
  MemoryStore memory;
  GatedStore gated(&memory);
  Completions done;
  CommitPipeline pipeline(&gated);

  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  // While commit 1 is "in its fsync", 8 threads queue 200 deltas.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = 1 + t * kPerThread + i;
        EXPECT_THAT(pipeline.Enqueue(OnePut(id), done.Callback(id)), IsOk());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(pipeline.Stats().queued, kThreads * kPerThread);
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(1 + kThreads * kPerThread));

  EXPECT_THAT(done.results(), Each(IsOk()));
  const CommitPipelineStats stats = pipeline.Stats();
  EXPECT_EQ(stats.commits, 2u);
  EXPECT_EQ(stats.deltas, 1u + kThreads * kPerThread);
  EXPECT_EQ(stats.max_batch_deltas, static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_DOUBLE_EQ(stats.mean_batch_deltas, (1.0 + kThreads * kPerThread) / 2);
  EXPECT_EQ(memory.LoadAll("k/")->size(), 1u + kThreads * kPerThread);
}

// A store whose commits take a while, like an fsync.
class SlowStore : public MemoryStore {
 public:
  absl::Status Commit(const Delta& batch) override {
    absl::SleepFor(absl::Milliseconds(2));
    return MemoryStore::Commit(batch);
  }
};

TEST(CommitPipelineTest, ClosedLoopClientsAreGrouped) {
  constexpr int kClients = 16;
  constexpr int kRequestsPerClient = 20;
  // Declared before the pipeline so they outlive its thread, which may still
  // be returning from a callback when a waiter wakes up.
  std::vector<Completions> completions(kClients);
  SlowStore slow;
  CommitPipeline pipeline(&slow);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      Completions& mine = completions[c];
      for (int i = 0; i < kRequestsPerClient; ++i) {
        ASSERT_THAT(pipeline.Enqueue(OnePut(c * 1000 + i), mine.Callback(i)),
                    IsOk());
        ASSERT_TRUE(mine.WaitFor(i + 1));  // Like a client awaiting its reply.
      }
      EXPECT_THAT(mine.results(), Each(IsOk()));
    });
  }
  for (std::thread& t : clients) t.join();
  const CommitPipelineStats stats = pipeline.Stats();
  EXPECT_EQ(stats.deltas, static_cast<uint64_t>(kClients * kRequestsPerClient));
  EXPECT_LT(stats.commits, stats.deltas);
  EXPECT_GT(stats.mean_batch_deltas, 1.0);
}

TEST(CommitPipelineTest, PreservesEnqueueOrder) {
  MemoryStore memory;
  RecordingStore recording(&memory);
  Completions done;
  CommitPipeline pipeline(&recording);
  // Like the service: apply and enqueue under one mutex.
  absl::Mutex service_mu;
  int next_seq = 0;
  constexpr int kThreads = 6;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::MutexLock lock(&service_mu);
        const int seq = ++next_seq;
        Delta delta;
        if (seq % 7 != 0) {  // Some commands change nothing.
          delta = {Mutation::Put("seq", absl::StrCat(seq)),
                   Mutation::Put(absl::StrCat("log/", seq), "")};
        }
        EXPECT_THAT(pipeline.Enqueue(std::move(delta), done.Callback(seq)),
                    IsOk());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  constexpr int kTotal = kThreads * kPerThread;
  ASSERT_TRUE(done.WaitFor(kTotal));

  std::vector<int> expected_ids;
  for (int i = 1; i <= kTotal; ++i) expected_ids.push_back(i);
  EXPECT_EQ(done.ids(), expected_ids);  // Callbacks in enqueue order.
  int last = 0;
  for (const Delta& batch : recording.batches()) {
    for (const Mutation& m : batch) {
      if (m.key != "seq") continue;
      const int seq = std::stoi(m.value);
      EXPECT_GT(seq, last);  // Mutations in enqueue order.
      last = seq;
    }
  }
  EXPECT_EQ(last, kTotal - (kTotal % 7 == 0 ? 1 : 0));
  EXPECT_THAT(*memory.Get("seq"), Optional(absl::StrCat(last)));
}

TEST(CommitPipelineTest, CallbackRunsOnlyAfterDurableCommit) {
  MemoryStore memory;
  GatedStore gated(&memory);
  std::atomic<bool> called{false};
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue({Mutation::Put("lock", "held")},
                                [&](absl::Status s) {
                                  // The data is in the store when we reply.
                                  EXPECT_THAT(*memory.Get("lock"),
                                              Optional(std::string("held")));
                                  called = true;
                                  done.Callback(0)(s);
                                }));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(called.load());
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_THAT(done.results()[0], IsOk());
}

TEST(CommitPipelineTest, FailedCommitFailsItsGroupAndAllLaterWork) {
  auto faulty_owned = std::make_unique<FaultInjectingStore>(
      std::make_unique<MemoryStore>(), FaultSpec::FailNth(2));
  FaultInjectingStore* faulty = faulty_owned.get();
  GatedStore gated(faulty);
  Completions done;
  CommitPipeline pipeline(&gated);

  LW_ASSERT_OK(pipeline.Enqueue(OnePut(1), done.Callback(1)));
  ASSERT_TRUE(done.WaitFor(1));
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(2), done.Callback(2)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(2, kWait));
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(3), done.Callback(3)));
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(4), done.Callback(4)));
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(4));

  const std::vector<absl::Status> results = done.results();
  EXPECT_THAT(results[0], IsOk());
  for (int i = 1; i < 4; ++i) {
    EXPECT_THAT(results[i], StatusIs(absl::StatusCode::kUnavailable)) << i;
  }
  EXPECT_FALSE(pipeline.Healthy());
  EXPECT_THAT(pipeline.BrokenStatus(), StatusIs(absl::StatusCode::kUnavailable));
  // 3 and 4 never reached the store: only commits 1 and 2 were attempted.
  EXPECT_EQ(faulty->Counters().commits, 2u);
  EXPECT_THAT(*faulty->LoadAll("k/"),
              ::testing::ElementsAre(::testing::Pair("k/1", "1")));

  Completions refused;
  EXPECT_THAT(pipeline.Enqueue(OnePut(5), refused.Callback(5)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(pipeline.ReserveSlot(), StatusIs(absl::StatusCode::kUnavailable));
  pipeline.Shutdown();
  EXPECT_EQ(refused.count(), 0u);
  const CommitPipelineStats stats = pipeline.Stats();
  EXPECT_EQ(stats.commits, 1u);
  EXPECT_EQ(stats.failed_commits, 1u);
  EXPECT_EQ(stats.failed_deltas, 3u);
}

TEST(CommitPipelineTest, FencedStoreKeepsFailedPreconditionAsCause) {
  FaultInjectingStore faulty(std::make_unique<MemoryStore>());
  faulty.SetFenced(true);
  Completions done;
  CommitPipeline pipeline(&faulty);
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(1), done.Callback(1)));
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_THAT(done.results()[0], StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(pipeline.BrokenStatus(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(CommitPipelineTest, FullQueueRefusesWithResourceExhausted) {
  MemoryStore memory;
  GatedStore gated(&memory);
  CommitPipelineOptions options;
  options.max_queued_deltas = 4;
  Completions done;
  CommitPipeline pipeline(&gated, options);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));  // 0 is in flight.
  for (int i = 1; i <= 4; ++i) {
    LW_ASSERT_OK(pipeline.Enqueue(OnePut(i), done.Callback(i)));
  }
  Completions refused;
  EXPECT_THAT(pipeline.Enqueue(OnePut(5), refused.Callback(5)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(pipeline.ReserveSlot(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(pipeline.Healthy());  // Back-pressure is not a failure.
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(5));
  EXPECT_THAT(done.results(), Each(IsOk()));
  LW_EXPECT_OK(pipeline.Enqueue(OnePut(6), done.Callback(6)));
  ASSERT_TRUE(done.WaitFor(6));
  pipeline.Shutdown();
  EXPECT_EQ(refused.count(), 0u);
}

TEST(CommitPipelineTest, ReservedSlotIsNeverRefusedForCapacity) {
  MemoryStore memory;
  CommitPipelineOptions options;
  options.max_queued_deltas = 2;
  Completions done;
  CommitPipeline pipeline(&memory, options);
  absl::StatusOr<CommitPipeline::Slot> a = pipeline.ReserveSlot();
  absl::StatusOr<CommitPipeline::Slot> b = pipeline.ReserveSlot();
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_THAT(pipeline.Enqueue(OnePut(9), done.Callback(9)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  LW_EXPECT_OK(pipeline.Enqueue(*std::move(a), OnePut(1), done.Callback(1)));
  { CommitPipeline::Slot dropped = *std::move(b); }  // Released unused.
  ASSERT_TRUE(done.WaitFor(1));
  // Both reservations are gone, so capacity is back.
  LW_EXPECT_OK(pipeline.Enqueue(OnePut(2), done.Callback(2)));
  LW_EXPECT_OK(pipeline.Enqueue(OnePut(3), done.Callback(3)));
  ASSERT_TRUE(done.WaitFor(3));
  EXPECT_THAT(done.results(), Each(IsOk()));
}

TEST(CommitPipelineTest, OversizedDeltaIsRefusedAndPipelineStaysHealthy) {
  StoreLimits limits;
  limits.max_mutations_per_batch = 4;
  MemoryStore memory(limits);
  Completions done;
  CommitPipeline pipeline(&memory);
  Delta big(5, Mutation::Put("k", "v"));
  EXPECT_THAT(pipeline.Enqueue(big, done.Callback(0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  EXPECT_THAT(pipeline.Enqueue(*std::move(slot), big, done.Callback(0)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(pipeline.Healthy());
  LW_EXPECT_OK(pipeline.Enqueue(OnePut(1), done.Callback(1)));
  ASSERT_TRUE(done.WaitFor(1));
  pipeline.Shutdown();  // Would hang if the refused slot had leaked.
  EXPECT_EQ(done.ids(), std::vector<int>{1});
}

TEST(CommitPipelineTest, GroupsAreCutAtTheStoreBatchLimit) {
  StoreLimits limits;
  limits.max_mutations_per_batch = 10;
  MemoryStore memory(limits);
  RecordingStore recording(&memory);
  GatedStore gated(&recording);
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  for (int i = 1; i <= 10; ++i) {
    Delta three;
    for (int j = 0; j < 3; ++j) {
      three.push_back(Mutation::Put(absl::StrCat("g/", i, "/", j), "v"));
    }
    LW_ASSERT_OK(pipeline.Enqueue(std::move(three), done.Callback(i)));
  }
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(11));
  EXPECT_THAT(done.results(), Each(IsOk()));
  std::vector<size_t> sizes;
  for (const Delta& batch : recording.batches()) sizes.push_back(batch.size());
  // 1 in flight, then 30 mutations in groups of at most 3 deltas (9 <= 10).
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 9, 9, 9, 3}));
  EXPECT_EQ(memory.LoadAll("g/")->size(), 30u);
}

TEST(CoalesceByKeyTest, KeepsEachKeysLastMutationAtItsPosition) {
  std::vector<Delta> deltas = {
      {Mutation::Put("a", "1"), Mutation::Put("b", "1")},
      {Mutation::Delete("a"), Mutation::Put("m", "1")},
      {Mutation::Put("c", "1"), Mutation::Put("m", "2")},
      {},
      {Mutation::Put("b", "2"), Mutation::Delete("c")},
  };
  EXPECT_EQ(CoalesceByKey(std::move(deltas)),
            (Delta{Mutation::Delete("a"), Mutation::Put("m", "2"),
                   Mutation::Put("b", "2"), Mutation::Delete("c")}));
}

TEST(CommitPipelineTest, GroupsCountDistinctKeysAndCommitEachKeyOnce) {
  // Every delta rewrites "m/counters", as every core command does: a group
  // of n deltas is n + 1 distinct keys, not 2n mutations.
  StoreLimits limits;
  limits.max_mutations_per_batch = 4;
  MemoryStore memory(limits);
  RecordingStore recording(&memory);
  GatedStore gated(&recording);
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  for (int i = 1; i <= 9; ++i) {
    Delta d = {Mutation::Put("m/counters", absl::StrCat(i)),
               Mutation::Put(absl::StrCat("r/", i), "v")};
    LW_ASSERT_OK(pipeline.Enqueue(std::move(d), done.Callback(i)));
  }
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(10));
  EXPECT_THAT(done.results(), Each(IsOk()));
  std::vector<size_t> sizes;
  for (const Delta& batch : recording.batches()) {
    sizes.push_back(batch.size());
    absl::flat_hash_set<std::string> keys;
    for (const Mutation& m : batch) {
      EXPECT_TRUE(keys.insert(m.key).second) << m.key << " twice in a batch";
    }
  }
  // 1 in flight, then three groups of 3 deltas: 3 records + the counters.
  EXPECT_EQ(sizes, (std::vector<size_t>{1, 4, 4, 4}));
  EXPECT_THAT(*memory.Get("m/counters"), Optional(std::string("9")));
  EXPECT_EQ(memory.LoadAll("r/")->size(), 9u);
  EXPECT_EQ(pipeline.Stats().mutations, 13u);
}

TEST(CommitPipelineTest, EnqueueAllPacksABatchAtTheLimitAndCompletesOnce) {
  StoreLimits limits;
  limits.max_mutations_per_batch = 4;
  MemoryStore memory(limits);
  RecordingStore recording(&memory);
  GatedStore gated(&recording);
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  // Deltas of 3, 1, 2, 0 and 2 mutations: packed as [3+1] [2+0+2].
  std::vector<Delta> deltas;
  int key = 0;
  for (int n : {3, 1, 2, 0, 2}) {
    Delta d;
    for (int j = 0; j < n; ++j) {
      d.push_back(Mutation::Put(absl::StrCat("b/", key++), "v"));
    }
    deltas.push_back(std::move(d));
  }
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  LW_ASSERT_OK(
      pipeline.EnqueueAll(*std::move(slot), std::move(deltas), done.Callback(1)));
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(2));
  EXPECT_EQ(done.ids(), (std::vector<int>{0, 1}));
  EXPECT_THAT(done.results(), Each(IsOk()));
  EXPECT_EQ(memory.LoadAll("b/")->size(), 8u);
  size_t committed = 0;
  for (const Delta& batch : recording.batches()) {
    EXPECT_LE(batch.size(), 4u);
    committed += batch.size();
  }
  EXPECT_EQ(committed, 9u);
  pipeline.Shutdown();
  EXPECT_EQ(done.count(), 2u);  // Exactly one callback for the batch.
}

TEST(CommitPipelineTest, EnqueueAllOfNothingIsABarrierAndOversizeIsRefused) {
  StoreLimits limits;
  limits.max_mutations_per_batch = 4;
  MemoryStore memory(limits);
  Completions done;
  CommitPipeline pipeline(&memory);
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  LW_ASSERT_OK(pipeline.EnqueueAll(*std::move(slot), {}, done.Callback(0)));
  ASSERT_TRUE(done.WaitFor(1));
  std::vector<Delta> too_big;
  too_big.push_back(OnePut(1));
  too_big.push_back(Delta(5, Mutation::Put("k", "v")));
  slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  EXPECT_THAT(
      pipeline.EnqueueAll(*std::move(slot), std::move(too_big), done.Callback(1)),
      StatusIs(absl::StatusCode::kInvalidArgument));
  pipeline.Shutdown();  // Would hang if the refused slot had leaked.
  EXPECT_EQ(done.ids(), std::vector<int>{0});
  EXPECT_TRUE(pipeline.Healthy());
}

TEST(CommitPipelineTest, DriveCommitsOnTheCallingThreadWhenIdle) {
  MemoryStore memory;
  CommitPipeline pipeline(&memory);
  std::thread::id ran_on;
  bool ran = false;
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  std::vector<Delta> deltas;
  deltas.push_back(OnePut(1));
  LW_ASSERT_OK(pipeline.EnqueueAll(
      *std::move(slot), std::move(deltas),
      [&](absl::Status s) {
        EXPECT_THAT(s, IsOk());
        ran_on = std::this_thread::get_id();
        ran = true;
      },
      /*will_drive=*/true));
  pipeline.Drive();
  // Committed and acknowledged before Drive() returned, on this thread.
  EXPECT_TRUE(ran);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(pipeline.Stats().inline_groups, 1u);
  EXPECT_EQ(memory.LoadAll("k/")->size(), 1u);
}

TEST(CommitPipelineTest, DriveDuringACommitLeavesTheWorkToThePipeline) {
  MemoryStore memory;
  GatedStore gated(&memory);
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  LW_ASSERT_OK(pipeline.Enqueue(OnePut(0), done.Callback(0)));
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  std::vector<Delta> deltas;
  deltas.push_back(OnePut(1));
  LW_ASSERT_OK(pipeline.EnqueueAll(*std::move(slot), std::move(deltas),
                                   done.Callback(1), /*will_drive=*/true));
  pipeline.Drive();  // Returns at once: a commit is in flight.
  EXPECT_EQ(done.count(), 0u);
  gated.OpenGate();
  ASSERT_TRUE(done.WaitFor(2));
  EXPECT_EQ(done.ids(), (std::vector<int>{0, 1}));
  EXPECT_THAT(done.results(), Each(IsOk()));
  EXPECT_EQ(pipeline.Stats().inline_groups, 0u);
}

TEST(CommitPipelineTest, ShutdownCommitsWorkWhoseDriverNeverCame) {
  MemoryStore memory;
  Completions done;
  auto pipeline = std::make_unique<CommitPipeline>(&memory);
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline->ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  std::vector<Delta> deltas;
  deltas.push_back(OnePut(1));
  LW_ASSERT_OK(pipeline->EnqueueAll(*std::move(slot), std::move(deltas),
                                    done.Callback(1), /*will_drive=*/true));
  std::thread driver([&] {
    // The promised Drive() arrives late, during shutdown.
    absl::SleepFor(absl::Milliseconds(200));
    pipeline->Drive();
  });
  pipeline->Shutdown();  // Waits for the driver, commits its work.
  driver.join();
  ASSERT_TRUE(done.WaitFor(1));
  EXPECT_THAT(done.results(), Each(IsOk()));
}

TEST(CommitPipelineTest, ShutdownDrainsQueuedWork) {
  MemoryStore memory;
  GatedStore gated(&memory);
  Completions done;
  CommitPipeline pipeline(&gated);
  gated.CloseGate();
  for (int i = 0; i < 11; ++i) {
    LW_ASSERT_OK(pipeline.Enqueue(OnePut(i), done.Callback(i)));
  }
  ASSERT_TRUE(gated.WaitForCommitsStarted(1, kWait));
  std::atomic<bool> shut{false};
  std::thread stopper([&] {
    pipeline.Shutdown();
    shut = true;
  });
  // New work is refused as soon as shutdown begins.
  ASSERT_TRUE(Eventually([&] { return !pipeline.ReserveSlot().ok(); }));
  EXPECT_THAT(pipeline.Enqueue(OnePut(99), done.Callback(99)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(shut.load());
  gated.OpenGate();
  stopper.join();
  EXPECT_EQ(done.count(), 11u);
  EXPECT_THAT(done.results(), Each(IsOk()));
  EXPECT_EQ(memory.LoadAll("k/")->size(), 11u);
  pipeline.Shutdown();  // Idempotent.
}

TEST(CommitPipelineTest, ShutdownWaitsForReservedSlots) {
  MemoryStore memory;
  Completions done;
  CommitPipeline pipeline(&memory);
  absl::StatusOr<CommitPipeline::Slot> slot = pipeline.ReserveSlot();
  ASSERT_THAT(slot, IsOk());
  std::atomic<bool> shut{false};
  std::thread stopper([&] {
    pipeline.Shutdown();
    shut = true;
  });
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(shut.load());
  LW_ASSERT_OK(pipeline.Enqueue(*std::move(slot), OnePut(1), done.Callback(1)));
  stopper.join();
  ASSERT_EQ(done.count(), 1u);
  EXPECT_THAT(done.results()[0], IsOk());
  EXPECT_THAT(*memory.Get("k/1"), Optional(std::string("1")));
}

}  // namespace
}  // namespace lockwarden::store
