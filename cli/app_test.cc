// RunLockwardenctl in process: help and usage paths and their exit codes
// (no server involved; connection paths are covered by cli_test).
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "cli/commands.h"
#include "gtest/gtest.h"

namespace lockwarden::cli {
namespace {

struct Outcome {
  int exit_code;
  std::string out;
  std::string err;
};

Outcome RunCtlInProcess(std::vector<std::string> args) {
  args.insert(args.begin(), "lockwardenctl");
  std::ostringstream out, err;
  const int code = RunLockwardenctl(args, out, err);
  return {code, out.str(), err.str()};
}

TEST(AppTest, HelpExitsZeroAndDocumentsExitCodes) {
  Outcome outcome = RunCtlInProcess({"--help"});
  EXPECT_EQ(outcome.exit_code, kExitOk);
  EXPECT_TRUE(absl::StrContains(outcome.out, "Exit codes: 0 success; 1"))
      << outcome.out;
  EXPECT_TRUE(absl::StrContains(outcome.out, "LOCKWARDEN_SERVER"));
  EXPECT_EQ(RunCtlInProcess({"lock", "--help"}).exit_code, kExitOk);
  EXPECT_EQ(RunCtlInProcess({"snapshot", "import", "--help"}).exit_code, kExitOk);
}

TEST(AppTest, EveryDocumentedCommandParses) {
  const std::vector<std::vector<std::string>> commands = {
      {"lock"},           {"unlock"},          {"test"},
      {"cancel"},         {"locks", "list"},   {"locks", "release"},
      {"waiters", "list"}, {"waiters", "graph"}, {"shares", "list"},
      {"clients", "list"}, {"monitors", "list"}, {"gateways", "list"},
      {"events", "list"}, {"grace", "status"}, {"grace", "end"},
      {"client", "reboot"}, {"gateway", "reset"}, {"gateway", "drain"},
      {"step-down"},      {"status"},          {"health"},
      {"snapshot", "export"}, {"snapshot", "import"}};
  for (std::vector<std::string> command : commands) {
    command.push_back("--help");
    EXPECT_EQ(RunCtlInProcess(command).exit_code, kExitOk) << command[0];
  }
}

TEST(AppTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCtlInProcess({}).exit_code, kExitError);
  EXPECT_EQ(RunCtlInProcess({"locks"}).exit_code, kExitError);  // needs list/release
  EXPECT_EQ(RunCtlInProcess({"nope"}).exit_code, kExitError);
  EXPECT_EQ(RunCtlInProcess({"lock", "--fh=0a"}).exit_code, kExitError);
  EXPECT_EQ(RunCtlInProcess({"--output=xml", "status"}).exit_code, kExitError);
  EXPECT_EQ(RunCtlInProcess({"locks", "list", "--page-size=5000"}).exit_code, kExitError);
}

TEST(AppTest, BadGlobalValuesAreNamedOnStderr) {
  Outcome outcome = RunCtlInProcess({"--timeout=soon", "status"});
  EXPECT_EQ(outcome.exit_code, kExitError);
  EXPECT_EQ(outcome.err,
            "lockwardenctl: --timeout: 'soon' is not a duration (e.g. 5s, "
            "250ms, 1m)\n");
  outcome = RunCtlInProcess({"--server=nohost", "status"});
  EXPECT_EQ(outcome.exit_code, kExitError);
  EXPECT_TRUE(absl::StrContains(outcome.err, "--server: 'nohost'"));
  outcome = RunCtlInProcess({"lock", "--fh=0g", "--client=c"});
  EXPECT_EQ(outcome.exit_code, kExitError);
  EXPECT_TRUE(absl::StrContains(outcome.err, "--fh: not a hex digit"));
  outcome = RunCtlInProcess({"lock", "--fh=0a", "--client=c", "--wait", "--reclaim"});
  EXPECT_EQ(outcome.exit_code, kExitError);
  EXPECT_TRUE(absl::StrContains(outcome.err, "a reclaim never blocks"));
  EXPECT_TRUE(outcome.out.empty());
}

}  // namespace
}  // namespace lockwarden::cli
