// LeaderFailureDetector on a real 1-member etcd (one per binary,
// //server/store:etcd_test_env): a leader whose health
// endpoint dies (its key left behind, as after kill -9) is deposed by a
// standby's detector well within the lease TTL; a healthy leader is never
// deposed; a leader that never answered is spared for the startup
// allowance (since this detector first saw it). With TLS: a probe with the
// right CA deposes a dead leader as fast; a misconfigured probe (wrong CA,
// plaintext against TLS) never deposes a live leader. A leader that stops
// answering (timeouts, not refusals) is deposed only after the minimum
// unresponsive span.
#include "server/replication/failure_detector.h"

#include <grpcpp/health_check_service_interface.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_client.h"
#include "server/store/etcd_test_env.h"
#include "tests/common/test_pki.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::replication {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;

constexpr absl::Duration kLeaseTtl = absl::Seconds(5);

// One etcd for the whole binary (the TLS suite included); tests keep apart
// by election prefix.
const ::testing::Environment* const kEtcd =
    ::testing::AddGlobalTestEnvironment(
        new store::testing::EtcdTestEnvironment);

// A grpc.health.v1 endpoint on a loopback port: what a leader serves.
class HealthEndpoint {
 public:
  explicit HealthEndpoint(std::shared_ptr<grpc::ServerCredentials> credentials =
                              grpc::InsecureServerCredentials()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
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

// A port that completes TCP handshakes (the kernel's backlog) but never
// answers: what a SIGSTOPped or hung leader looks like to a new probe.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0 &&
        listen(fd_, 64) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port_ = ntohs(a.sin_port);
    }
  }
  ~BlackHole() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  bool ok() const { return port_ != 0; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

struct Node {
  std::unique_ptr<store::EtcdClient> client;
  std::unique_ptr<LeaderElection> election;
  std::unique_ptr<LeaderFailureDetector> detector;
  std::atomic<int> elected{0};
};

class FailureDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = store::testing::EtcdTestEnvironment::cluster();
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

  EtcdCluster* cluster_ = nullptr;  // owned by EtcdTestEnvironment
  std::string prefix_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

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

TEST(ClassifyProbeTest, OnlyDeadLookingOutcomesCount) {
  const grpc::Status ok = grpc::Status::OK;
  constexpr TransportCheck kNone = TransportCheck::kUnreachable;
  EXPECT_EQ(ClassifyProbe(ok, true, kNone), ProbeOutcome::kServing);
  EXPECT_EQ(ClassifyProbe(ok, false, kNone),
            ProbeOutcome::kDead);  // NOT_SERVING.
  EXPECT_EQ(ClassifyProbe(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""),
                          false, TransportCheck::kResponds),
            ProbeOutcome::kDead);
  const grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, "");
  EXPECT_EQ(ClassifyProbe(unavailable, false, TransportCheck::kUnreachable),
            ProbeOutcome::kDead);
  EXPECT_EQ(ClassifyProbe(unavailable, false, TransportCheck::kSilent),
            ProbeOutcome::kDead);
  // The port answers but the call fails: TLS/HTTP2 mismatch.
  EXPECT_EQ(ClassifyProbe(unavailable, false, TransportCheck::kResponds),
            ProbeOutcome::kMisconfigured);
  for (grpc::StatusCode code :
       {grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::PERMISSION_DENIED,
        grpc::StatusCode::UNIMPLEMENTED, grpc::StatusCode::NOT_FOUND,
        grpc::StatusCode::INTERNAL}) {
    EXPECT_EQ(ClassifyProbe(grpc::Status(code, ""), false, kNone),
              ProbeOutcome::kMisconfigured)
        << code;
  }
}

TEST(CheckTransportTest, LiveSilentAndClosedPortsAreToldApart) {
  BlackHole hole;
  ASSERT_TRUE(hole.ok());
  HealthEndpoint live;
  const absl::Duration t = absl::Milliseconds(300);
  EXPECT_EQ(CheckTransport(hole.address(), t), TransportCheck::kSilent);
  EXPECT_EQ(CheckTransport("ipv4:" + hole.address(), t),
            TransportCheck::kSilent);
  EXPECT_EQ(CheckTransport(live.address(), t), TransportCheck::kResponds);
  EXPECT_EQ(CheckTransport("127.0.0.1:1", t), TransportCheck::kUnreachable);
  EXPECT_EQ(CheckTransport("no-port", t), TransportCheck::kUnreachable);
}

