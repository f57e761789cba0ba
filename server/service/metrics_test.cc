// The Prometheus endpoint of a LockServer scraped over a plain HTTP socket:
// the named series exist and follow the lock state and the RPCs served.
#include "server/service/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

// GET /metrics on 127.0.0.1:port; the whole response ("" on failure).
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (send(fd, req.data(), req.size(), 0) == static_cast<ssize_t>(req.size())) {
      char buf[8192];
      for (int i = 0; i < 10000; ++i) {  // Bounded: at most ~80 MB.
        const ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  return out;
}

class MetricsTest : public ServiceTest {
 protected:
  void SetUp() override {
    LockServerOptions options;
    options.metrics_listen = "127.0.0.1:0";
    StartServer(&store_, options);
    ASSERT_GT(server_->metrics_port(), 0);
  }
  store::MemoryStore store_;
};

TEST_F(MetricsTest, ScrapeHasTheNamedSeries) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  const std::string text = Scrape(server_->metrics_port());
  ASSERT_NE(text.find("200 OK"), std::string::npos) << text;
  for (const char* series :
       {"lockwarden_locks 1", "lockwarden_waiters 1", "lockwarden_shares 0",
        "lockwarden_monitors 0", "lockwarden_clients ", "lockwarden_pending_events ",
        "lockwarden_gateway_nsm_state{gateway=\"gw-a\"} 1",
        "lockwarden_gateway_in_grace{gateway=\"gw-a\"} 0", "lockwarden_commits_total ",
        "lockwarden_commit_batch_size_mean ", "lockwarden_commit_latency_seconds_p50 ",
        "lockwarden_grpc_requests_total{code=\"OK\",method=\"/lockwarden.v1.LockService/Lock\"} 2",
        "lockwarden_grpc_request_duration_seconds_count{method=\"/lockwarden.v1.LockService/Lock\"} 2",
        // Durable commits through the metered store: at least the two LOCKs.
        "lockwarden_store_commit_duration_seconds_count ",
        "lockwarden_store_commit_duration_seconds_bucket{le=\"0.0001\"} ",
        "lockwarden_store_commit_mutations_count ",
        "lockwarden_store_commit_mutations_bucket{le=\"1\"} ",
        "lockwarden_store_commits_failed_total 0",
        "lockwarden_gateway_oldest_event_age_seconds{gateway=\"gw-a\"} 0",
        "lockwarden_gateway_draining{gateway=\"gw-a\"} 0",
        "lockwarden_event_streams{kind=\"grants\"} 0",
        "lockwarden_event_streams{kind=\"notifications\"} 0",
        "lockwarden_grant_acks_total{outcome=\"delivered\"} 0",
        "lockwarden_notification_acks_total{outcome=\"delivered\"} 0",
        "lockwarden_notification_acks_total{outcome=\"failed\"} 0",
        "lockwarden_drained_blocking_locks_total 0",
        "lockwarden_is_leader 1", "lockwarden_leader_changes_total 0",
        "lockwarden_fencing_token 0", "lockwarden_dedup_entries ",
        "lockwarden_dedup_records_to_migrate 0"}) {
    EXPECT_NE(text.find(series), std::string::npos) << "missing " << series << " in\n" << text;
  }
}

TEST_F(MetricsTest, GraceLagAndDrainSeriesFollowTheState) {
  v1::MonRequest mon;
  mon.set_request_id(NextRequestId());
  mon.set_gateway_id("gw-a");
  mon.set_mon_name("c1");
  mon.mutable_my_id()->set_my_name("localhost");
  mon.mutable_my_id()->set_my_prog(100021);
  mon.mutable_my_id()->set_my_vers(4);
  mon.mutable_my_id()->set_my_proc(16);
  mon.set_priv(std::string(16, '\x07'));
  v1::MonResponse mr;
  ASSERT_TRUE(monitor_->Mon(Ctx().get(), mon, &mr).ok());
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::ResetGatewayRequest reset;
  reset.set_request_id(NextRequestId());
  reset.set_reason("metrics test");
  reset.set_gateway_id("gw-a");
  v1::ResetGatewayResponse rr;
  ASSERT_TRUE(admin_->ResetGateway(Ctx().get(), reset, &rr).ok());
  clock_.AdvanceMs(1500);  // The SM_NOTIFY event is now 1.5 s old.
  v1::DrainGatewayRequest drain;
  drain.set_reason("metrics test");
  drain.set_gateway_id("gw-a");
  drain.set_drain(true);
  v1::DrainGatewayResponse dr;
  ASSERT_TRUE(admin_->DrainGateway(Ctx().get(), drain, &dr).ok());
  v1::LockRequest reclaim = LockReq("c1", 1, "f1", 0, 10, true, true);
  reclaim.set_reclaim(true);
  ASSERT_EQ(Lock(reclaim), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, true)), v1::LOCK_STATUS_GRACE_PERIOD);
  const std::string text = Scrape(server_->metrics_port());
  for (const char* series :
       {"lockwarden_gateway_in_grace{gateway=\"gw-a\"} 1",
        "lockwarden_gateway_nsm_state{gateway=\"gw-a\"} 3",
        "lockwarden_gateway_oldest_event_age_seconds{gateway=\"gw-a\"} 1.5",
        "lockwarden_gateway_draining{gateway=\"gw-a\"} 1",
        "lockwarden_drained_blocking_locks_total 2"}) {
    EXPECT_NE(text.find(series), std::string::npos) << "missing " << series << " in\n" << text;
  }
}

TEST(ServerMetricsTest, UnusableListenAddressIsUnavailable) {
  auto m = ServerMetrics::Start("256.0.0.1:99999", MetricsSources{});
  EXPECT_FALSE(m.ok());
}

}  // namespace
}  // namespace lockwarden::service::testing
