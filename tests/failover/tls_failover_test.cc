// Failover with TLS on the servers' listeners (mutual TLS): the standbys'
// health probes use the server's own TLS credentials (--tls-ca, and its
// certificate as the client certificate because the servers require one),
// so a kill -9 of the leader is detected by the probes (well under a
// second), not by the 5 s lease. A probe that trusts the wrong CA
// (--probe-tls-ca) fails every handshake with a live leader: that leader
// must never be deposed, the misconfiguration is logged, and a leader that
// really dies (its port refuses) is still replaced.
//
// 1-member etcd, 3 lockwarden-server processes on loopback; the PKI is made
// with openssl at run time (tests/common/test_pki.h).
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/common/test_pki.h"
#include "tests/failover/ha_cluster.h"

namespace lockwarden::testing {
namespace {

// The servers' default lease: probes must beat it by far.
constexpr absl::Duration kLeaseTtl = absl::Seconds(5);
// Standbys give a leader they never saw serving this long (failure_detector.h),
// so a misconfigured probe has had every chance to depose it by then.
constexpr absl::Duration kStartupAllowance = absl::Seconds(2);

class TlsFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.MakeCa("ca");
    pki_.MakeCa("other-ca");
    // No extendedKeyUsage: the same certificate serves and, for the
    // probes and this test, identifies a client.
    pki_.MakeLeaf("server", "ca", "lockwarden-server",
                  "subjectAltName=IP:127.0.0.1");
    ASSERT_TRUE(pki_.ok());
  }

  std::unique_ptr<HaCluster> Start(const std::vector<std::string>& more_args) {
    HaClusterOptions options;
    options.etcd_members = 1;
    options.extra_args = {
        absl::StrCat("--tls-cert=", pki_.Path("server.pem")),
        absl::StrCat("--tls-key=", pki_.Path("server.key")),
        absl::StrCat("--tls-ca=", pki_.Path("ca.pem")),
        "--tls-require-client-cert=true",
    };
    for (const std::string& a : more_args) options.extra_args.push_back(a);
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.Pem("ca.pem");
    ssl.pem_cert_chain = pki_.Pem("server.pem");
    ssl.pem_private_key = pki_.Pem("server.key");
    options.client_credentials = grpc::SslCredentials(ssl);
    auto cluster = HaCluster::Start(options);
    EXPECT_THAT(cluster, IsOk());
    return cluster.ok() ? *std::move(cluster) : nullptr;
  }

  // kill -9 of the leader; returns the time until another server SERVES.
  absl::StatusOr<absl::Duration> KillLeader(HaCluster& cluster, int leader) {
    const absl::Time killed = absl::Now();
    if (absl::Status s = cluster.Signal(leader, SIGKILL); !s.ok()) return s;
    absl::StatusOr<int> next = cluster.WaitForLeader(kLeaderWaitMax, leader);
    if (!next.ok()) return next.status();
    return absl::Now() - killed;
  }

  TestPki pki_{"tls-failover-pki"};
};

TEST_F(TlsFailoverTest, KillNineIsDetectedByTlsProbesNotTheLease) {
  std::unique_ptr<HaCluster> cluster = Start({});
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<int> leader = cluster->WaitForLeader(kLeaderWaitMax);
  ASSERT_THAT(leader, IsOk());
  absl::SleepFor(absl::Seconds(1));  // The standbys see it serving.
  for (int i = 0; i < cluster->size(); ++i) {
    const std::string log = cluster->LogTail(i, 1 << 20);
    EXPECT_TRUE(absl::StrContains(log, "probe_tls=true")) << log;
    EXPECT_FALSE(absl::StrContains(log, "leader_probe_misconfigured")) << log;
  }
  absl::StatusOr<absl::Duration> takeover = KillLeader(*cluster, *leader);
  ASSERT_THAT(takeover, IsOk());
  std::printf("TLS: kill -9 -> new leader SERVING after %.0f ms\n",
              absl::ToDoubleMilliseconds(*takeover));
  // ~3 probes 100 ms apart; the lease would take 5 s.
  EXPECT_LT(*takeover, kLeaseTtl / 2);
}

TEST_F(TlsFailoverTest, WrongCaProbeNeverDeposesALiveLeader) {
  std::unique_ptr<HaCluster> cluster =
      Start({absl::StrCat("--probe-tls-ca=", pki_.Path("other-ca.pem"))});
  ASSERT_NE(cluster, nullptr);
  absl::StatusOr<int> leader = cluster->WaitForLeader(kLeaderWaitMax);
  ASSERT_THAT(leader, IsOk());
  // Every probe fails its handshake; past the startup allowance nothing
  // but the classification keeps the standbys from deposing the leader.
  absl::SleepFor(kStartupAllowance + absl::Seconds(1));
  absl::StatusOr<int> still = cluster->WaitForLeader(absl::Seconds(2));
  ASSERT_THAT(still, IsOk());
  EXPECT_EQ(*still, *leader) << "a misconfigured probe deposed the leader";
  const std::string leader_log = cluster->LogTail(*leader, 1 << 20);
  EXPECT_FALSE(absl::StrContains(leader_log, "election_lost")) << leader_log;
  int reporting = 0;
  for (int i = 0; i < cluster->size(); ++i) {
    if (i == *leader) continue;
    const std::string log = cluster->LogTail(i, 1 << 20);
    EXPECT_FALSE(absl::StrContains(log, "leader_suspected")) << log;
    if (absl::StrContains(log, "ERROR [server] leader_probe_misconfigured"))
      ++reporting;
  }
  EXPECT_EQ(reporting, cluster->size() - 1)
      << cluster->LogTail(*leader == 0 ? 1 : 0);
  // A leader that really dies refuses connections: dead, whatever the CA.
  absl::StatusOr<absl::Duration> takeover = KillLeader(*cluster, *leader);
  ASSERT_THAT(takeover, IsOk());
  std::printf("wrong probe CA: kill -9 -> new leader SERVING after %.0f ms\n",
              absl::ToDoubleMilliseconds(*takeover));
  EXPECT_LT(*takeover, kLeaseTtl + absl::Seconds(2));
}

}  // namespace
}  // namespace lockwarden::testing
