// EtcdWatch on a 3-member etcd cluster: when the member serving the watch is
// killed mid-stream, the watch resumes on another member from the next
// revision, so a standby following the state sees every commit exactly
// once, in order, whole. With prev_kv every update and delete carries the
// value it replaced, except a create and a change whose older revision etcd
// has compacted.
#include "server/store/etcd_watch.h"

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/etcd_store.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::store {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;

TEST(EtcdWatchTest, ResumesOnAnotherMemberWithoutGapsOrDuplicates) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 3});
  ASSERT_THAT(cluster, IsOk());
  EtcdCluster& etcd = **cluster;
  EtcdStoreOptions options;
  options.client.endpoints = etcd.ClientEndpoints();
  options.key_prefix = "/lwtest/watch/";
  options.fenced = false;
  // The follower's client starts on member 0; the writer's on member 1.
  std::unique_ptr<EtcdStore> follower = *EtcdStore::Open(options);
  std::swap(options.client.endpoints[0], options.client.endpoints[1]);
  std::unique_ptr<EtcdStore> writer = *EtcdStore::Open(options);

  absl::StatusOr<int64_t> start = follower->CurrentRevision();
  ASSERT_THAT(start, IsOk());
  absl::Mutex mu;
  std::vector<int> seen;  // Commit numbers, in delivery order.
  bool torn = false;
  absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = follower->WatchFrom(
      *start + 1,
      [&](const std::vector<WatchEvent>& events) {
        absl::MutexLock lock(&mu);
        // Each commit n puts a/<n> and b/<n> in one Txn: both or neither.
        for (size_t i = 0; i < events.size(); i += 2) {
          if (i + 1 >= events.size() ||
              events[i].mod_revision != events[i + 1].mod_revision) {
            torn = true;
            return;
          }
          int n = -1;
          if (!absl::SimpleAtoi(events[i].key.substr(2), &n)) torn = true;
          seen.push_back(n);
        }
      },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; });
  ASSERT_THAT(watch, IsOk());

  constexpr int kCommits = 60;
  int acknowledged = 0;
  for (int n = 0; n < kCommits; ++n) {
    if (n == kCommits / 3) {
      LW_ASSERT_OK(etcd.Kill(0));  // The member serving the watch.
    }
    absl::Status s = writer->Commit({Mutation::Put(absl::StrCat("a/", n), "x"),
                                     Mutation::Put(absl::StrCat("b/", n), "y")});
    // Our writer never talks to member 0, but a raft election may follow.
    if (s.ok()) {
      ++acknowledged;
    } else {
      EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
    }
  }
  absl::StatusOr<int64_t> end = writer->CurrentRevision();
  ASSERT_THAT(end, IsOk());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((*watch)->next_revision() <= *end && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT((*watch)->next_revision(), *end);
  absl::MutexLock lock(&mu);
  EXPECT_FALSE(torn);
  // Strictly increasing: no duplicates, and in commit order.
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
  // Everything that is in etcd was delivered.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> all =
      writer->LoadAll("a/");
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(seen.size(), all->size());
  EXPECT_GE(static_cast<int>(seen.size()), acknowledged);
}

// Collects every event a watch delivers.
struct Collected {
  void Add(const std::vector<WatchEvent>& events) {
    absl::MutexLock lock(&mu);
    all.insert(all.end(), events.begin(), events.end());
  }
  std::vector<WatchEvent> WaitFor(size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [this, n] { return all.size() >= n; };
    mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return all;
  }
  absl::Mutex mu;
  std::vector<WatchEvent> all ABSL_GUARDED_BY(mu);
};

