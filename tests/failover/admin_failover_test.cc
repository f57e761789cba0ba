// The admin API of a replicated lockwarden (1-member etcd, 3 servers):
//
//   StandbyAnswersGetServerStatusItself  every standby reports its own role,
//       its leader and the leader's fencing token, its warm copy (applied
//       revision, lag 0 once caught up, healthy) and its probes; every
//       other admin call is still redirected to the leader; the same
//       figures are on its --replication-metrics-listen endpoint.
//   RetriedStepDownDoesNotDeposeTheNewLeader  StepDown with request id X
//       hands over to a standby; the same request retried (a lost reply)
//       at the new leader changes nothing; a new request id steps it down.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"
#include "tests/failover/ha_cluster.h"

namespace lockwarden::testing {
namespace {

constexpr absl::Duration kCallTimeout = absl::Seconds(5);
constexpr size_t kMetricsBytesMax = 1 << 20;

// GET /metrics from 127.0.0.1:port (HTTP/1.0: the server closes).
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) ==
        static_cast<ssize_t>(sizeof(req) - 1)) {
      char buf[4096];
      ssize_t n;
      while (out.size() < kMetricsBytesMax &&
             (n = read(fd, buf, sizeof(buf))) > 0) {
        out.append(buf, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  return out;
}

// The port server i logged for --replication-metrics-listen (0 if none).
int MetricsPort(const HaCluster& cluster, int i) {
  const std::string log = cluster.LogTail(i, 1 << 20);
  const size_t at = log.find("replication_metrics_listening");
  if (at == std::string::npos) return 0;
  const size_t p = log.find("port=", at);
  int port = 0;
  if (p == std::string::npos ||
      !absl::SimpleAtoi(log.substr(p + 5, log.find_first_of(" \n", p) - p - 5),
                        &port)) {
    return 0;
  }
  return port;
}

class AdminFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HaClusterOptions options;
    options.etcd_members = 1;
    options.extra_args = {"--replication-metrics-listen=127.0.0.1:0"};
    auto cluster = HaCluster::Start(options);
    ASSERT_THAT(cluster, IsOk());
    cluster_ = *std::move(cluster);
  }

  absl::StatusOr<v1::GetServerStatusResponse> Status(int i) {
    Stubs stubs(cluster_->Channel(i));
    v1::GetServerStatusResponse r;
    auto ctx = ContextWithDeadline(kCallTimeout);
    const grpc::Status st = stubs.admin->GetServerStatus(
        ctx.get(), v1::GetServerStatusRequest(), &r);
    if (!st.ok()) return FromGrpc(st);
    return r;
  }

  grpc::Status StepDown(int i, const std::string& request_id,
                        v1::StepDownResponse* response) {
    Stubs stubs(cluster_->Channel(i));
    v1::StepDownRequest request;
    request.set_request_id(request_id);
    request.set_reason("admin_failover_test");
    auto ctx = ContextWithDeadline(kCallTimeout);
    return stubs.admin->StepDown(ctx.get(), request, response);
  }

  // Takes one lock through the leader, so the standbys have state to copy.
  void LockSomething(int leader, const std::string& file) {
    Stubs stubs(cluster_->Channel(leader));
    v1::LockRequest request;
    request.set_request_id(absl::StrCat("admin-failover-", file));
    request.set_gateway_id("gw-admin");
    request.set_file_handle(file);
    request.mutable_owner()->set_client_name("client");
    request.mutable_owner()->set_svid(1);
    request.mutable_range()->set_length(1);
    request.set_exclusive(true);
    v1::LockResponse response;
    auto ctx = ContextWithDeadline(kCallTimeout);
    const grpc::Status st = stubs.lock->Lock(ctx.get(), request, &response);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  std::unique_ptr<HaCluster> cluster_;
};

TEST_F(AdminFailoverTest, StandbyAnswersGetServerStatusItself) {
  absl::StatusOr<int> leader = cluster_->WaitForLeader(kLeaderWaitMax);
  ASSERT_THAT(leader, IsOk());
  LockSomething(*leader, "status-file");
  absl::StatusOr<v1::GetServerStatusResponse> lead = Status(*leader);
  ASSERT_THAT(lead, IsOk());
  EXPECT_EQ(lead->role(), v1::SERVER_ROLE_LEADER);
  EXPECT_FALSE(lead->has_replica());
  EXPECT_EQ(lead->lock_count(), 1u);
  absl::SleepFor(absl::Milliseconds(500));  // Standbys probe the leader.
  for (int i = 0; i < cluster_->size(); ++i) {
    if (i == *leader) continue;
    SCOPED_TRACE(absl::StrCat("standby s", i));
    absl::StatusOr<v1::GetServerStatusResponse> st = Status(i);
    ASSERT_THAT(st, IsOk());
    std::printf("s%d: %s\n", i, st->ShortDebugString().c_str());
    EXPECT_EQ(st->role(), v1::SERVER_ROLE_STANDBY);
    EXPECT_EQ(st->server_id(), absl::StrCat("s", i));
    EXPECT_EQ(st->leader_address(), cluster_->address(*leader));
    EXPECT_EQ(st->fencing_token(), lead->fencing_token());
    EXPECT_EQ(st->store_backend(), v1::STORE_BACKEND_ETCD);
    EXPECT_EQ(st->store_health(), v1::STORE_HEALTH_OK)
        << st->store_health_detail();
    ASSERT_TRUE(st->has_replica());
    EXPECT_TRUE(st->replica().healthy()) << st->replica().detail();
    EXPECT_GT(st->replica().applied_revision(), 0);
    EXPECT_GE(st->replica().store_revision(), st->replica().applied_revision());
    EXPECT_EQ(st->replica().lag_revisions(), 0);
    EXPECT_GE(st->replica().probes(), 1u);
    EXPECT_EQ(st->replica().misconfigured_probes(), 0u);
    EXPECT_FALSE(st->replica().probe_misconfigured());
    // Everything else is still the leader's.
    Stubs stubs(cluster_->Channel(i));
    v1::ListLocksResponse locks;
    auto ctx = ContextWithDeadline(kCallTimeout);
    const grpc::Status redirected =
        stubs.admin->ListLocks(ctx.get(), v1::ListLocksRequest(), &locks);
    EXPECT_EQ(redirected.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    auto trailer =
        ctx->GetServerTrailingMetadata().find("lockwarden-leader-address");
    ASSERT_NE(trailer, ctx->GetServerTrailingMetadata().end());
    EXPECT_EQ(std::string(trailer->second.data(), trailer->second.size()),
              cluster_->address(*leader));
    // Prometheus, on the standby's own endpoint.
    const int port = MetricsPort(*cluster_, i);
    ASSERT_GT(port, 0) << cluster_->LogTail(i);
    const std::string metrics = Scrape(port);
    EXPECT_TRUE(
        absl::StrContains(metrics, "lockwarden_replication_is_leader 0"))
        << metrics;
    EXPECT_TRUE(absl::StrContains(metrics, "lockwarden_replica_healthy 1"))
        << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics, "lockwarden_replication_probe_misconfigured 0"))
        << metrics;
    EXPECT_TRUE(absl::StrContains(
        metrics,
        "lockwarden_replication_probes_total{outcome=\"misconfigured\"} 0"))
        << metrics;
  }
  const std::string leader_metrics = Scrape(MetricsPort(*cluster_, *leader));
  EXPECT_TRUE(
      absl::StrContains(leader_metrics, "lockwarden_replication_is_leader 1"))
      << leader_metrics;
}

