// The lockwarden-gateway binary as the conformance harness uses it: start
// next to a real lockwarden-server, wait for the ready line, talk NLM and
// portmap to it with libtirpc, stop it with SIGTERM.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway_process.h"
#include "gateway/nlm/nlm_test_client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
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
  EXPECT_EQ(GetPort(portmap, 100024, 1, false), static_cast<u_int>(ports->nsm));
  EXPECT_EQ(GetPort(portmap, 100024, 1, true), static_cast<u_int>(ports->nsm));

  // NLM through the binary to the server.
  CLIENT* udp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, false);
  CLIENT* tcp = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  ASSERT_TRUE(udp && tcp);
  EXPECT_EQ(
      clnt_call(udp, 0, XdrVoid(), nullptr, XdrVoid(), nullptr, nlm::kTimeout),
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

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(GatewayBinaryTest, SigtermLetsACallInFlightAnswerBeforeExiting) {
  // The server is down, so a LOCK is held for --failover-wait-ms and then
  // answered DENIED_NOLOCKS; SIGTERM arrives while it is held.
  const uint16_t dead = FreePort();
  const std::string log = TempPath("drain.log");
  GatewayProcess gw({"--name=gw.bin", absl::StrCat("--server=127.0.0.1:", dead),
                     "--bind=127.0.0.1", "--nlm-port=0", "--nsm-port=0",
                     "--portmap-port=0", "--failover-wait-ms=1500",
                     "--rpc-timeout-ms=100", "--shutdown-timeout-ms=5000"},
                    log);
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  CLIENT* c = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  ASSERT_NE(c, nullptr);
  std::future<nlm4_stats> lock =
      std::async(std::launch::async, [c] { return Lock4(c, Spec()); });
  absl::SleepFor(absl::Milliseconds(400));
  const absl::Time signalled = absl::Now();
  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
  // The answer came out before the transport closed, and the exit waited
  // for it (about the rest of the failover wait).
  EXPECT_EQ(lock.get(), NLM4_DENIED_NOLOCKS);
  EXPECT_GE(absl::Now() - signalled, absl::Milliseconds(500));
  clnt_destroy(c);
  const std::string text = Slurp(log);
  EXPECT_TRUE(absl::StrContains(text, "drained=true")) << text;
}

TEST(GatewayBinaryTest, ShutdownTimeoutBoundsTheDrain) {
  const uint16_t dead = FreePort();
  const std::string log = TempPath("drain-bounded.log");
  GatewayProcess gw({"--name=gw.bin", absl::StrCat("--server=127.0.0.1:", dead),
                     "--bind=127.0.0.1", "--nlm-port=0", "--nsm-port=0",
                     "--portmap-port=0", "--failover-wait-ms=20000",
                     "--rpc-timeout-ms=100", "--shutdown-timeout-ms=300"},
                    log);
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  CLIENT* c = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
  ASSERT_NE(c, nullptr);
  // No answer comes: the connection closes under the call (a client's
  // lockd retransmits, to the next gateway).
  std::future<clnt_stat> lock = std::async(std::launch::async, [c] {
    Spec spec;
    nlm4_lockargs args = nlm::LockArgs4(spec);
    nlm4_res res{};
    const clnt_stat st =
        clnt_call(c, NLMPROC4_LOCK, XdrProc(xdr_nlm4_lockargs),
                  reinterpret_cast<caddr_t>(&args), XdrProc(xdr_nlm4_res),
                  reinterpret_cast<caddr_t>(&res), nlm::kTimeout);
    if (st == RPC_SUCCESS) XdrFree(XdrProc(xdr_nlm4_res), &res);
    return st;
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time signalled = absl::Now();
  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(5));
  EXPECT_NE(lock.get(), RPC_SUCCESS);
  clnt_destroy(c);
  const std::string text = Slurp(log);
  EXPECT_TRUE(absl::StrContains(text, "drained=false")) << text;
}

TEST(GatewayBinaryTest, ConfigFileCarriesEveryFlagAndJsonLogsAreJson) {
  const uint16_t dead = FreePort();
  const std::string config = TempPath("gateway.toml");
  {
    std::ofstream out(config);
    out << "name = \"gw.config\"\n"
        << "server = \"127.0.0.1:" << dead << "\"\n"
        << "bind = \"127.0.0.1\"\n"
        << "nlm-port = 0\nnsm-port = 0\nportmap-port = 0\n"
        << "metrics-listen = \"127.0.0.1:0\"\n"
        << "privileged-source-port = false\n"
        << "shutdown-timeout-ms = 1000\n"
        << "log-format = \"json\"\n";
  }
  const std::string log = TempPath("config.log");
  GatewayProcess gw({"--config=" + config}, log);
  std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
  ASSERT_TRUE(ports.has_value());
  EXPECT_GT(ports->metrics, 0);
  EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
  int lines = 0;
  bool ready_seen = false;
  for (absl::string_view line : absl::StrSplit(Slurp(log), '\n')) {
    if (line.empty()) continue;
    ++lines;
    nlohmann::json j = nlohmann::json::parse(std::string(line), nullptr,
                                             /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << "not a JSON object: " << line;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("event"))
        << line;
    if (j.value("event", "") == "gateway_ready") {
      ready_seen = true;
      EXPECT_EQ(j.value("name", ""), "gw.config");
      EXPECT_EQ(j.value("metrics_port", 0), ports->metrics);
    }
  }
  EXPECT_GT(lines, 3);
  EXPECT_TRUE(ready_seen);
}

TEST(GatewayBinaryTest, TlsFlagsFromTheConfigFileAreChecked) {
  const std::string config = TempPath("gateway-tls.toml");
  {
    std::ofstream out(config);
    out << "name = \"gw.config\"\nserver = \"127.0.0.1:1\"\n"
        << "nlm-port = 0\nnsm-port = 0\nportmap-port = 0\n"
        << "tls-ca = \"/nonexistent/ca.pem\"\n";
  }
  const std::string log = TempPath("config-tls.log");
  GatewayProcess gw({"--config=" + config}, log);
  EXPECT_FALSE(gw.WaitReady(absl::Seconds(10)).has_value());
  EXPECT_EQ(gw.WaitExit(absl::Seconds(10)), 1);
  EXPECT_TRUE(absl::StrContains(Slurp(log), "--tls-ca: cannot open"))
      << Slurp(log);
}

}  // namespace
}  // namespace lockwarden::gateway
