#include "server/store/fault_injecting_store.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"

namespace lockwarden::store {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using Phase = FaultSpec::Phase;
using Trigger = FaultSpec::Trigger;

Delta Put(int i) { return {Mutation::Put(absl::StrCat("k/", i), "v")}; }

FaultInjectingStore MakeStore(FaultSpec spec = FaultSpec()) {
  return FaultInjectingStore(std::make_unique<MemoryStore>(), spec);
}

// Commit results for commits 1..n: true = OK.
std::vector<bool> Outcomes(FaultInjectingStore& store, int n) {
  std::vector<bool> out;
  for (int i = 1; i <= n; ++i) out.push_back(store.Commit(Put(i)).ok());
  return out;
}

bool Has(const FaultInjectingStore& store, int i) {
  absl::StatusOr<std::optional<std::string>> v =
      store.Get(absl::StrCat("k/", i));
  return v.ok() && v->has_value();
}

TEST(FaultInjectingStoreTest, DisarmedPassesEverything) {
  FaultInjectingStore store = MakeStore();
  EXPECT_EQ(Outcomes(store, 3), (std::vector<bool>{true, true, true}));
  EXPECT_EQ(store.Counters().commits, 3u);
  EXPECT_EQ(store.Counters().injected, 0u);
  EXPECT_EQ(store.Counters().applied, 3u);
  EXPECT_EQ(store.BackendName(), "fault(memory)");
}

TEST(FaultInjectingStoreTest, FailNthBeforeWriteAppliesNothing) {
  FaultInjectingStore store = MakeStore(FaultSpec::FailNth(2));
  EXPECT_EQ(Outcomes(store, 3), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(Has(store, 1));
  EXPECT_FALSE(Has(store, 2));
  EXPECT_TRUE(Has(store, 3));
  EXPECT_EQ(store.Counters().injected, 1u);
  EXPECT_EQ(store.Counters().applied, 2u);
}

TEST(FaultInjectingStoreTest, FailNthAfterWriteAppliesButReportsFailure) {
  FaultInjectingStore store = MakeStore(FaultSpec::FailNth(2, Phase::kAfterWrite));
  EXPECT_EQ(Outcomes(store, 3), (std::vector<bool>{true, false, true}));
  EXPECT_TRUE(Has(store, 2));
  EXPECT_EQ(store.Counters().applied, 3u);
}

TEST(FaultInjectingStoreTest, FailEveryAfterN) {
  FaultInjectingStore store = MakeStore(FaultSpec::FailEveryAfter(2));
  EXPECT_EQ(Outcomes(store, 5),
            (std::vector<bool>{true, true, false, false, false}));
  EXPECT_THAT(store.Commit(Put(9)), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(FaultInjectingStoreTest, ArmRestartsTheCount) {
  FaultInjectingStore store = MakeStore();
  EXPECT_EQ(Outcomes(store, 3), (std::vector<bool>{true, true, true}));
  store.Arm(FaultSpec::FailNth(1));
  EXPECT_EQ(Outcomes(store, 2), (std::vector<bool>{false, true}));
}

TEST(FaultInjectingStoreTest, ProbabilityIsSeededAndRoughlyRight) {
  constexpr int kCommits = 2000;
  FaultInjectingStore a = MakeStore(FaultSpec::FailWithProbability(0.25, 42));
  FaultInjectingStore b = MakeStore(FaultSpec::FailWithProbability(0.25, 42));
  const std::vector<bool> oa = Outcomes(a, kCommits);
  EXPECT_EQ(oa, Outcomes(b, kCommits));  // Same seed, same failures.
  const uint64_t failed = a.Counters().injected;
  EXPECT_GT(failed, kCommits * 0.20);
  EXPECT_LT(failed, kCommits * 0.30);
  FaultInjectingStore never = MakeStore(FaultSpec::FailWithProbability(0, 1));
  FaultInjectingStore always = MakeStore(FaultSpec::FailWithProbability(1, 1));
  EXPECT_EQ(Outcomes(never, 50), std::vector<bool>(50, true));
  EXPECT_EQ(Outcomes(always, 50), std::vector<bool>(50, false));
}

TEST(FaultInjectingStoreTest, DiskFullFailsUntilClearedAndShowsInHealth) {
  FaultInjectingStore store = MakeStore(FaultSpec::DiskFull());
  absl::Status s = store.Commit(Put(1));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("no space"));
  EXPECT_THAT(store.Health(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(Has(store, 1));
  // Reads keep working on a full disk.
  EXPECT_THAT(store.LoadAll(), IsOk());
  store.Disarm();
  EXPECT_THAT(store.Health(), IsOk());
  LW_EXPECT_OK(store.Commit(Put(1)));
}

TEST(FaultInjectingStoreTest, FencedWriterGetsFailedPrecondition) {
  FaultInjectingStore store = MakeStore();
  store.SetFenced(true);
  EXPECT_THAT(store.Commit(Put(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(Has(store, 1));
  store.SetFenced(false);
  LW_EXPECT_OK(store.Commit(Put(1)));
}

TEST(FaultInjectingStoreTest, ValidationErrorsWinAndAreNotCounted) {
  FaultInjectingStore store = MakeStore(FaultSpec::FailEveryAfter(0));
  EXPECT_THAT(store.Commit({Mutation::Put("", "v")}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(store.Counters().commits, 0u);
}

TEST(FaultInjectingStoreTest, ParsesSpecs) {
  absl::StatusOr<FaultSpec> s = ParseFaultSpec("fail_nth=3,phase=after");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->trigger, Trigger::kNthCommit);
  EXPECT_EQ(s->n, 3u);
  EXPECT_EQ(s->phase, Phase::kAfterWrite);

  s = ParseFaultSpec("fail_prob=0.01,seed=7");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->trigger, Trigger::kProbability);
  EXPECT_DOUBLE_EQ(s->probability, 0.01);
  EXPECT_EQ(s->seed, 7u);
  EXPECT_EQ(s->phase, Phase::kBeforeWrite);

  s = ParseFaultSpec("fail_after=100");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->trigger, Trigger::kEveryCommitAfter);
  EXPECT_EQ(s->n, 100u);

  s = ParseFaultSpec("disk_full,phase=after");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->trigger, Trigger::kDiskFull);
  EXPECT_EQ(s->phase, Phase::kBeforeWrite);  // A full disk writes nothing.

  s = ParseFaultSpec("");
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->trigger, Trigger::kNone);

  for (const char* bad : {"fail_nth=0", "fail_nth=x", "fail_prob=1.5",
                          "fail_nth=1,fail_after=2", "phase=sideways",
                          "explode=1", "seed=-1"}) {
    EXPECT_THAT(ParseFaultSpec(bad),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
}

}  // namespace
}  // namespace lockwarden::store
