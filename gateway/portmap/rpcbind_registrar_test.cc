// RpcbindRegistrar against the host's rpcbind. The build machine normally
// runs none: then registration must fail fast with a clear Unavailable.
// When an rpcbind does run, a mapping of a private program number is
// registered, looked up and removed.
#include "gateway/portmap/rpcbind_registrar.h"

#include <netconfig.h>
#include <rpc/rpc.h>
#include <rpc/rpcb_clnt.h>
#include <unistd.h>

#include <chrono>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::lockwarden::testing::StatusIs;

// A program number in the "transient" range 0x40000000-0x5fffffff, unique
// per process so concurrent runs do not collide.
uint32_t PrivateProgram() { return 0x40000000u + (getpid() & 0xffffff); }

bool HostRpcbindRuns() {
  netconfig* nconf = getnetconfigent("udp");
  if (nconf == nullptr) return false;
  netbuf addr{};
  char buf[128];
  addr.buf = buf;
  addr.maxlen = sizeof(buf);
  // Asks for rpcbind's own registration: it exists iff rpcbind answers.
  const bool ok = rpcb_getaddr(100000, 4, nconf, &addr, "127.0.0.1");
  freenetconfigent(nconf);
  return ok;
}

TEST(RpcbindRegistrarTest, RejectsUnknownNetid) {
  RpcbindRegistrar r;
  EXPECT_THAT(r.Register(PrivateProgram(), 1, "sctp", 1234),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RpcbindRegistrarTest, RegistersWithHostRpcbindOrFailsClearly) {
  RpcbindRegistrar r;
  const uint32_t prog = PrivateProgram();
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = r.Register(prog, 1, "udp", 4045);
  if (!HostRpcbindRuns()) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_NE(s.message().find("is rpcbind running?"),
              absl::string_view::npos)
        << s;
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              std::chrono::seconds(30));
    return;
  }
  LW_ASSERT_OK(s);
  netconfig* nconf = getnetconfigent("udp");
  ASSERT_NE(nconf, nullptr);
  char buf[128];
  netbuf addr{sizeof(buf), 0, buf};
  EXPECT_TRUE(rpcb_getaddr(prog, 1, nconf, &addr, "127.0.0.1"));
  LW_EXPECT_OK(r.Unregister(prog, 1, "udp"));
  EXPECT_FALSE(rpcb_getaddr(prog, 1, nconf, &addr, "127.0.0.1"));
  freenetconfigent(nconf);
}

}  // namespace
}  // namespace lockwarden::gateway
