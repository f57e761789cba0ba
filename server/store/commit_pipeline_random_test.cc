// Randomised history check of CommitPipeline under injected commit failures,
// after etcd's robustness tests: submitters enqueue random deltas (puts and
// deletes over a small key space) in a recorded order while a seeded
// failpoint breaks a commit, before or after writing. The store must then
// equal the model (the deltas applied in enqueue order) after exactly the
// acknowledged prefix (failure before writing) or after the acknowledged
// prefix plus the whole failed group (failure after writing: unknown
// outcome). Every committed batch must also respect the store's limits and
// hold each key at most once (the pipeline coalesces by key). Replay a
// failure with LW_SEED=<seed>.
#include <map>
#include <set>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/commit_pipeline.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/memory_store.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store {
namespace {

constexpr int kScenarios = 60;
constexpr int kSubmitters = 3;
constexpr int kDeltasPerSubmitter = 60;
constexpr int kKeySpace = 12;

using State = std::map<std::string, std::string>;

void ApplyTo(const Delta& delta, State* state) {
  for (const Mutation& m : delta) {
    if (m.op == Mutation::Op::kPut) {
      (*state)[m.key] = m.value;
    } else {
      state->erase(m.key);
    }
  }
}

Delta RandomDelta(std::mt19937_64& rng, uint64_t seq) {
  Delta delta;
  const int n = std::uniform_int_distribution<int>(0, 4)(rng);
  for (int i = 0; i < n; ++i) {
    const std::string key =
        absl::StrCat("k", std::uniform_int_distribution<int>(0, kKeySpace)(rng));
    if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) {
      delta.push_back(Mutation::Delete(key));
    } else {
      delta.push_back(Mutation::Put(key, absl::StrCat(seq, ".", i)));
    }
  }
  return delta;
}

struct History {
  absl::Mutex mu;  // The "service" mutex: enqueue order is history order.
  std::vector<Delta> deltas;              // Index = seq - 1.
  std::vector<absl::Status> results;      // Same index; filled by callbacks.
  std::vector<bool> completed;
};

struct Tally {
  int clean = 0;          // No failure fired.
  int failed_before = 0;  // Broke on a failure before writing.
  int failed_after = 0;   // Broke on a failure after writing.
};

// Checks every batch the pipeline commits against the store's limits and
// etcd's rule (no key twice in one Txn), then forwards it.
class BatchCheckingStore : public testing::RecordingStore {
 public:
  using testing::RecordingStore::RecordingStore;
  absl::Status Commit(const Delta& batch) override {
    EXPECT_LE(batch.size(), Limits().max_mutations_per_batch);
    std::set<std::string> keys;
    for (const Mutation& m : batch) {
      EXPECT_TRUE(keys.insert(m.key).second) << m.key << " twice in one batch";
    }
    return testing::RecordingStore::Commit(batch);
  }
};

// `max_batch`: the store's max_mutations_per_batch (0: the default), small
// enough in some scenarios that groups are cut by it.
void RunScenario(uint64_t seed, size_t max_batch, Tally* tally) {
  SCOPED_TRACE(absl::StrCat("scenario seed ", seed, ", batch limit ", max_batch));
  std::mt19937_64 rng(seed);
  const bool after = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  const double p = std::uniform_real_distribution<double>(0.05, 0.6)(rng);
  const FaultSpec spec = FaultSpec::FailWithProbability(
      p, rng(), after ? FaultSpec::Phase::kAfterWrite
                      : FaultSpec::Phase::kBeforeWrite);
  StoreLimits limits;
  if (max_batch > 0) limits.max_mutations_per_batch = max_batch;
  auto memory_owned = std::make_unique<MemoryStore>(limits);
  MemoryStore* memory = memory_owned.get();
  FaultInjectingStore faulty(std::move(memory_owned), spec);
  BatchCheckingStore checking(&faulty);

  History history;
  {
    CommitPipeline pipeline(&checking);
    std::vector<std::thread> threads;
    for (int t = 0; t < kSubmitters; ++t) {
      const uint64_t thread_seed = rng();
      threads.emplace_back([&, thread_seed] {
        std::mt19937_64 local(thread_seed);
        for (int i = 0; i < kDeltasPerSubmitter; ++i) {
          absl::MutexLock lock(&history.mu);
          const uint64_t seq = history.deltas.size() + 1;
          Delta delta = RandomDelta(local, seq);
          absl::Status s = pipeline.Enqueue(delta, [&history, seq](absl::Status r) {
            absl::MutexLock lock(&history.mu);
            history.results[seq - 1] = r;
            history.completed[seq - 1] = true;
          });
          if (!s.ok()) break;  // Broken: the service would stop here too.
          history.deltas.push_back(std::move(delta));
          history.results.emplace_back();
          history.completed.push_back(false);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    pipeline.Shutdown();
  }

  absl::MutexLock lock(&history.mu);
  const size_t n = history.deltas.size();
  size_t acked = 0;
  while (acked < n && history.results[acked].ok()) ++acked;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(history.completed[i]) << "callback " << i + 1 << " never ran";
    if (i >= acked) {
      ASSERT_TRUE(absl::IsUnavailable(history.results[i]))
          << "delta " << i + 1 << " after the first failure: "
          << history.results[i];
    }
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> loaded =
      memory->LoadAll();
  ASSERT_THAT(loaded, lockwarden::testing::IsOk());
  const State actual(loaded->begin(), loaded->end());
  State model;
  for (size_t i = 0; i < acked; ++i) ApplyTo(history.deltas[i], &model);
  if (acked == n) {
    ++tally->clean;
  } else {
    ++(after ? tally->failed_after : tally->failed_before);
  }
  if (acked == n || !after) {
    // Everything acked, or the failure wrote nothing.
    EXPECT_EQ(actual, model) << "store differs from the acknowledged prefix";
    return;
  }
  // Unknown outcome that did apply: the acknowledged prefix plus a whole
  // group, i.e. some longer prefix of the history.
  for (size_t k = acked; k < n; ++k) {
    ApplyTo(history.deltas[k], &model);
    if (actual == model) return;
  }
  ADD_FAILURE() << "store is not any prefix of the history beyond the "
                << acked << " acknowledged deltas";
}

TEST(CommitPipelineRandomTest, StoreMatchesAcknowledgedHistory) {
  std::mt19937_64 rng(testing::TestSeed());
  Tally tally;
  for (int i = 0; i < kScenarios; ++i) {
    // Every third scenario cuts groups at 4..8 distinct keys (a delta has
    // at most 4 mutations, so each still fits alone).
    const size_t max_batch =
        i % 3 == 0 ? std::uniform_int_distribution<size_t>(4, 8)(rng) : 0;
    RunScenario(rng(), max_batch, &tally);
    if (HasFatalFailure() || HasNonfatalFailure()) break;
  }
  std::printf("scenarios: %d clean, %d broke before writing, %d after\n",
              tally.clean, tally.failed_before, tally.failed_after);
  // The failpoints must actually fire, or this test checks nothing.
  EXPECT_GT(tally.failed_before, 0);
  EXPECT_GT(tally.failed_after, 0);
}

}  // namespace
}  // namespace lockwarden::store
