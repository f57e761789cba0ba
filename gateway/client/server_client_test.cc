#include "gateway/client/server_client.h"

#include <future>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "server/service/lock_server.h"
#include "server/store/memory_store.h"

namespace lockwarden::gateway {
namespace {

// A port nothing listens on: bind, read the port, close.
int DeadPort() {
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto s = b.BuildAndStart();
  s->Shutdown();
  return port;
}

std::unique_ptr<service::LockServer> StartServer(const Clock* clock, int port = 0) {
  service::LockServerOptions o;
  o.listen = absl::StrCat("127.0.0.1:", port);
  auto s = service::LockServer::Start(o, std::make_unique<store::MemoryStore>(), clock);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

grpc::Status Stat(ServerClient& client, v1::StatResponse* out) {
  std::promise<std::pair<grpc::Status, v1::StatResponse>> p;
  client.Call<v1::StatResponse>(
      [](ServerClient::Stubs& stubs, grpc::ClientContext* ctx, v1::StatResponse* resp,
         std::function<void(grpc::Status)> done) {
        v1::StatRequest req;
        req.set_gateway_id("gw");
        req.set_mon_name("x");
        stubs.monitor->async()->Stat(ctx, &req, resp, std::move(done));
      },
      [&p](const grpc::Status& s, const v1::StatResponse& r) { p.set_value({s, r}); });
  auto result = p.get_future().get();
  *out = result.second;
  return result.first;
}

TEST(ServerClientTest, ParsesServerLists) {
  auto ok = ParseServerList("a:1, b:2");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 2u);
  EXPECT_FALSE(ParseServerList("").ok());
  EXPECT_FALSE(ParseServerList("nohost").ok());
  EXPECT_FALSE(ParseServerList("host:").ok());
}

TEST(ServerClientTest, SkipsADeadServer) {
  RealClock clock;
  auto server = StartServer(&clock);
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", DeadPort()),
               absl::StrCat("127.0.0.1:", server->port())};
  ServerClient client(o);
  v1::StatResponse r;
  grpc::Status s = Stat(client, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.state() % 2, 1);
}

TEST(ServerClientTest, GivesUpAfterTheFailoverWait) {
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", DeadPort())};
  o.failover_wait_ms = 300;
  o.rpc_timeout_ms = 100;
  ServerClient client(o);
  const auto start = std::chrono::steady_clock::now();
  v1::StatResponse r;
  grpc::Status s = Stat(client, &r);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::milliseconds(3000));
}

TEST(ServerClientTest, WaitsThroughAServerRestart) {
  RealClock clock;
  const int port = DeadPort();
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", port)};
  o.failover_wait_ms = 5000;
  ServerClient client(o);
  std::unique_ptr<service::LockServer> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    server = StartServer(&clock, port);
  });
  v1::StatResponse r;
  grpc::Status s = Stat(client, &r);
  starter.join();
  EXPECT_TRUE(s.ok()) << s.error_message();
}

}  // namespace
}  // namespace lockwarden::gateway