TEST_F(AdminFailoverTest, RetriedStepDownDoesNotDeposeTheNewLeader) {
  absl::StatusOr<int> first = cluster_->WaitForLeader(kLeaderWaitMax);
  ASSERT_THAT(first, IsOk());
  v1::StepDownResponse response;
  grpc::Status st = StepDown(*first, "step-down-x", &response);
  ASSERT_TRUE(st.ok()) << st.error_message();
  absl::StatusOr<int> second = cluster_->WaitForLeader(kLeaderWaitMax, *first);
  ASSERT_THAT(second, IsOk());
  absl::StatusOr<v1::GetServerStatusResponse> before = Status(*second);
  ASSERT_THAT(before, IsOk());
  ASSERT_EQ(before->role(), v1::SERVER_ROLE_LEADER);

  // The reply was "lost": the same request again, at the new leader.
  st = StepDown(*second, "step-down-x", &response);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(response.new_leader_address(), cluster_->address(*second));
  absl::SleepFor(absl::Milliseconds(500));
  absl::StatusOr<v1::GetServerStatusResponse> after = Status(*second);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->role(), v1::SERVER_ROLE_LEADER)
      << "the retry deposed the new leader";
  EXPECT_EQ(after->fencing_token(), before->fencing_token());
  EXPECT_TRUE(cluster_->Serving(*second));

  // A new request is a new step-down.
  st = StepDown(*second, "step-down-y", &response);
  ASSERT_TRUE(st.ok()) << st.error_message();
  absl::StatusOr<int> third = cluster_->WaitForLeader(kLeaderWaitMax, *second);
  ASSERT_THAT(third, IsOk());
  absl::StatusOr<v1::GetServerStatusResponse> last = Status(*third);
  ASSERT_THAT(last, IsOk());
  EXPECT_GT(last->fencing_token(), before->fencing_token());
}

}  // namespace
}  // namespace lockwarden::testing
