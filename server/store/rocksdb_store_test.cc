// RocksDbStore specifics the conformance suite cannot cover: reopen, the
// single-process lock, status mapping, stats, and what a failed WAL write
// does (the store turns unhealthy, and the failed batch is all or nothing).
#include "server/store/rocksdb_store.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/status.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;
using ::testing::Pair;
using Mode = testing::WalFaultFileSystem::Mode;

std::unique_ptr<RocksDbStore> OpenOrDie(const std::string& dir,
                                        RocksDbStoreOptions options = {}) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      RocksDbStore::Open(dir, options);
  EXPECT_THAT(store, IsOk());
  return store.ok() ? *std::move(store) : nullptr;
}

TEST(RocksDbStoreTest, DataSurvivesReopen) {
  const std::string dir = testing::MakeTempDir("reopen");
  {
    std::unique_ptr<RocksDbStore> store = OpenOrDie(dir);
    ASSERT_NE(store, nullptr);
    LW_ASSERT_OK(store->Commit({Mutation::Put("lock/1", "a"),
                                Mutation::Put("lock/2", "b"),
                                Mutation::Put("nsm/state", "3")}));
    LW_ASSERT_OK(store->Commit({Mutation::Delete("lock/1"),
                                Mutation::Put("nsm/state", "5")}));
  }
  std::unique_ptr<RocksDbStore> store = OpenOrDie(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->LoadAll(),
              ElementsAre(Pair("lock/2", "b"), Pair("nsm/state", "5")));
  EXPECT_THAT(store->Health(), IsOk());
  EXPECT_EQ(store->BackendName(), "rocksdb");
}

TEST(RocksDbStoreTest, SecondOpenOfSameDirectoryIsUnavailable) {
  const std::string dir = testing::MakeTempDir("lock");
  std::unique_ptr<RocksDbStore> first = OpenOrDie(dir);
  ASSERT_NE(first, nullptr);
  EXPECT_THAT(RocksDbStore::Open(dir), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(RocksDbStoreTest, MissingDirectoryWithoutCreateIsAnError) {
  RocksDbStoreOptions options;
  options.create_if_missing = false;
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = RocksDbStore::Open(
      absl::StrCat(testing::MakeTempDir("nocreate"), "/absent"), options);
  EXPECT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("absent"));
}

TEST(RocksDbStoreTest, CommitStatsCountSuccessfulCommits) {
  std::unique_ptr<RocksDbStore> store = OpenOrDie(testing::MakeTempDir("stats"));
  ASSERT_NE(store, nullptr);
  LW_ASSERT_OK(store->Commit({Mutation::Put("ab", "cde")}));
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v"), Mutation::Delete("ab")}));
  LW_ASSERT_OK(store->Commit({}));  // Empty: not a commit.
  EXPECT_THAT(store->Commit({Mutation::Put("", "v")}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const CommitStats stats = store->GetCommitStats();
  EXPECT_EQ(stats.commits, 2u);
  EXPECT_EQ(stats.failed_commits, 0u);
  EXPECT_EQ(stats.mutations, 3u);
  EXPECT_EQ(stats.bytes, 5u + 2u + 2u);
  EXPECT_GT(stats.max_latency, absl::ZeroDuration());
  EXPECT_GE(stats.max_latency, stats.last_latency);
}

TEST(RocksDbStoreTest, CustomLimitsAreEnforced) {
  RocksDbStoreOptions options;
  options.limits.max_mutations_per_batch = 2;
  std::unique_ptr<RocksDbStore> store =
      OpenOrDie(testing::MakeTempDir("limits"), options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Limits().max_mutations_per_batch, 2u);
  EXPECT_THAT(store->Commit({Mutation::Put("a", ""), Mutation::Put("b", ""),
                             Mutation::Put("c", "")}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RocksDbStoreTest, MapsRocksDbStatusCodes) {
  using C = absl::StatusCode;
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::OK(), "x"), IsOk());
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::IOError("eio"), "x"),
              StatusIs(C::kUnavailable));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::NoSpace(), "x"),
              StatusIs(C::kUnavailable));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::Corruption("bad"), "x"),
              StatusIs(C::kDataLoss));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::InvalidArgument("bad"), "x"),
              StatusIs(C::kInvalidArgument));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::NotSupported("no"), "x"),
              StatusIs(C::kUnimplemented));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::NotFound("no"), "x"),
              StatusIs(C::kNotFound));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::TimedOut("slow"), "x"),
              StatusIs(C::kDeadlineExceeded));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::Busy("busy"), "x"),
              StatusIs(C::kUnavailable));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::ShutdownInProgress(), "x"),
              StatusIs(C::kUnavailable));
  EXPECT_THAT(FromRocksDbStatus(rocksdb::Status::Aborted("gone"), "x"),
              StatusIs(C::kAborted));
  EXPECT_THAT(
      std::string(FromRocksDbStatus(rocksdb::Status::IOError("eio"), "ctx")
                      .message()),
      HasSubstr("ctx"));
}

