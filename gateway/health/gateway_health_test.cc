// GatewayHealth against a real lock server on loopback: SERVING while the
// leader answers and the identity is not drained; a DrainGateway turns it
// NOT_SERVING within a probe interval and an undrain back; a server that
// goes away turns it NOT_SERVING.
#include "gateway/health/gateway_health.h"

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "server/service/lock_server.h"
#include "server/store/memory_store.h"

namespace lockwarden::gateway::health {
namespace {

using HealthStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

class GatewayHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service::LockServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server = service::LockServer::Start(
        options, std::make_unique<store::MemoryStore>(), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    const std::string address = absl::StrCat("127.0.0.1:", server_->port());
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    lock_ = v1::LockService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
    ServerClientOptions sco;
    sco.servers = {address};
    sco.rpc_timeout_ms = 500;
    sco.failover_wait_ms = 300;
    client_ = std::make_unique<ServerClient>(sco);
    GatewayHealthOptions ho;
    ho.listen = "127.0.0.1:0";
    ho.gateway_name = "gw-a";
    ho.probe_interval_ms = 50;
    auto health = GatewayHealth::Start(ho, client_.get());
    ASSERT_TRUE(health.ok()) << health.status();
    health_ = *std::move(health);
    health_stub_ = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", health_->port()), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    health_.reset();
    client_.reset();
    server_.reset();
  }

  HealthStatus Check(const std::string& service = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckRequest r;
    r.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health_stub_->Check(&ctx, r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  }

  // Polls (bounded: 10 s) until the health service reports `want`.
  bool Eventually(HealthStatus want) {
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (absl::Now() < give_up) {
      if (Check() == want && Check(kGatewayHealthService) == want) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  grpc::Status Drain(bool drain) {
    grpc::ClientContext ctx;
    v1::DrainGatewayRequest r;
    r.set_request_id(absl::StrCat("drain-", ++seq_));
    r.set_reason("gateway health test");
    r.set_gateway_id("gw-a");
    r.set_drain(drain);
    v1::DrainGatewayResponse resp;
    return admin_->DrainGateway(&ctx, r, &resp);
  }

  FakeClock clock_;
  std::unique_ptr<service::LockServer> server_;
  std::unique_ptr<v1::LockService::Stub> lock_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<ServerClient> client_;
  std::unique_ptr<GatewayHealth> health_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
  int seq_ = 0;
};

TEST_F(GatewayHealthTest, DrainedGatewayTurnsNotServingAndBackAfterUndrain) {
  // Unknown to the server yet: ready.
  ASSERT_TRUE(Eventually(grpc::health::v1::HealthCheckResponse::SERVING))
      << health_->last_reason();
  v1::LockRequest l;
  l.set_request_id("l1");
  l.set_gateway_id("gw-a");
  l.set_file_handle("f");
  l.mutable_owner()->set_client_name("c1");
  l.mutable_owner()->set_svid(1);
  l.mutable_range()->set_length(1);
  l.set_exclusive(true);
  l.set_client_state(1);
  l.set_monitored(true);
  v1::LockResponse lr;
  grpc::ClientContext ctx;
  ASSERT_TRUE(lock_->Lock(&ctx, l, &lr).ok());

  ASSERT_TRUE(Drain(true).ok());
  EXPECT_TRUE(Eventually(grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  EXPECT_EQ(health_->last_reason(), "gateway identity is drained");
  ASSERT_TRUE(Drain(false).ok());
  EXPECT_TRUE(Eventually(grpc::health::v1::HealthCheckResponse::SERVING))
      << health_->last_reason();
}

TEST_F(GatewayHealthTest, NoLeaderIsNotServing) {
  ASSERT_TRUE(Eventually(grpc::health::v1::HealthCheckResponse::SERVING));
  server_->Shutdown();
  EXPECT_TRUE(Eventually(grpc::health::v1::HealthCheckResponse::NOT_SERVING));
  EXPECT_NE(health_->last_reason().find("no leader"), std::string::npos)
      << health_->last_reason();
}

}  // namespace
}  // namespace lockwarden::gateway::health
