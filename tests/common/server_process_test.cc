// Tests of the process-level test helpers against the real server binary.
#include "tests/common/server_process.h"

#include <signal.h>

#include <set>

#include "common/status_matchers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/stubs.h"

namespace lockwarden::testing {
namespace {

TEST(ServerProcessTest, StartsOnEphemeralPortAndServes) {
  auto server = ServerProcess::Start(ServerProcessOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->port(), 0);
  EXPECT_TRUE((*server)->running());
  Stubs stubs((*server)->NewChannel());
  auto locks = ListAllLocks(*stubs.admin);
  ASSERT_TRUE(locks.ok()) << locks.status();
  EXPECT_TRUE(locks->empty());
}

TEST(ServerProcessTest, KillThenRestartOnSameDataDirKeepsLocks) {
  auto server = ServerProcess::Start(ServerProcessOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  RequestIdGenerator ids("sp");
  {
    Stubs stubs((*server)->NewChannel());
    v1::LockRequest req;
    req.set_request_id(ids.Next());
    req.set_gateway_id("gw-a");
    req.set_file_handle("fh1");
    req.mutable_owner()->set_client_name("c1");
    req.mutable_owner()->set_svid(1);
    req.mutable_range()->set_length(10);
    req.set_exclusive(true);
    v1::LockResponse resp;
    auto ctx = ContextWithDeadline(absl::Seconds(10));
    ASSERT_TRUE(stubs.lock->Lock(ctx.get(), req, &resp).ok());
    ASSERT_EQ(resp.status(), v1::LOCK_STATUS_GRANTED);
  }
  const pid_t old_pid = (*server)->pid();
  LW_ASSERT_OK((*server)->Kill(SIGKILL));
  EXPECT_FALSE((*server)->running());
  LW_ASSERT_OK((*server)->Restart());
  EXPECT_NE((*server)->pid(), old_pid);
  Stubs stubs((*server)->NewChannel());
  auto locks = ListAllLocks(*stubs.admin);
  ASSERT_TRUE(locks.ok()) << locks.status();
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_EQ((*locks)[0].owner().client_name(), "c1");
}

TEST(ServerProcessTest, TerminateExitsCleanly) {
  auto server = ServerProcess::Start(ServerProcessOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  auto code = (*server)->Terminate();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_FALSE((*server)->running());
}

TEST(ServerProcessTest, BadFlagFailsWithTheServerLog) {
  ServerProcessOptions o;
  o.extra_args = {"--no-such-flag"};
  auto server = ServerProcess::Start(o);
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("no-such-flag"), absl::string_view::npos)
      << server.status();
}

TEST(ServerProcessTest, EtcdMaxTxnOpsOutOfRangeIsRefused) {
  // Beyond what one commit batch may hold (store::kEtcdMaxTxnOpsLimit), and 0.
  for (const char* value : {"0", "4097"}) {
    ServerProcessOptions o;
    o.extra_args = {absl::StrCat("--etcd-max-txn-ops=", value)};
    auto server = ServerProcess::Start(o);
    ASSERT_FALSE(server.ok()) << value;
    EXPECT_NE(server.status().message().find("etcd-max-txn-ops"),
              absl::string_view::npos)
        << server.status();
  }
}

TEST(ServerProcessTest, ProcessRssIsReadable) {
  auto rss = ProcessRssBytes(getpid());
  ASSERT_TRUE(rss.ok()) << rss.status();
  EXPECT_GT(*rss, 0u);
}

TEST(RequestIdGeneratorTest, IdsAreUnique) {
  RequestIdGenerator a("x"), b("x");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(seen.insert(a.Next()).second);
    EXPECT_TRUE(seen.insert(b.Next()).second);
  }
}

}  // namespace
}  // namespace lockwarden::testing
