// Runs the real lockwardenctl binary against FakeLockwardenServer and checks
// what reached the server (request fields), what was printed (table and
// JSON) and the exit codes (0 success, 1 denied, 2 errors), the leader
// redirect and connection errors.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/ctl_runner.h"
#include "cli/fake_lockwarden_server.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lockwarden::cli {
namespace {

using ::lockwarden::cli::testing::ClosedPort;
using ::lockwarden::cli::testing::CtlResult;
using ::lockwarden::cli::testing::FakeLockwardenServer;
using ::lockwarden::cli::testing::ParseSingleJsonObject;
using ::lockwarden::cli::testing::RecordedRequests;
using ::lockwarden::cli::testing::RunCtl;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = FakeLockwardenServer::Start();
    ASSERT_NE(server_, nullptr);
  }

  CtlResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), absl::StrCat("--server=", server_->address()));
    return RunCtl(args);
  }

  std::unique_ptr<FakeLockwardenServer> server_;
};

TEST_F(CliTest, LockFlagsReachTheRequestAndGrantedExitsZero) {
  CtlResult run = Ctl({"lock", "--fh=0a0B", "--client=nfs1", "--svid=7",
                       "--oh=ff00", "--offset=10", "--length=20", "--shared",
                       "--state=3", "--gateway-id=gw9"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "status:         GRANTED\n")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "fencing_token:  42\n")) << run.out;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.locks.size(), 1u);
  const lockwarden::v1::LockRequest& request = recorded.locks[0];
  EXPECT_EQ(request.file_handle(), std::string("\x0a\x0b"));
  EXPECT_EQ(request.owner().client_name(), "nfs1");
  EXPECT_EQ(request.owner().svid(), 7u);
  EXPECT_EQ(request.owner().oh(), std::string("\xff\x00", 2));
  EXPECT_EQ(request.range().offset(), 10u);
  EXPECT_EQ(request.range().length(), 20u);
  EXPECT_FALSE(request.exclusive());
  EXPECT_FALSE(request.block());
  EXPECT_FALSE(request.reclaim());
  EXPECT_EQ(request.client_state(), 3);
  EXPECT_EQ(request.gateway_id(), "gw9");
  EXPECT_TRUE(absl::StartsWith(request.request_id(), "ctl-"))
      << request.request_id();
}