TEST(EtcdWatchTest, PreviousValuesExceptForCreatesAndCompactedRevisions) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 1});
  ASSERT_THAT(cluster, IsOk());
  EtcdStoreOptions options;
  options.client.endpoints = (*cluster)->ClientEndpoints();
  options.key_prefix = "/lwtest/prevkv/";
  options.fenced = false;
  std::unique_ptr<EtcdStore> store = *EtcdStore::Open(options);
  absl::StatusOr<int64_t> start = store->CurrentRevision();
  ASSERT_THAT(start, IsOk());
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v1")}));  // start + 1
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v2")}));  // start + 2
  LW_ASSERT_OK(store->Commit({Mutation::Delete("k")}));     // start + 3
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v3")}));  // start + 4
  LW_ASSERT_OK(store->Commit({Mutation::Put("k", "v4")}));  // start + 5

  Collected with_prev;
  absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = store->WatchFrom(
      *start + 1, [&](const std::vector<WatchEvent>& e) { with_prev.Add(e); },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; },
      /*previous_values=*/true);
  ASSERT_THAT(watch, IsOk());
  std::vector<WatchEvent> events = with_prev.WaitFor(5);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_FALSE(events[0].prev_value.has_value());  // Create.
  EXPECT_EQ(events[0].create_revision, events[0].mod_revision);
  EXPECT_EQ(events[1].prev_value, std::optional<std::string>("v1"));
  EXPECT_EQ(events[1].create_revision, *start + 1);
  EXPECT_EQ(events[2].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[2].prev_value, std::optional<std::string>("v2"));
  EXPECT_FALSE(events[3].prev_value.has_value());  // Created again.
  EXPECT_EQ(events[3].create_revision, *start + 4);
  EXPECT_EQ(events[4].prev_value, std::optional<std::string>("v3"));
  (*watch)->Cancel();

  // Without asking: no previous values.
  Collected without;
  watch = store->WatchFrom(
      *start + 1, [&](const std::vector<WatchEvent>& e) { without.Add(e); },
      nullptr);
  ASSERT_THAT(watch, IsOk());
  for (const WatchEvent& e : without.WaitFor(5))
    EXPECT_FALSE(e.prev_value.has_value());
  (*watch)->Cancel();

  // Compacted at start + 5: the update's previous value (read at
  // start + 4) is gone, the watch from start + 5 still starts. (A delete
  // at the compaction revision would not be delivered at all: compaction
  // drops tombstones at or below it.)
  const std::string compact =
      absl::StrCat("ETCDCTL_API=3 etcdctl --command-timeout=10s --endpoints=",
                   (*cluster)->EndpointsFlag(), " compact --physical ",
                   *start + 5, " >/dev/null 2>&1");
  ASSERT_EQ(std::system(compact.c_str()), 0) << compact;
  Collected compacted;
  watch = store->WatchFrom(
      *start + 5, [&](const std::vector<WatchEvent>& e) { compacted.Add(e); },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; },
      /*previous_values=*/true);
  ASSERT_THAT(watch, IsOk());
  events = compacted.WaitFor(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].value, "v4");
  EXPECT_EQ(events[0].create_revision, *start + 4);  // An update...
  EXPECT_FALSE(events[0].prev_value.has_value());  // ...without its old value.
}

