// EtcdWatch on a 3-member etcd cluster: when the member serving the watch is
// killed mid-stream, the watch resumes on another member from the next
// revision, so a standby following the state sees every commit exactly
// once, in order, whole.
#include "server/store/etcd_watch.h"

#include <memory>
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
