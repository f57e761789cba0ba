// LeaderFailureDetector on a real 1-member etcd: a leader whose health
// endpoint dies (its key left behind, as after kill -9) is deposed by a
// standby's detector well within the lease TTL; a healthy leader is never
// deposed; a leader that never answered is spared for the startup
// allowance (since this detector first saw it).
#include "server/replication/failure_detector.h"

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_client.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::replication {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;

constexpr absl::Duration kLeaseTtl = absl::Seconds(5);

// A grpc.health.v1 endpoint on a loopback port: what a leader serves.
class HealthEndpoint {
 public:
  HealthEndpoint() {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    server_ = builder.BuildAndStart();
    server_->GetHealthCheckService()->SetServingStatus(kDefaultHealthService, true);
  }
  ~HealthEndpoint() { Kill(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  void Kill() {
    if (server_ == nullptr) return;
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
    server_.reset();
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

struct Node {
  std::unique_ptr<store::EtcdClient> client;
  std::unique_ptr<LeaderElection> election;
  std::unique_ptr<LeaderFailureDetector> detector;
  std::atomic<int> elected{0};
};

class FailureDetectorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster = EtcdCluster::Start({.members = 1});
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
    prefix_ = absl::StrCat("/lwtest/detector/", ++test_number, "/");
  }
  void TearDown() override {
    for (auto& n : nodes_) {
      if (n->detector) n->detector->Stop();
      n->election.reset();
    }
  }

  Node& AddNode(const std::string& id, const std::string& address,
                FailureDetectorOptions detector = {}) {
    auto n = std::make_unique<Node>();
    store::EtcdClientOptions client;
    client.endpoints = cluster_->ClientEndpoints();
    n->client = *store::EtcdClient::Create(client);
    LeaderElectionOptions eo;
    eo.server_id = id;
    eo.advertised_address = address;
    eo.election_prefix = prefix_;
    eo.lease_ttl = kLeaseTtl;
    LeaderElection::Callbacks cb;
    Node* raw = n.get();
    cb.on_elected = [raw](const Leadership&) { raw->elected++; };
    n->election = *LeaderElection::Create(n->client.get(), eo, cb);
    n->election->Start();
    detector.own_server_id = id;
    auto d = LeaderFailureDetector::Start(n->election.get(), std::move(detector));
    EXPECT_THAT(d, IsOk());
    if (d.ok()) n->detector = *std::move(d);
    nodes_.push_back(std::move(n));
    return *nodes_.back();
  }

  static bool WaitFor(const std::function<bool()>& done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return done();
  }

  static EtcdCluster* cluster_;
  std::string prefix_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

EtcdCluster* FailureDetectorTest::cluster_ = nullptr;

TEST(FailureDetectorOptionsTest, BadOptionsAreRefused) {
  FailureDetectorOptions o;
  o.own_server_id = "a";
  o.failures_to_depose = 0;
  // No election is needed to refuse the options.
  EXPECT_FALSE(LeaderFailureDetector::Start(nullptr, o).ok());
}

TEST_F(FailureDetectorTest, DeadLeaderIsDeposedWithinASecondNotTheLeaseTtl) {
  HealthEndpoint a_health;
  Node& a = AddNode("a", a_health.address());
  ASSERT_TRUE(WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  HealthEndpoint b_health;
  Node& b = AddNode("b", b_health.address());
  // b has seen a serving before a dies.
  ASSERT_TRUE(WaitFor([&] { return b.detector->stats().probes >= 3; }, absl::Seconds(5)));
  EXPECT_EQ(b.detector->stats().failed_probes, 0u);

  // kill -9 of a: no health endpoint, the key stays until the lease expires.
  a.detector->Stop();
  a.election->AbandonForTesting();
  a_health.Kill();
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return b.election->IsLeader(); }, kLeaseTtl));
  const absl::Duration takeover = absl::Now() - killed;
  // ~3 probes 100 ms apart; far below the TTL even on a loaded machine.
  EXPECT_LT(takeover, kLeaseTtl / 2) << "took " << takeover;
  std::cout << "deposed and replaced after " << takeover << std::endl;
  EXPECT_EQ(b.detector->stats().deposes, 1u);
}

TEST_F(FailureDetectorTest, HealthyLeaderIsNeverDeposed) {
  HealthEndpoint a_health;
  Node& a = AddNode("a", a_health.address());
  ASSERT_TRUE(WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  // A generous probe timeout: this is about the logic, not about how a
  // loaded test machine schedules threads.
  FailureDetectorOptions o;
  o.probe_timeout = absl::Seconds(1);
  Node& b = AddNode("b", "127.0.0.1:1", o);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(a.election->IsLeader());
  EXPECT_GE(b.detector->stats().probes, 3u);
  EXPECT_EQ(b.detector->stats().deposes, 0u);
}

TEST_F(FailureDetectorTest, LeaderNeverSeenServingIsSparedForTheStartupAllowance) {
  // a leads but never answers (still recovering, or unreachable from b).
  Node& a = AddNode("a", "127.0.0.1:1");
  ASSERT_TRUE(WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  FailureDetectorOptions o;
  o.leader_startup_allowance = absl::Seconds(2);
  Node& b = AddNode("b", "127.0.0.1:2", o);
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_TRUE(a.election->IsLeader());
  EXPECT_GE(b.detector->stats().failed_probes, 3u);
  EXPECT_EQ(b.detector->stats().deposes, 0u);
  // After the allowance it is deposed (a wrong suspicion costs a failover,
  // never a write: a cannot write once its key is gone).
  ASSERT_TRUE(WaitFor([&] { return b.election->IsLeader(); }, absl::Seconds(4)));
  EXPECT_EQ(b.detector->stats().deposes, 1u);
  EXPECT_TRUE(WaitFor([&] { return !a.election->IsLeader(); }, absl::Seconds(2)));
}

}  // namespace
}  // namespace lockwarden::replication
