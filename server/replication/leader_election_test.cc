// LeaderElection on a real 3-member etcd cluster: one leader among three
// candidates, takeover when the leader's lease expires (stopped keepalives,
// or a "kill -9" that leaves the key behind), immediate takeover through
// DeposeIfDead and through Stop/Resign, and fencing of the deposed leader's
// writes.
#include "server/replication/leader_election.h"

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_client.h"
#include "server/store/etcd_store.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::replication {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;

// One lockwarden-server's worth of election state: its own client, a fenced
// store whose fence follows the callbacks, and the election.
struct Candidate {
  std::string id;
  std::unique_ptr<store::EtcdClient> client;
  std::unique_ptr<store::EtcdStore> store;
  std::unique_ptr<LeaderElection> election;
  std::atomic<int> elected{0};
  std::atomic<int> lost{0};
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
        EtcdCluster::Start({.members = 3});
    ASSERT_THAT(cluster, IsOk());
    cluster_ = cluster->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    static int test_number = 0;
    base_ = absl::StrCat("/lwtest/election/", ++test_number, "/");
  }
  void TearDown() override {
    for (auto& c : candidates_) c->election.reset();
  }

  Candidate& Add(const std::string& id, absl::Duration ttl = absl::Seconds(2)) {
    auto c = std::make_unique<Candidate>();
    c->id = id;
    store::EtcdClientOptions client;
    client.endpoints = cluster_->ClientEndpoints();
    c->client = *store::EtcdClient::Create(client);
    store::EtcdStoreOptions so;
    so.key_prefix = base_ + "state/";
    so.fenced = true;
    c->store = *store::EtcdStore::OpenWithClient(c->client.get(), so);
    LeaderElectionOptions eo;
    eo.server_id = id;
    eo.advertised_address = absl::StrCat(id, ".example:7000");
    eo.election_prefix = base_ + "leader/";
    eo.lease_ttl = ttl;
    eo.recampaign_delay = absl::Milliseconds(200);
    Candidate* raw = c.get();
    LeaderElection::Callbacks cb;
    cb.on_elected = [raw](const Leadership& l) {
      EXPECT_THAT(raw->store->SetFence({l.key, l.create_revision}), IsOk());
      raw->elected++;
    };
    cb.on_lost = [raw](const Leadership&, const absl::Status&) {
      raw->store->ClearFence();
      raw->lost++;
    };
    absl::StatusOr<std::unique_ptr<LeaderElection>> e =
        LeaderElection::Create(c->client.get(), eo, cb);
    EXPECT_THAT(e, IsOk());
    c->election = *std::move(e);
    candidates_.push_back(std::move(c));
    return *candidates_.back();
  }

  // The one candidate leading (other than `except`), waiting up to
  // `timeout`; nullptr if none. Fails the test if two lead at once.
  Candidate* WaitForLeader(absl::Duration timeout, Candidate* except = nullptr) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      Candidate* leader = nullptr;
      int leaders = 0;
      for (auto& c : candidates_) {
        if (c->election && c->election->IsLeader()) {
          ++leaders;
          if (c.get() != except) leader = c.get();
        }
      }
      EXPECT_LE(leaders, 1 + (except != nullptr ? 1 : 0));
      if (leader != nullptr) return leader;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return nullptr;
  }

  // A store holding `fence` regardless of callbacks: what a deposed leader
  // that has not noticed yet would write with.
  std::unique_ptr<store::EtcdStore> StoreWithFence(Candidate& c,
                                                   const Leadership& l) {
    store::EtcdStoreOptions so;
    so.key_prefix = base_ + "state/";
    so.fenced = true;
    std::unique_ptr<store::EtcdStore> s =
        *store::EtcdStore::OpenWithClient(c.client.get(), so);
    EXPECT_THAT(s->SetFence({l.key, l.create_revision}), IsOk());
    return s;
  }

  static EtcdCluster* cluster_;
  std::string base_;
  std::vector<std::unique_ptr<Candidate>> candidates_;
};

EtcdCluster* LeaderElectionTest::cluster_ = nullptr;

