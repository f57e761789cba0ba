// The lockwarden-gateway binary as the conformance harness uses it: start
// next to a real lockwarden-server, wait for the ready line, talk NLM and
// portmap to it with libtirpc, stop it with SIGTERM.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rpc/rpc.h>
#include <rpc/pmap_prot.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/nlm/nlm_test_client.h"
#include "gtest/gtest.h"
#include "gateway/gateway_process.h"
#include "tests/common/server_process.h"

namespace lockwarden::gateway {
namespace {

using nlm::Lock4;
using nlm::Spec;
using nlm::Test4;

TEST(GatewayBinaryTest, ServesNlmAndPortmapThenStopsOnSigterm) {
  auto server = testing::ServerProcess::Start(testing::ServerProcessOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t portmap = FreePort();
  ASSERT_NE(portmap, 0);
  GatewayProcess gw({"--name=gw.bin", "--server=" + (*server)->address(),
                     "--bind=127.0.0.1", "--nlm-port=0", "--nsm-port=0",
                     absl::StrCat("--portmap-port=", portmap)});
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  EXPECT_GT(ports->nlm, 0);
  EXPECT_GT(ports->nsm, 0);
  EXPECT_EQ(ports->portmap, portmap);

  // The embedded portmapper knows NLM 1/3/4 and NSM 1 on udp and tcp.
  for (uint32_t vers : {1u, 3u, 4u}) {
    EXPECT_EQ(GetPort(portmap, NLM_PROG, vers, false),
              static_cast<u_int>(ports->nlm));
    EXPECT_EQ(GetPort(portmap, NLM_PROG, vers, true),
              static_cast<u_int>(ports->nlm));
  }
  EXPECT_EQ(GetPort(portmap, 100024, 1, false),
            static_cast<u_int>(ports->nsm));
  EXPECT_EQ(GetPort(portmap, 100024, 1, true), static_cast<u_int>(ports->nsm));

  // NLM through the binary to the server.
  CLIENT* udp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, false);
  CLIENT* tcp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  ASSERT_TRUE(udp && tcp);
  EXPECT_EQ(clnt_call(udp, 0, XdrVoid(), nullptr, XdrVoid(), nullptr,
                      nlm::kTimeout),
            RPC_SUCCESS);
  Spec a;
  EXPECT_EQ(Lock4(tcp, a), NLM4_GRANTED);
  Spec b = a;
  b.svid = 2;
  EXPECT_EQ(Test4(udp, b), NLM4_DENIED);
  clnt_destroy(udp);
  clnt_destroy(tcp);

  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
}

TEST(GatewayBinaryTest, AnswersDeniedNolocksWhenTheServerIsDown) {
  // A port nothing listens on.
  const uint16_t dead = FreePort();
  GatewayProcess gw({"--name=gw.bin", absl::StrCat("--server=127.0.0.1:", dead),
                     "--bind=127.0.0.1", "--nlm-port=0", "--nsm-port=0",
                     "--portmap-port=0", "--failover-wait-ms=300",
                     "--rpc-timeout-ms=100"});
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  EXPECT_EQ(ports->portmap, 0);
  CLIENT* c = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Lock4(c, Spec()), NLM4_DENIED_NOLOCKS);
  clnt_destroy(c);
  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
}

TEST(GatewayBinaryTest, RefusesToStartWithoutAName) {
  GatewayProcess gw({"--server=127.0.0.1:1", "--nlm-port=0", "--nsm-port=0",
                     "--portmap-port=0"});
  EXPECT_FALSE(gw.WaitReady(absl::Seconds(10)).has_value());
  EXPECT_NE(gw.WaitExit(absl::Seconds(10)), 0);
}

}  // namespace
}  // namespace lockwarden::gateway