TEST_F(FailureDetectorTest,
       UnresponsiveLeaderIsDeposedOnlyAfterTheMinimumSpan) {
  BlackHole hole;  // Accepts TCP, never answers: every probe times out.
  ASSERT_TRUE(hole.ok());
  Node& a = AddNode("a", hole.address());
  ASSERT_TRUE(
      WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  FailureDetectorOptions o;
  o.leader_startup_allowance = absl::ZeroDuration();
  o.min_unresponsive_span = absl::Milliseconds(1500);
  const absl::Time start = absl::Now();
  Node& b = AddNode("b", "127.0.0.1:2", o);
  // 3 timeouts take ~0.9 s; the span keeps a slow leader for 1.5 s.
  ASSERT_TRUE(WaitFor([&] { return b.detector->stats().failed_probes >= 3; },
                      absl::Seconds(5)));
  EXPECT_EQ(b.detector->stats().deposes, 0u);
  ASSERT_TRUE(
      WaitFor([&] { return b.election->IsLeader(); }, absl::Seconds(5)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(1500));
  std::cout << "unresponsive leader deposed after " << took << std::endl;
  EXPECT_EQ(b.detector->stats().misconfigured_probes, 0u);
}

// A TLS leader: a CA, a server certificate for 127.0.0.1, another CA.
class TlsFailureDetectorTest : public FailureDetectorTest {
 protected:
  void SetUp() override {
    FailureDetectorTest::SetUp();
    pki_.MakeCa("ca");
    pki_.MakeCa("other-ca");
    pki_.MakeLeaf("server", "ca", "lockwarden-server",
                  "subjectAltName=IP:127.0.0.1");
    ASSERT_TRUE(pki_.ok());
  }
  std::shared_ptr<grpc::ServerCredentials> ServerTls() const {
    grpc::SslServerCredentialsOptions o;
    o.pem_key_cert_pairs.push_back(
        {pki_.Pem("server.key"), pki_.Pem("server.pem")});
    return grpc::SslServerCredentials(o);
  }
  std::shared_ptr<grpc::ChannelCredentials> ProbeTls(
      const std::string& ca) const {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = pki_.Pem(ca + ".pem");
    return grpc::SslCredentials(o);
  }

  testing::TestPki pki_{"failure-detector-pki"};
};

TEST_F(TlsFailureDetectorTest, ProbeWithTheServersCaDeposesADeadTlsLeaderFast) {
  HealthEndpoint a_health(ServerTls());
  Node& a = AddNode("a", a_health.address());
  ASSERT_TRUE(
      WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  FailureDetectorOptions o;
  o.credentials = ProbeTls("ca");
  HealthEndpoint b_health(ServerTls());
  Node& b = AddNode("b", b_health.address(), o);
  ASSERT_TRUE(WaitFor([&] { return b.detector->stats().probes >= 3; },
                      absl::Seconds(5)));
  EXPECT_EQ(b.detector->stats().failed_probes, 0u);
  EXPECT_EQ(b.detector->stats().misconfigured_probes, 0u)
      << b.detector->stats().last_misconfiguration;

  a.detector->Stop();
  a.election->AbandonForTesting();
  a_health.Kill();  // kill -9: the port refuses.
  const absl::Time killed = absl::Now();
  ASSERT_TRUE(WaitFor([&] { return b.election->IsLeader(); }, kLeaseTtl));
  const absl::Duration takeover = absl::Now() - killed;
  EXPECT_LT(takeover, kLeaseTtl / 2) << "took " << takeover;
  std::cout << "TLS: deposed and replaced after " << takeover << std::endl;
  EXPECT_EQ(b.detector->stats().deposes, 1u);
}

TEST_F(TlsFailureDetectorTest, MisconfiguredProbeNeverDeposesALiveLeader) {
  HealthEndpoint a_health(ServerTls());
  Node& a = AddNode("a", a_health.address());
  ASSERT_TRUE(
      WaitFor([&] { return a.election->IsLeader(); }, absl::Seconds(10)));
  // Wrong CA, and plaintext against TLS: both fail every probe, fast.
  // No startup allowance and no span: only the classification protects a.
  std::vector<Node*> probers;
  int n = 0;
  for (auto credentials :
       {ProbeTls("other-ca"), grpc::InsecureChannelCredentials()}) {
    FailureDetectorOptions o;
    o.credentials = credentials;
    o.leader_startup_allowance = absl::ZeroDuration();
    o.min_unresponsive_span = absl::ZeroDuration();
    probers.push_back(&AddNode(absl::StrCat("bad", n++), "127.0.0.1:2", o));
  }
  absl::SleepFor(absl::Milliseconds(1500));
  EXPECT_TRUE(a.election->IsLeader());
  for (Node* b : probers) {
    const FailureDetectorStats st = b->detector->stats();
    EXPECT_GE(st.misconfigured_probes, 5u);
    EXPECT_EQ(st.failed_probes, 0u);
    EXPECT_EQ(st.deposes, 0u);
    EXPECT_TRUE(st.misconfigured);
    EXPECT_FALSE(st.last_misconfiguration.empty());
    std::cout << "misconfigured probe: " << st.last_misconfiguration
              << std::endl;
  }
  // When the leader really dies, the same probes see a refused port: dead.
  a.detector->Stop();
  a.election->AbandonForTesting();
  a_health.Kill();
  ASSERT_TRUE(WaitFor(
      [&] {
        return probers[0]->election->IsLeader() ||
               probers[1]->election->IsLeader();
      },
      kLeaseTtl / 2));
}

}  // namespace
}  // namespace lockwarden::replication