TEST_F(LeaderElectionTest, ExactlyOneOfThreeLeads) {
  for (const char* id : {"a", "b", "c"}) Add(id).election->Start();
  Candidate* leader = WaitForLeader(absl::Seconds(10));
  ASSERT_NE(leader, nullptr);
  // Stays the only leader.
  const absl::Time until = absl::Now() + absl::Seconds(1);
  while (absl::Now() < until) {
    int leaders = 0;
    for (auto& c : candidates_) leaders += c->election->IsLeader() ? 1 : 0;
    ASSERT_EQ(leaders, 1);
    absl::SleepFor(absl::Milliseconds(20));
  }
  const Leadership mine = *leader->election->leadership();
  for (auto& c : candidates_) {
    absl::StatusOr<LeaderInfo> info = c->election->CurrentLeader();
    ASSERT_THAT(info, IsOk());
    EXPECT_EQ(info->server_id, leader->id);
    EXPECT_EQ(info->create_revision, mine.create_revision);
    EXPECT_EQ(*c->election->LeaderAddress(), leader->id + ".example:7000");
  }
  EXPECT_EQ(leader->store->FencingToken(), static_cast<uint64_t>(mine.create_revision));
  LW_EXPECT_OK(leader->store->Commit({Mutation::Put("k", leader->id)}));
  for (auto& c : candidates_) {
    if (c.get() == leader) continue;
    EXPECT_FALSE(c->election->leadership().has_value());
    EXPECT_THAT(c->store->Commit({Mutation::Put("k", c->id)}),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c->election->Resign(), StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  EXPECT_EQ(*leader->store->Get("k"), std::optional<std::string>(leader->id));
}

TEST_F(LeaderElectionTest, StoppedKeepalivesLetAnotherTakeOverWithinTtl) {
  for (const char* id : {"a", "b", "c"}) Add(id).election->Start();
  Candidate* old = WaitForLeader(absl::Seconds(10));
  ASSERT_NE(old, nullptr);
  const Leadership old_term = *old->election->leadership();
  std::unique_ptr<store::EtcdStore> stale = StoreWithFence(*old, old_term);

  const absl::Time start = absl::Now();
  old->election->PauseKeepAlivesForTesting(true);
  Candidate* next = WaitForLeader(absl::Seconds(8), old);
  ASSERT_NE(next, nullptr);
  const absl::Duration takeover = absl::Now() - start;
  EXPECT_LT(takeover, absl::Seconds(5)) << "TTL is 2 s";
  std::cout << "takeover after stopped keepalives: " << takeover << "\n";
  // The old leader noticed by itself (its local lease deadline passed).
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (old->lost.load() == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(old->lost.load(), 1);
  // Its writes are fenced, whatever it believes.
  EXPECT_THAT(stale->Commit({Mutation::Put("k", "stale")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  LW_EXPECT_OK(next->store->Commit({Mutation::Put("k", "new")}));
  EXPECT_GT(next->election->leadership()->create_revision, old_term.create_revision);
  old->election->PauseKeepAlivesForTesting(false);
}

TEST_F(LeaderElectionTest, KilledLeaderIsReplacedAfterItsLease) {
  for (const char* id : {"a", "b"}) Add(id).election->Start();
  Candidate* old = WaitForLeader(absl::Seconds(10));
  ASSERT_NE(old, nullptr);
  const Leadership old_term = *old->election->leadership();
  const absl::Time start = absl::Now();
  old->election->AbandonForTesting();  // Threads gone, key and lease left.
  Candidate* next = WaitForLeader(absl::Seconds(8), old);
  ASSERT_NE(next, nullptr);
  const absl::Duration takeover = absl::Now() - start;
  std::cout << "takeover after kill (lease TTL 2 s): " << takeover << "\n";
  EXPECT_GE(takeover, absl::Milliseconds(900)) << "must wait for the lease";
  EXPECT_LT(takeover, absl::Seconds(5));
  std::unique_ptr<store::EtcdStore> stale = StoreWithFence(*old, old_term);
  EXPECT_THAT(stale->Commit({Mutation::Put("k", "stale")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(LeaderElectionTest, DeposeIfDeadTakesOverWithoutWaitingForTheLease) {
  const absl::Duration ttl = absl::Seconds(10);
  Candidate& a = Add("a", ttl);
  a.election->Start();
  ASSERT_EQ(WaitForLeader(absl::Seconds(10)), &a);
  Candidate& b = Add("b", ttl);
  b.election->Start();
  // b is in line behind a.
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_FALSE(b.election->IsLeader());
  const Leadership old_term = *a.election->leadership();
  a.election->AbandonForTesting();  // The leader dies; its lease lives on.

  absl::StatusOr<LeaderInfo> dead = b.election->CurrentLeader();
  ASSERT_THAT(dead, IsOk());
  EXPECT_EQ(dead->server_id, "a");
  EXPECT_THAT(b.election->DeposeIfDead(dead->key, dead->create_revision - 1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  const absl::Time start = absl::Now();
  LW_ASSERT_OK(b.election->DeposeIfDead(dead->key, dead->create_revision));
  ASSERT_EQ(WaitForLeader(absl::Seconds(3), &a), &b);
  const absl::Duration takeover = absl::Now() - start;
  std::cout << "takeover after DeposeIfDead (lease TTL 10 s): " << takeover << "\n";
  EXPECT_LT(takeover, absl::Seconds(2));
  // A second depose of the same term finds nothing to do.
  EXPECT_THAT(b.election->DeposeIfDead(dead->key, dead->create_revision),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  std::unique_ptr<store::EtcdStore> stale = StoreWithFence(a, old_term);
  EXPECT_THAT(stale->Commit({Mutation::Put("k", "stale")}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  LW_EXPECT_OK(b.store->Commit({Mutation::Put("k", "b")}));
}

TEST_F(LeaderElectionTest, ResignHandsOverAndCampaignsAgain) {
  const absl::Duration ttl = absl::Seconds(10);
  Candidate& a = Add("a", ttl);
  a.election->Start();
  ASSERT_EQ(WaitForLeader(absl::Seconds(10)), &a);
  Candidate& b = Add("b", ttl);
  b.election->Start();
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  LW_ASSERT_OK(a.election->Resign());
  EXPECT_EQ(a.lost.load(), 1);
  EXPECT_FALSE(a.election->IsLeader());
  ASSERT_EQ(WaitForLeader(absl::Seconds(3)), &b);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // a is back in line (a new key, behind b) and takes over when b stops.
  absl::SleepFor(absl::Milliseconds(600));
  b.election->Stop();
  EXPECT_EQ(b.lost.load(), 1);
  ASSERT_EQ(WaitForLeader(absl::Seconds(3)), &a);
  EXPECT_EQ(a.elected.load(), 2);
}

}  // namespace
}  // namespace lockwarden::replication