// etcd drops the tombstone of a delete at the compaction revision C yet
// lets a watch start at C. With on_gap, a stream whose start - 1 is
// compacted (start == C) or that etcd cancels as compacted (start < C)
// calls on_gap(start) instead of delivering, and resumes after the
// revision on_gap returns; an on_gap error ends the watch with it.
TEST(EtcdWatchTest, OnGapWhenTheStartIsAtOrBelowTheCompactionRevision) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 1});
  ASSERT_THAT(cluster, IsOk());
  EtcdStoreOptions options;
  options.client.endpoints = (*cluster)->ClientEndpoints();
  options.key_prefix = "/lwtest/gap/";
  options.fenced = false;
  std::unique_ptr<EtcdStore> store = *EtcdStore::Open(options);
  absl::StatusOr<int64_t> base = store->CurrentRevision();
  ASSERT_THAT(base, IsOk());
  LW_ASSERT_OK(store->Commit({Mutation::Put("a", "1")}));  // base + 1
  LW_ASSERT_OK(store->Commit({Mutation::Put("b", "1")}));  // base + 2
  LW_ASSERT_OK(store->Commit({Mutation::Delete("a")}));    // base + 3
  LW_ASSERT_OK(store->Commit({Mutation::Put("c", "1")}));  // base + 4
  const int64_t compacted_at = *base + 3;
  const std::string compact =
      absl::StrCat("ETCDCTL_API=3 etcdctl --command-timeout=10s --endpoints=",
                   (*cluster)->EndpointsFlag(), " compact --physical ",
                   compacted_at, " >/dev/null 2>&1");
  ASSERT_EQ(std::system(compact.c_str()), 0) << compact;

  // Without on_gap, etcd's behaviour: the delete at the start is gone.
  Collected plain;
  absl::StatusOr<std::unique_ptr<EtcdWatch>> watch = store->WatchFrom(
      compacted_at, [&](const std::vector<WatchEvent>& e) { plain.Add(e); },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; });
  ASSERT_THAT(watch, IsOk());
  std::vector<WatchEvent> events = plain.WaitFor(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].key, "c");  // No delete of "a".
  (*watch)->Cancel();

  // With on_gap, from the compaction revision and from below it: on_gap
  // once with the start, then only what follows the revision it returns.
  for (int64_t from : {compacted_at, compacted_at - 1}) {
    SCOPED_TRACE(absl::StrCat("from ", from));
    Collected followed;
    absl::Mutex mu;
    std::vector<int64_t> gaps;
    watch = store->WatchFrom(
        from, [&](const std::vector<WatchEvent>& e) { followed.Add(e); },
        [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; },
        /*previous_values=*/true,
        [&](int64_t start) -> absl::StatusOr<int64_t> {
          absl::MutexLock lock(&mu);
          gaps.push_back(start);
          return compacted_at;  // "Reloaded" at the compaction revision.
        });
    ASSERT_THAT(watch, IsOk());
    events = followed.WaitFor(1);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].key, "c");
    EXPECT_EQ(events[0].mod_revision, *base + 4);
    (*watch)->Cancel();
    absl::MutexLock lock(&mu);
    EXPECT_EQ(gaps, std::vector<int64_t>{from});
  }

  // A start whose previous revision is the compaction revision is whole.
  Collected whole;
  watch = store->WatchFrom(
      compacted_at + 1, [&](const std::vector<WatchEvent>& e) { whole.Add(e); },
      [](absl::Status s) { ADD_FAILURE() << "watch ended: " << s; },
      /*previous_values=*/true,
      [](int64_t start) -> absl::StatusOr<int64_t> {
        ADD_FAILURE() << "gap at " << start;
        return start;
      });
  ASSERT_THAT(watch, IsOk());
  EXPECT_EQ(whole.WaitFor(1).size(), 1u);
  (*watch)->Cancel();

  // on_gap failing ends the watch with its status.
  absl::Mutex mu;
  std::optional<absl::Status> ended;
  watch = store->WatchFrom(
      compacted_at, [](const std::vector<WatchEvent>&) {},
      [&](absl::Status s) {
        absl::MutexLock lock(&mu);
        ended = s;
      },
      /*previous_values=*/true,
      [](int64_t) -> absl::StatusOr<int64_t> {
        return absl::UnavailableError("follower broken");
      });
  ASSERT_THAT(watch, IsOk());
  {
    absl::MutexLock lock(&mu);
    auto done = [&ended] { return ended.has_value(); };
    mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
    ASSERT_TRUE(ended.has_value());
    EXPECT_THAT(*ended, StatusIs(absl::StatusCode::kUnavailable));
  }
  (*watch)->Cancel();
}

TEST(EtcdWatchTest, RejectsBadOptions) {
  EtcdClientOptions options;
  options.endpoints = {"127.0.0.1:1"};
  std::unique_ptr<EtcdClient> client = *EtcdClient::Create(options);
  EtcdWatchOptions no_revision;
  no_revision.key = "k";
  EXPECT_THAT(EtcdWatch::Start(client.get(), no_revision, nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EtcdWatchOptions no_key;
  no_key.start_revision = 1;
  EXPECT_THAT(EtcdWatch::Start(client.get(), no_key, nullptr, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace lockwarden::store
