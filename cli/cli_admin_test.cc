// Runs the real lockwardenctl binary's repair and snapshot commands against
// FakeLockwardenServer: the request fields each flag combination produces,
// the mutation output, and the snapshot file round trip with checksum
// verification.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/ctl_runner.h"
#include "cli/fake_lockwarden_server.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lockwarden::cli {
namespace {

using ::lockwarden::cli::testing::CtlResult;
using ::lockwarden::cli::testing::FakeLockwardenServer;
using ::lockwarden::cli::testing::kFakeSnapshotKeys;
using ::lockwarden::cli::testing::ParseSingleJsonObject;
using ::lockwarden::cli::testing::RecordedRequests;
using ::lockwarden::cli::testing::RunCtl;

std::string TempFile(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".", getpid());
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

class CliAdminTest : public ::testing::Test {
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

TEST_F(CliAdminTest, LocksReleaseByClientCarriesReasonAndRequestId) {
  CtlResult run = Ctl({"locks", "release", "--client=c1", "--reason=stuck"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "released_locks:")) << run.out;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.force_releases.size(), 1u);
  const auto& request = recorded.force_releases[0];
  EXPECT_EQ(request.target_case(), lockwarden::v1::ForceReleaseRequest::kClientName);
  EXPECT_EQ(request.client_name(), "c1");
  EXPECT_EQ(request.reason(), "stuck");
  EXPECT_FALSE(request.validate_only());
  EXPECT_TRUE(absl::StartsWith(request.request_id(), "ctl-"));
}

TEST_F(CliAdminTest, LocksReleaseOwnerRangeFileAndDryRun) {
  CtlResult run = Ctl({"locks", "release", "--owner", "--client=c", "--svid=3",
                       "--oh=0a", "--fh=0b", "--offset=1", "--length=2"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  run = Ctl({"locks", "release", "--owner", "--client=c", "--svid=3"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  run = Ctl({"locks", "release", "--fh=0b", "--dry-run"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.force_releases.size(), 3u);
  const auto& range = recorded.force_releases[0];
  ASSERT_TRUE(range.has_lock());
  EXPECT_EQ(range.lock().file_handle(), "\x0b");
  EXPECT_EQ(range.lock().owner().svid(), 3u);
  EXPECT_EQ(range.lock().owner().oh(), "\x0a");
  EXPECT_EQ(range.lock().range().offset(), 1u);
  EXPECT_EQ(range.lock().range().length(), 2u);
  ASSERT_TRUE(recorded.force_releases[1].has_owner());
  EXPECT_EQ(recorded.force_releases[1].owner().client_name(), "c");
  EXPECT_EQ(recorded.force_releases[2].file_handle(), "\x0b");
  EXPECT_TRUE(recorded.force_releases[2].validate_only());
  EXPECT_EQ(recorded.force_releases[2].reason(),
            "lockwardenctl locks release by tester");
}

TEST_F(CliAdminTest, LocksReleaseByTokenFindsTheLock) {
  CtlResult run = Ctl({"locks", "release", "--token=102", "-o", "json"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  nlohmann::json json = ParseSingleJsonObject(run.out);
  EXPECT_EQ(json["operation"], "locks release");
  EXPECT_EQ(json["released_locks"], 2);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.force_releases.size(), 1u);
  const auto& target = recorded.force_releases[0].lock();
  EXPECT_EQ(target.file_handle(), std::string("\x0a\x02"));
  EXPECT_EQ(target.owner().client_name(), "c2");
  EXPECT_EQ(target.range().offset(), 20u);
  EXPECT_EQ(target.range().length(), 10u);
  EXPECT_EQ(json["request_id"], recorded.force_releases[0].request_id());
}

TEST_F(CliAdminTest, LocksReleaseRejectsUnknownTokensAndAmbiguousTargets) {
  CtlResult run = Ctl({"locks", "release", "--token=999"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "no held lock has fencing token 999"))
      << run.err;
  EXPECT_EQ(Ctl({"locks", "release", "--client=c", "--fh=0a"}).exit_code, 2);
  EXPECT_EQ(Ctl({"locks", "release"}).exit_code, 2);
  EXPECT_EQ(Ctl({"locks", "release", "--owner"}).exit_code, 2);
  EXPECT_TRUE(server_->recorded().force_releases.empty());
}

TEST_F(CliAdminTest, ClientRebootStateIsOptional) {
  EXPECT_EQ(Ctl({"client", "reboot", "--client=h1"}).exit_code, 0);
  EXPECT_EQ(Ctl({"client", "reboot", "--client=h1", "--state=7"}).exit_code, 0);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.reboots.size(), 2u);
  EXPECT_FALSE(recorded.reboots[0].has_new_state());
  EXPECT_TRUE(recorded.reboots[1].has_new_state());
  EXPECT_EQ(recorded.reboots[1].new_state(), 7);
  EXPECT_EQ(recorded.reboots[1].client_name(), "h1");
}

TEST_F(CliAdminTest, GatewayDrainUndrainAndGraceEndNeedAnExplicitGateway) {
  CtlResult run = Ctl({"--gateway-id=gw1", "gateway", "drain", "-o", "json"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ParseSingleJsonObject(run.out)["draining"], true);
  run = Ctl({"gateway", "drain", "--undrain", "--gateway-id=gw1"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "draining:")) << run.out;
  run = Ctl({"grace", "end", "--gateway-id=gw2"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  run = Ctl({"grace", "end"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "--gateway-id is required")) << run.err;
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.drains.size(), 2u);
  EXPECT_TRUE(recorded.drains[0].drain());
  EXPECT_FALSE(recorded.drains[1].drain());
  EXPECT_EQ(recorded.drains[1].gateway_id(), "gw1");
  ASSERT_EQ(recorded.end_graces.size(), 1u);
  EXPECT_EQ(recorded.end_graces[0].gateway_id(), "gw2");
}

TEST_F(CliAdminTest, SnapshotExportVerifiesAndImportStreamsTheFileBack) {
  const std::string file = TempFile("snapshot");
  CtlResult run = Ctl({"snapshot", "export", "--file=" + file});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.out, "keys:           3")) << run.out;
  EXPECT_TRUE(Exists(file));
  EXPECT_FALSE(Exists(file + ".partial"));
  std::ifstream in(file, std::ios::binary);
  std::string magic(8, '\0');
  in.read(&magic[0], 8);
  EXPECT_EQ(magic, "LWSNAP1\n");

  run = Ctl({"snapshot", "import", "--file=" + file, "--force", "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(ParseSingleJsonObject(run.out)["keys_imported"], kFakeSnapshotKeys);
  RecordedRequests recorded = server_->recorded();
  ASSERT_EQ(recorded.imports.size(), 3u);  // header + 2 entry chunks
  const auto& first = recorded.imports[0];
  EXPECT_TRUE(first.force());
  EXPECT_FALSE(first.state_is_current());
  EXPECT_FALSE(first.request_id().empty());
  EXPECT_EQ(first.reason(), "lockwardenctl snapshot import by tester");
  ASSERT_TRUE(first.chunk().has_header());
  EXPECT_EQ(first.chunk().header().key_count(), 3u);
  EXPECT_EQ(recorded.imports[1].chunk().entries().entries(0).key(), "key/0");
  EXPECT_EQ(recorded.imports[2].chunk().entries().entries_size(), 2);
}

TEST_F(CliAdminTest, SnapshotImportReportsTruncationAndServerRefusals) {
  const std::string file = TempFile("snapshot_to_cut");
  ASSERT_EQ(Ctl({"snapshot", "export", "--file=" + file}).exit_code, 0);
  CtlResult run = Ctl({"snapshot", "import", "--file=" + file});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(
      run.err, "ImportSnapshot: FAILED_PRECONDITION: store holds state"))
      << run.err;

  std::string contents;
  {
    std::ifstream in(file, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    contents = buffer.str();
  }
  ASSERT_GT(contents.size(), 12u);
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      << contents.substr(0, contents.size() - 3);
  run = Ctl({"snapshot", "import", "--file=" + file, "--force"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "is truncated or corrupt after 1 keys"))
      << run.err;
}

TEST_F(CliAdminTest, SnapshotExportWithBadChecksumLeavesNoFile) {
  const std::string file = TempFile("corrupt_snapshot");
  CtlResult run =
      Ctl({"snapshot", "export", "--file=" + file, "--reason=corrupt"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "SHA-256 mismatch")) << run.err;
  EXPECT_FALSE(Exists(file));
  EXPECT_FALSE(Exists(file + ".partial"));
}

TEST_F(CliAdminTest, SnapshotImportAbandonSendsOneMessageWithoutASnapshot) {
  CtlResult run = Ctl({"snapshot", "import", "--abandon", "--reason=crashed import",
                       "-o", "json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto& recorded = server_->recorded();
  ASSERT_EQ(recorded.imports.size(), 1u);
  EXPECT_TRUE(recorded.imports[0].abandon());
  EXPECT_FALSE(recorded.imports[0].has_chunk());
  EXPECT_EQ(recorded.imports[0].reason(), "crashed import");
  // --abandon takes no snapshot; without it --file is required.
  const std::string file = TempFile("abandon_with_file");
  run = Ctl({"snapshot", "import", "--abandon", "--file=" + file});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(run.err, "--abandon: takes no --file")) << run.err;
  run = Ctl({"snapshot", "import"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(run.err, "--file: required")) << run.err;
  EXPECT_EQ(server_->recorded().imports.size(), 1u);
}

TEST_F(CliAdminTest, SnapshotImportRejectsAForeignFile) {
  const std::string file = TempFile("not_a_snapshot");
  std::ofstream(file) << "hello, world\n";
  CtlResult run = Ctl({"snapshot", "import", "--file=" + file});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "is not a lockwardenctl snapshot"))
      << run.err;
  EXPECT_TRUE(server_->recorded().imports.empty());
}

}  // namespace
}  // namespace lockwarden::cli
