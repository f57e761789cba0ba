// The StateStore conformance cases (see state_store_conformance.h). Linked
// with alwayslink into each backend's test binary, which instantiates them.
#include "server/store/state_store_conformance.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/state_store.h"

namespace lockwarden::store::testing {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Optional;
using ::testing::Pair;
using KV = StateStoreConformanceTest::KV;

}  // namespace

void StateStoreConformanceTest::SetUp() {
  harness_ = GetParam().make();
  ASSERT_NE(harness_, nullptr);
}

KV StateStoreConformanceTest::All(absl::string_view prefix) {
  absl::StatusOr<KV> all = store().LoadAll(prefix);
  EXPECT_THAT(all, IsOk());
  return all.ok() ? *all : KV();
}

std::optional<std::string> StateStoreConformanceTest::GetOrDie(
    absl::string_view key) {
  absl::StatusOr<std::optional<std::string>> v = store().Get(key);
  EXPECT_THAT(v, IsOk());
  return v.ok() ? *v : std::nullopt;
}

namespace {

TEST_P(StateStoreConformanceTest, EmptyStoreHasNothing) {
  EXPECT_THAT(All(), IsEmpty());
  EXPECT_EQ(GetOrDie("missing"), std::nullopt);
  EXPECT_THAT(store().Health(), IsOk());
  EXPECT_EQ(store().FencingToken(), 0u);
  const std::string expected_name = harness_->ExpectedBackendName();
  if (expected_name.empty()) {
    EXPECT_FALSE(store().BackendName().empty());
  } else {
    EXPECT_EQ(store().BackendName(), expected_name);
  }
}

TEST_P(StateStoreConformanceTest, PutDeleteOverwriteInOneBatch) {
  LW_ASSERT_OK(
      store().Commit({Mutation::Put("a", "old"), Mutation::Put("d", "4")}));
  LW_ASSERT_OK(store().Commit({
      Mutation::Put("b", "2"),
      Mutation::Delete("a"),
      Mutation::Put("b", "3"),
      Mutation::Put("c", "4"),
      Mutation::Put("d", "5"),
      Mutation::Delete("never-existed"),
  }));
  EXPECT_THAT(All(),
              ElementsAre(Pair("b", "3"), Pair("c", "4"), Pair("d", "5")));
  EXPECT_EQ(GetOrDie("a"), std::nullopt);
  EXPECT_THAT(GetOrDie("b"), Optional(std::string("3")));
}

TEST_P(StateStoreConformanceTest, LaterMutationOfSameKeyWins) {
  LW_ASSERT_OK(
      store().Commit({Mutation::Put("k1", "1"), Mutation::Put("k1", "2"),
                      Mutation::Put("k2", "x"), Mutation::Delete("k2"),
                      Mutation::Delete("k3"), Mutation::Put("k3", "y")}));
  EXPECT_THAT(All(), ElementsAre(Pair("k1", "2"), Pair("k3", "y")));
}

TEST_P(StateStoreConformanceTest, ValuesAreBinarySafe) {
  const std::string key("k\0\xff", 3);
  const std::string value("\0\x01\xff\0", 4);
  LW_ASSERT_OK(
      store().Commit({Mutation::Put(key, value), Mutation::Put("e", "")}));
  EXPECT_THAT(GetOrDie(key), Optional(value));
  EXPECT_THAT(GetOrDie("e"), Optional(std::string()));
}

TEST_P(StateStoreConformanceTest, EmptyBatchIsANoOp) {
  LW_ASSERT_OK(store().Commit({Mutation::Put("a", "1")}));
  LW_EXPECT_OK(store().Commit({}));
  EXPECT_THAT(All(), ElementsAre(Pair("a", "1")));
}

TEST_P(StateStoreConformanceTest, ScanIsOrderedByUnsignedBytes) {
  const std::vector<std::string> keys = {
      "b", "a", std::string("a\0", 2), "\x80", "\xff", "B", "ab", "\x7f"};
  Delta batch;
  for (const std::string& k : keys) batch.push_back(Mutation::Put(k, "v"));
  LW_ASSERT_OK(store().Commit(batch));
  std::vector<std::string> seen;
  for (const auto& kv : All()) seen.push_back(kv.first);
  EXPECT_THAT(seen, ElementsAre("B", "a", std::string("a\0", 2), "ab", "b",
                                "\x7f", "\x80", "\xff"));
}

TEST_P(StateStoreConformanceTest, ScanPrefixBoundaries) {
  const std::vector<std::string> keys = {
      "a",      "ab",         std::string("ab\0", 3),
      "ab\xff", "ab\xff\xff", "abc",
      "ac",     "b",          "\xfe",
      "\xff",   "\xff\xff",   std::string("\xff\x00x", 3)};
  Delta batch;
  for (const std::string& k : keys) batch.push_back(Mutation::Put(k, k));
  LW_ASSERT_OK(store().Commit(batch));
  auto keys_of = [&](absl::string_view prefix) {
    std::vector<std::string> out;
    for (const auto& kv : All(prefix)) {
      EXPECT_EQ(kv.first, kv.second);
      out.push_back(kv.first);
    }
    return out;
  };
  EXPECT_THAT(keys_of("ab"), ElementsAre("ab", std::string("ab\0", 3), "abc",
                                         "ab\xff", "ab\xff\xff"));
  EXPECT_THAT(keys_of("ab\xff"), ElementsAre("ab\xff", "ab\xff\xff"));
  EXPECT_THAT(keys_of("a"), ElementsAre("a", "ab", std::string("ab\0", 3),
                                        "abc", "ab\xff", "ab\xff\xff", "ac"));
  // No successor exists for an all-0xff prefix: the scan runs to the end.
  EXPECT_THAT(keys_of("\xff"),
              ElementsAre("\xff", std::string("\xff\x00x", 3), "\xff\xff"));
  EXPECT_THAT(keys_of("\xff\xff"), ElementsAre("\xff\xff"));
  EXPECT_THAT(keys_of("zz"), IsEmpty());
  EXPECT_THAT(keys_of("abd"), IsEmpty());
  EXPECT_EQ(keys_of("").size(), keys.size());
}

TEST_P(StateStoreConformanceTest, ScanStopsAtCallbackError) {
  LW_ASSERT_OK(
      store().Commit({Mutation::Put("p/1", ""), Mutation::Put("p/2", ""),
                      Mutation::Put("p/3", "")}));
  int visited = 0;
  absl::Status s =
      store().Scan("p/", [&](absl::string_view, absl::string_view) {
        return ++visited == 2 ? absl::AbortedError("enough") : absl::OkStatus();
      });
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(visited, 2);
}

TEST_P(StateStoreConformanceTest, ScanCallbackMayReadTheStore) {
  LW_ASSERT_OK(
      store().Commit({Mutation::Put("x/1", "y/1"), Mutation::Put("y/1", "z")}));
  LW_EXPECT_OK(store().Scan("x/", [&](absl::string_view, absl::string_view v) {
    absl::StatusOr<std::optional<std::string>> target = store().Get(v);
    EXPECT_THAT(target, IsOk());
    EXPECT_THAT(*target, Optional(std::string("z")));
    return absl::OkStatus();
  }));
}

TEST_P(StateStoreConformanceTest, LimitViolationsChangeNothing) {
  const StoreLimits limits = store().Limits();
  LW_ASSERT_OK(store().Commit({Mutation::Put("keep", "1")}));
  const Mutation ok = Mutation::Put("new", "v");
  const std::vector<Delta> bad = {
      {ok, Mutation::Put(std::string(limits.max_key_bytes + 1, 'k'), "v")},
      {ok, Mutation::Put("k", std::string(limits.max_value_bytes + 1, 'v'))},
      {ok, Mutation::Put("", "v")},
      {ok, Mutation{Mutation::Op::kDelete, "keep", "value-on-delete"}},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_THAT(store().Commit(bad[i]),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << "case " << i;
  }
  Delta too_many(limits.max_mutations_per_batch + 1, Mutation::Delete("keep"));
  too_many.front() = ok;
  EXPECT_THAT(store().Commit(too_many),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Byte limit: values each within bounds, together too large.
  const size_t value_bytes = limits.max_value_bytes;
  // Every backend's count limit leaves room for this batch, so the byte
  // limit is what must refuse it.
  const size_t count = limits.max_batch_bytes / value_bytes + 1;
  ASSERT_LE(count, limits.max_mutations_per_batch);
  Delta too_big;
  for (size_t i = 0; i < count; ++i) {
    too_big.push_back(
        Mutation::Put(absl::StrCat("big/", i), std::string(value_bytes, 'b')));
  }
  EXPECT_THAT(store().Commit(too_big),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(All(), ElementsAre(Pair("keep", "1")));
  EXPECT_THAT(store().Health(), IsOk());
}

TEST_P(StateStoreConformanceTest, ExactLimitsAreAccepted) {
  const StoreLimits limits = store().Limits();
  const std::string key(limits.max_key_bytes, 'k');
  LW_ASSERT_OK(store().Commit(
      {Mutation::Put(key, std::string(limits.max_value_bytes, 'v'))}));
  Delta full;
  for (size_t i = 0; i < limits.max_mutations_per_batch; ++i) {
    full.push_back(Mutation::Put(absl::StrCat("n/", i), "v"));
  }
  LW_ASSERT_OK(store().Commit(full));
  EXPECT_EQ(All("n/").size(), limits.max_mutations_per_batch);
  EXPECT_EQ(GetOrDie(key)->size(), limits.max_value_bytes);
  // A full batch by bytes: as many maximal values as the byte budget takes.
  Delta heavy;
  size_t bytes = 0;
  for (int i = 0;; ++i) {
    Mutation m = Mutation::Put(absl::StrCat("h/", i), "");
    if (bytes + m.key.size() >= limits.max_batch_bytes) break;
    const size_t room = limits.max_batch_bytes - bytes - m.key.size();
    m.value.assign(std::min(room, limits.max_value_bytes), 'h');
    bytes += MutationBytes(m);
    heavy.push_back(std::move(m));
  }
  ASSERT_EQ(bytes, limits.max_batch_bytes);
  LW_ASSERT_OK(store().Commit(heavy));
  EXPECT_EQ(All("h/").size(), heavy.size());
}

TEST_P(StateStoreConformanceTest, PersistsAcrossReopen) {
  if (!harness_->CanReopen()) GTEST_SKIP() << "backend is not durable";
  LW_ASSERT_OK(
      store().Commit({Mutation::Put("a", "1"), Mutation::Put("b", "2")}));
  LW_ASSERT_OK(
      store().Commit({Mutation::Delete("a"), Mutation::Put("c", "3")}));
  LW_ASSERT_OK(harness_->Reopen());
  EXPECT_THAT(All(), ElementsAre(Pair("b", "2"), Pair("c", "3")));
  LW_ASSERT_OK(store().Commit({Mutation::Put("d", "4")}));
  LW_ASSERT_OK(harness_->Reopen());
  EXPECT_THAT(All(),
              ElementsAre(Pair("b", "2"), Pair("c", "3"), Pair("d", "4")));
}

TEST_P(StateStoreConformanceTest, FailedBatchIsAllOrNothing) {
  LW_ASSERT_OK(store().Commit({Mutation::Put("base", "0")}));
  FaultInjectingStore faulty(std::make_unique<BorrowedStore>(&store()));
  const Delta batch = {Mutation::Put("x", "1"), Mutation::Delete("base"),
                       Mutation::Put("y", "2")};

  faulty.Arm(FaultSpec::FailNth(1, FaultSpec::Phase::kBeforeWrite));
  EXPECT_THAT(faulty.Commit(batch), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(All(), ElementsAre(Pair("base", "0")));

  faulty.Arm(FaultSpec::FailNth(1, FaultSpec::Phase::kAfterWrite));
  EXPECT_THAT(faulty.Commit(batch), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(All(), ElementsAre(Pair("x", "1"), Pair("y", "2")));
}

TEST_P(StateStoreConformanceTest, ConcurrentBatchesAreEachAtomic) {
  constexpr int kWriters = 4;
  const int kBatchesPerWriter = harness_->ConcurrentBatchesPerWriter();
  constexpr int kKeysPerBatch = 5;
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([this, w, kBatchesPerWriter] {
      for (int b = 0; b < kBatchesPerWriter; ++b) {
        Delta batch;
        for (int k = 0; k < kKeysPerBatch; ++k) {
          batch.push_back(
              Mutation::Put(absl::StrCat("w", w, "/", k), absl::StrCat(b)));
        }
        EXPECT_THAT(store().Commit(batch), IsOk());
      }
    });
  }
  // A scan is a point-in-time view: it never sees half a batch.
  std::thread reader([&] {
    while (!done.load()) {
      for (int w = 0; w < kWriters; ++w) {
        KV kv = All(absl::StrCat("w", w, "/"));
        if (kv.empty()) continue;
        ASSERT_EQ(kv.size(), static_cast<size_t>(kKeysPerBatch));
        for (const auto& [k, v] : kv) ASSERT_EQ(v, kv.front().second) << k;
      }
    }
  });
  for (std::thread& t : writers) t.join();
  done.store(true);
  reader.join();
  for (int w = 0; w < kWriters; ++w) {
    for (const auto& [k, v] : All(absl::StrCat("w", w, "/"))) {
      EXPECT_EQ(v, absl::StrCat(kBatchesPerWriter - 1)) << k;
    }
  }
}

}  // namespace
}  // namespace lockwarden::store::testing
