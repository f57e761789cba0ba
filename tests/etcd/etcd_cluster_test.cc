// EtcdCluster starts real etcd members, finds the raft leader, survives a
// kill -9 of the leader and a restart, and leaves no process behind.
#include "tests/etcd/etcd_cluster.h"

#include <signal.h>

#include <memory>

#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_client.h"

namespace lockwarden::testing {
namespace {

TEST(EtcdClusterTest, ThreeMembersElectLeaderAndSurviveLeaderKill) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 3});
  ASSERT_THAT(cluster, IsOk());
  EtcdCluster& c = **cluster;
  EXPECT_EQ(c.ClientEndpoints().size(), 3u);
  absl::StatusOr<int> leader = c.LeaderIndex(absl::Seconds(10));
  ASSERT_THAT(leader, IsOk());

  LW_ASSERT_OK(c.Kill(*leader));
  EXPECT_FALSE(c.running(*leader));
  absl::StatusOr<int> next = c.LeaderIndex(absl::Seconds(15));
  ASSERT_THAT(next, IsOk());
  EXPECT_NE(*next, *leader);

  LW_ASSERT_OK(c.Restart(*leader));
  LW_ASSERT_OK(c.WaitHealthy(absl::Seconds(20)));

  const pid_t pid = c.pid(0);
  cluster->reset();  // The destructor kills and reaps every member.
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST(EtcdClusterTest, PausedMemberIsNotHealthyUntilResumed) {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 1});
  ASSERT_THAT(cluster, IsOk());
  LW_ASSERT_OK((*cluster)->Kill(0, SIGSTOP));
  EXPECT_FALSE((*cluster)->WaitHealthy(absl::Seconds(1)).ok());
  LW_ASSERT_OK((*cluster)->Kill(0, SIGCONT));
  LW_EXPECT_OK((*cluster)->WaitHealthy(absl::Seconds(10)));
}

}  // namespace
}  // namespace lockwarden::testing