TEST_F(CliTest, DefaultsAreExclusiveToEofUnderTheCtlGatewayAndIdsAreUnique) {
  for (int i = 0; i < 3; ++i) {
    CtlResult run = Ctl({"lock", "--fh=01", "--client=c", "--reclaim"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
  }
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.locks.size(), 3u);
  std::set<std::string> ids;
  for (const auto& request : recorded.locks) {
    EXPECT_TRUE(request.exclusive());
    EXPECT_TRUE(request.reclaim());
    EXPECT_EQ(request.range().offset(), 0u);
    EXPECT_EQ(request.range().length(), 0u);
    EXPECT_EQ(request.gateway_id(), "lockwardenctl");
    EXPECT_FALSE(request.request_id().empty());
    ids.insert(request.request_id());
  }
  EXPECT_EQ(ids.size(), 3u) << "request ids must be unique per invocation";
}

TEST_F(CliTest, DeniedLockPrintsTheHolderAndExitsOne) {
  CtlResult run = Ctl({"lock", "--fh=dead", "--client=c"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "status:              DENIED")) << run.out;
  EXPECT_TRUE(absl::StrContains(
      run.out, "conflicting_holder:  holder/9/- holds EX 0+EOF via gw1"))
      << run.out;
}

TEST_F(CliTest, LockJsonIsOneObjectWithTheRequestId) {
  CtlResult run = Ctl({"--output=json", "lock", "--fh=0a", "--client=c"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["operation"], "lock");
  EXPECT_EQ(json["status"], "LOCK_STATUS_GRANTED");
  EXPECT_EQ(json["fencing_token"], 42);
  EXPECT_EQ(json["server"], server_->address());
  EXPECT_EQ(json["request_id"], server_->recorded().locks.at(0).request_id());
}

TEST_F(CliTest, TestDeniedJsonCarriesTheConflictingHolder) {
  CtlResult run = Ctl({"test", "--fh=dead", "--client=c", "--svid=2",
                       "--output", "json"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["status"], "LOCK_STATUS_DENIED");
  EXPECT_EQ(json["conflicting_holder"]["owner"]["client_name"], "holder");
  EXPECT_EQ(json["conflicting_holder"]["exclusive"], true);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.tests.size(), 1u);
  EXPECT_EQ(recorded.tests[0].file_handle(), "\xde\xad");
  EXPECT_EQ(recorded.tests[0].owner().svid(), 2u);
  EXPECT_TRUE(recorded.tests[0].exclusive());
}

TEST_F(CliTest, TestGrantedExitsZero) {
  CtlResult run = Ctl({"test", "--fh=0a", "--client=c", "--shared"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(server_->recorded().tests.size(), 1u);
  EXPECT_FALSE(server_->recorded().tests[0].exclusive());
}

TEST_F(CliTest, UnlockSendsOwnerAndRange) {
  CtlResult run = Ctl({"unlock", "--fh=0a", "--client=c", "--svid=4",
                       "--offset=5", "--length=6"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.unlocks.size(), 1u);
  EXPECT_EQ(recorded.unlocks[0].owner().svid(), 4u);
  EXPECT_EQ(recorded.unlocks[0].range().offset(), 5u);
  EXPECT_EQ(recorded.unlocks[0].range().length(), 6u);
  EXPECT_FALSE(recorded.unlocks[0].request_id().empty());
}

TEST_F(CliTest, LockWaitAcksOnlyItsOwnGrant) {
  CtlResult run = Ctl({"--output=json", "lock", "--fh=b10c", "--client=c",
                       "--svid=5", "--wait", "--wait-timeout=20s"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["status"], "LOCK_STATUS_GRANTED");
  EXPECT_EQ(json["grant"]["sequence"], 8);
  EXPECT_EQ(json["fencing_token"], 77);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.locks.size(), 1u);
  EXPECT_TRUE(recorded.locks[0].block());
  ASSERT_EQ(recorded.watches.size(), 1u);
  EXPECT_EQ(recorded.watches[0].gateway_id(), "lockwardenctl");
  ASSERT_EQ(recorded.acks.size(), 1u) << "the other waiter's event is not acked";
  EXPECT_EQ(recorded.acks[0].sequence(), 8u);
  EXPECT_EQ(recorded.acks[0].outcome(), lockwarden::v1::GRANT_OUTCOME_DELIVERED);
  EXPECT_NE(recorded.acks[0].request_id(), recorded.locks[0].request_id());
  EXPECT_TRUE(recorded.cancels.empty());
}

TEST_F(CliTest, LockWaitTimeoutCancelsAndExitsOne) {
  CtlResult run = Ctl({"lock", "--fh=710e", "--client=c", "--svid=5",
                       "--length=9", "--wait", "--wait-timeout=1s"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "status:              BLOCKED")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "request cancelled")) << run.out;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.cancels.size(), 1u);
  EXPECT_EQ(recorded.cancels[0].file_handle(), "\x71\x0e");
  EXPECT_EQ(recorded.cancels[0].owner().svid(), 5u);
  EXPECT_EQ(recorded.cancels[0].range().length(), 9u);
  EXPECT_TRUE(recorded.cancels[0].exclusive());
  EXPECT_TRUE(recorded.acks.empty());
}

TEST_F(CliTest, LocksListFollowsPagesAndPrintsAnAlignedTable) {
  CtlResult run = Ctl({"locks", "list", "--page-size=2", "--fh=0a01",
                       "--client=c1", "--gateway=gw"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.list_locks.size(), 3u);  // 2 + 2 + 1
  EXPECT_EQ(recorded.list_locks[0].page_size(), 2);
  EXPECT_EQ(recorded.list_locks[0].page_token(), "");
  EXPECT_EQ(recorded.list_locks[1].page_token(), "2");
  EXPECT_EQ(recorded.list_locks[0].filter().file_handle(), "\x0a\x01");
  EXPECT_EQ(recorded.list_locks[0].filter().client_name(), "c1");
  EXPECT_EQ(recorded.list_locks[0].filter().gateway_id(), "gw");
  EXPECT_FALSE(recorded.list_locks[0].filter().has_owner());
  std::vector<std::string> lines = absl::StrSplit(run.out, '\n');
  ASSERT_EQ(lines.size(), 7u) << run.out;  // header, 5 rows, final ""
  EXPECT_TRUE(absl::StartsWith(lines[0], "FILE_HANDLE  CLIENT  SVID  OH  "))
      << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "0a00         c0      0     -   0+10  "))
      << lines[1];
  // Columns line up: RANGE starts at the same offset in every row.
  const size_t range_column = lines[0].find("RANGE");
  EXPECT_EQ(lines[3].substr(range_column, 5), "20+10");
}

TEST_F(CliTest, LocksListJsonAndLimit) {
  CtlResult run = Ctl({"locks", "list", "-o", "json", "--page-size=2",
                       "--limit=3"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json json = ParseSingleJsonObject(run.out);
  ASSERT_EQ(json["locks"].size(), 3u);
  EXPECT_EQ(json["total_size"], 5);
  EXPECT_EQ(json["truncated"], true);
  EXPECT_EQ(json["locks"][1]["file_handle"], "0a01");
  EXPECT_EQ(json["locks"][1]["owner"]["client_name"], "c1");
  EXPECT_EQ(json["locks"][1]["fencing_token"], 101);
  EXPECT_EQ(server_->recorded().list_locks.size(), 2u);
}

TEST_F(CliTest, WaitersListShowsBlockers) {
  CtlResult run = Ctl({"waiters", "list"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "holder/9/-")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "b10c")) << run.out;
}

TEST_F(CliTest, StatusTableAndJson) {
  CtlResult run = Ctl({"status"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "role:")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "LEADER")) << run.out;
  EXPECT_TRUE(absl::StrContains(run.out, "ROCKSDB OK")) << run.out;
  // A leader sends no `replica`: none of its lines.
  EXPECT_FALSE(absl::StrContains(run.out, "replica_")) << run.out;
  EXPECT_FALSE(absl::StrContains(run.out, "leader_probes")) << run.out;
  EXPECT_FALSE(absl::StrContains(run.out, "last_probe_misconfiguration"))
      << run.out;
  run = Ctl({"status", "--output=json"});
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["role"], "SERVER_ROLE_LEADER");
  EXPECT_EQ(json["lock_count"], 5);
  EXPECT_EQ(json["commit_stats"]["commits"], 3);
}

TEST_F(CliTest, StatusTableShowsAStandbysReplica) {
  std::unique_ptr<FakeLockwardenServer> standby =
      FakeLockwardenServer::Start(server_->address());
  ASSERT_NE(standby, nullptr);
  CtlResult run =
      RunCtl({absl::StrCat("--server=", standby->address()), "status"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "STANDBY")) << run.out;
  EXPECT_TRUE(absl::StrContains(
      run.out, "replica_revision:             applied 1200, store 1203, "
               "lag 3\n"))
      << run.out;
  EXPECT_TRUE(absl::StrContains(
      run.out, "replica_healthy:              yes\n"))
      << run.out;
  EXPECT_TRUE(absl::StrContains(
      run.out, "leader_probes:                40 (failed 2, misconfigured 5), "
               "fast failover off\n"))
      << run.out;
  EXPECT_TRUE(absl::StrContains(
      run.out, "last_probe_misconfiguration:  UNAUTHENTICATED: bad token\n"))
      << run.out;
  run = RunCtl({absl::StrCat("--server=", standby->address()), "status",
                "--output=json"});
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["replica"]["lag_revisions"], 3);
}

