// Conformance with the real rpcinfo(8): the embedded portmapper serves
// 127.0.0.1:111 inside a private network namespace (so it cannot clash
// with a host rpcbind or other tests), and rpcinfo must list and ping it.
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "common/status_matchers.h"
#include "gateway/portmap/portmapper.h"
#include "gateway/rpc/transport.h"
#include "gateway/xdr/nlm_prot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

// Runs a shell command (bounded by `timeout`) and returns its stdout.
std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* p = popen(("timeout 20 " + command + " 2>&1").c_str(), "r");
  if (p == nullptr) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

TEST(RpcinfoConformanceTest, RpcinfoListsAndPingsTheEmbeddedPortmapper) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  if (RunCommand("command -v rpcinfo").empty()) GTEST_SKIP() << "no rpcinfo";
  // Only this test binary's process moves; threads started later follow.
  ASSERT_EQ(unshare(CLONE_NEWNET), 0);
  ASSERT_EQ(system("ip link set lo up"), 0);

  Dispatcher dispatcher;
  Portmapper portmapper;
  LW_ASSERT_OK(portmapper.RegisterProcedures(dispatcher));
  LW_ASSERT_OK(portmapper.AddSelf(kPortmapPort));
  LW_ASSERT_OK(portmapper.AddService(NLM_PROG, NLM4_VERS, 4045));
  IoThreadPool pool(2);
  RpcServer server(pool.context(), dispatcher,
                   RpcServerOptions{.bind_address = "::",
                                    .port = kPortmapPort});
  LW_ASSERT_OK(server.Start());

  // PMAP v2 DUMP.
  const std::string dump = RunCommand("rpcinfo -p 127.0.0.1");
  EXPECT_THAT(dump, ContainsRegex("100000 +2 +tcp +111"));
  EXPECT_THAT(dump, ContainsRegex("100021 +4 +udp +4045"));
  EXPECT_THAT(dump, ContainsRegex("100021 +4 +tcp +4045"));
  // RPCBIND v4 DUMP: netids and universal addresses.
  const std::string rpcb = RunCommand("rpcinfo 127.0.0.1");
  EXPECT_THAT(rpcb, ContainsRegex("100021 +4 +udp6 +::1?\\.15\\.205"));
  EXPECT_THAT(rpcb, ContainsRegex("100021 +4 +tcp +127\\.0\\.0\\.1\\.15\\.205"));
  // NULL pings over both transports and a GETPORT lookup.
  EXPECT_THAT(RunCommand("rpcinfo -u 127.0.0.1 100000 2"), HasSubstr("ready and waiting"));
  EXPECT_THAT(RunCommand("rpcinfo -t 127.0.0.1 100000 4"), HasSubstr("ready and waiting"));
  EXPECT_THAT(RunCommand("rpcinfo -l 127.0.0.1 100021 4"), HasSubstr("100021"));
  server.Stop();
  pool.Stop();
}

}  // namespace
}  // namespace lockwarden::gateway