// A full disk during the WAL append: the commit fails, nothing is applied,
// and the store refuses everything until it is reopened.
TEST(RocksDbStoreTest, FailedWalAppendMakesStoreUnhealthyUntilReopen) {
  testing::WalFaultEnv fault;
  RocksDbStoreOptions options;
  options.env_for_testing = fault.env.get();
  const std::string dir = testing::MakeTempDir("nospace");
  std::unique_ptr<RocksDbStore> store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  LW_ASSERT_OK(store->Commit({Mutation::Put("before", "1")}));

  fault.fs->set_mode(Mode::kFailAppend);
  EXPECT_THAT(store->Commit({Mutation::Put("lost/1", "x"), Mutation::Put("lost/2", "x")}),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store->Health(), StatusIs(absl::StatusCode::kUnavailable));
  fault.fs->set_mode(Mode::kNone);
  // The disk is fine again, but the store stays unhealthy.
  absl::Status refused = store->Commit({Mutation::Put("after", "1")});
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("reopen"));
  EXPECT_THAT(store->Commit({}), StatusIs(absl::StatusCode::kUnavailable));
  // Reads still work.
  EXPECT_THAT(*store->Get("before"), Optional(std::string("1")));
  const CommitStats stats = store->GetCommitStats();
  EXPECT_EQ(stats.commits, 1u);
  EXPECT_EQ(stats.failed_commits, 3u);

  store.reset();
  store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Health(), IsOk());
  EXPECT_THAT(*store->LoadAll(), ElementsAre(Pair("before", "1")));
  LW_EXPECT_OK(store->Commit({Mutation::Put("after", "1")}));
}

// An fdatasync error after the WAL append: the outcome is unknown, but after
// a reopen the batch is either entirely there or entirely absent.
TEST(RocksDbStoreTest, FailedWalSyncLeavesBatchAllOrNothing) {
  testing::WalFaultEnv fault;
  RocksDbStoreOptions options;
  options.env_for_testing = fault.env.get();
  const std::string dir = testing::MakeTempDir("syncfail");
  std::unique_ptr<RocksDbStore> store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  LW_ASSERT_OK(store->Commit({Mutation::Put("before", "1")}));

  fault.fs->set_mode(Mode::kFailSync);
  Delta batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Mutation::Put(absl::StrCat("maybe/", i), "x"));
  }
  batch.push_back(Mutation::Delete("before"));
  EXPECT_THAT(store->Commit(batch), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store->Health(), StatusIs(absl::StatusCode::kUnavailable));
  fault.fs->set_mode(Mode::kNone);
  store.reset();

  store = OpenOrDie(dir, options);
  ASSERT_NE(store, nullptr);
  const size_t maybe = store->LoadAll("maybe/")->size();
  const bool before = store->Get("before")->has_value();
  std::printf("after a failed fdatasync the batch is %s\n",
              maybe == 0 ? "absent" : "present");
  EXPECT_TRUE((maybe == 0 && before) || (maybe == 10 && !before))
      << maybe << " of 10 keys, before=" << before;
}

}  // namespace
}  // namespace lockwarden::store