TEST_F(CliTest, HealthExitCodeFollowsServingStatus) {
  CtlResult run = Ctl({"health"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "SERVING\n");
  server_->SetServing("lockwarden.v1.LockService", false);
  run = Ctl({"health", "--service=lockwarden.v1.LockService"});
  EXPECT_EQ(run.exit_code, 1) << run.err;
  EXPECT_EQ(run.out, "NOT_SERVING\n");
}

TEST_F(CliTest, StandbyRedirectsToTheLeader) {
  std::unique_ptr<FakeLockwardenServer> standby =
      FakeLockwardenServer::Start(server_->address());
  ASSERT_NE(standby, nullptr);
  CtlResult run = RunCtl({absl::StrCat("--server=", standby->address()),
                          "lock", "--fh=0a", "--client=c", "-o", "json"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(standby->recorded().redirects, 1);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.locks.size(), 1u);
  ASSERT_EQ(standby->recorded().locks.size(), 1u);
  EXPECT_EQ(standby->recorded().locks[0].request_id(),
            recorded.locks[0].request_id())
      << "the retry at the leader must reuse the request id";
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["server"], server_->address());
}

TEST_F(CliTest, UnreachableAddressesAreSkippedInOrder) {
  const std::string dead = absl::StrCat("127.0.0.1:", ClosedPort());
  CtlResult run = RunCtl({absl::StrCat("--server=", dead, ",",
                                       server_->address()),
                          "locks", "list"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(server_->recorded().list_locks.size(), 1u);
}

TEST_F(CliTest, ServerFromEnvironmentAndBearerToken) {
  CtlResult run = RunCtl({"--token=s3cret", "unlock", "--fh=0a", "--client=c"},
                         {absl::StrCat("LOCKWARDEN_SERVER=", server_->address())});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(server_->recorded().unlocks.size(), 1u);
  EXPECT_EQ(server_->recorded().last_authorization, "Bearer s3cret");
}

TEST(CliErrorTest, ConnectionErrorNamesServerAndCodeAndExitsTwo) {
  const std::string dead = absl::StrCat("127.0.0.1:", ClosedPort());
  CtlResult run = RunCtl({absl::StrCat("--server=", dead), "status"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, dead)) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "UNAVAILABLE")) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
}

TEST_F(CliTest, UnimplementedRpcIsReportedClearly) {
  CtlResult run = Ctl({"shares", "list"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(
      run.err, "server " + server_->address() +
                   " does not implement ListShares yet"))
      << run.err;
  run = Ctl({"gateway", "reset", "--gateway-id=gw1"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "does not implement ResetGateway yet"))
      << run.err;
}

TEST_F(CliTest, UsageErrorsExitTwoWithoutCallingTheServer) {
  EXPECT_EQ(Ctl({"lock", "--fh=abc", "--client=c"}).exit_code, 2);  // odd hex
  EXPECT_EQ(Ctl({"lock", "--fh=0a"}).exit_code, 2);  // --client missing
  EXPECT_EQ(Ctl({"lock", "--fh=0a", "--client=c", "--svid=x"}).exit_code, 2);
  EXPECT_EQ(Ctl({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Ctl({"gateway", "reset"}).exit_code, 2);  // no --gateway-id
  EXPECT_EQ(Ctl({"--output=yaml", "status"}).exit_code, 2);
  EXPECT_TRUE(server_->recorded().locks.empty());
  EXPECT_EQ(Ctl({"--help"}).exit_code, 0);
}

}  // namespace
}  // namespace lockwarden::cli
