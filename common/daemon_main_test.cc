#include "common/daemon_main.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockwarden {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

void Parse(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first.
  app.parse(args);
}

TEST(DaemonMainTest, LogFlagsKeepTheirDefaultsAndTakeKnownValues) {
  std::string level = "info";
  std::string format = "text";
  CLI::App app;
  AddLogFlags(app, &level, &format);
  Parse(app, {});
  EXPECT_EQ(level, "info");
  EXPECT_EQ(format, "text");

  CLI::App again;
  AddLogFlags(again, &level, &format);
  Parse(again, {"--log-level=debug", "--log-format=json"});
  EXPECT_EQ(level, "debug");
  EXPECT_EQ(format, "json");
}

TEST(DaemonMainTest, UnknownLogLevelIsRefusedByTheParser) {
  std::string level = "info";
  std::string format = "text";
  CLI::App app;
  AddLogFlags(app, &level, &format);
  EXPECT_THROW(Parse(app, {"--log-level=loud"}), CLI::ValidationError);
  CLI::App other;
  AddLogFlags(other, &level, &format);
  EXPECT_THROW(Parse(other, {"--log-format=xml"}), CLI::ValidationError);
}

TEST(DaemonMainTest, ShutdownSignalsAreBlockedInLaterThreadsAndWaitedFor) {
  const sigset_t signals = StartDaemon("test", "info", "text");
  EXPECT_EQ(sigismember(&signals, SIGTERM), 1);
  EXPECT_EQ(sigismember(&signals, SIGINT), 1);
  bool blocked_in_thread = false;
  std::thread([&] {
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    blocked_in_thread =
        sigismember(&mask, SIGTERM) == 1 && sigismember(&mask, SIGINT) == 1;
  }).join();
  EXPECT_TRUE(blocked_in_thread);

  // Blocked, so the signal stays pending for this thread instead of killing
  // the process; the wait takes it and logs it.
  ::testing::internal::CaptureStderr();
  ASSERT_EQ(raise(SIGTERM), 0);
  EXPECT_EQ(WaitForShutdownSignal(signals), SIGTERM);
  ASSERT_EQ(raise(SIGINT), 0);
  EXPECT_EQ(WaitForShutdownSignal(signals), SIGINT);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr(" INFO [test] signal signal=SIGTERM\n"));
  EXPECT_THAT(err, HasSubstr(" INFO [test] signal signal=SIGINT\n"));
}

TEST(DaemonMainTest, FailedStartupIsLoggedAndPrintedWithTheProgramName) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(FailStartup("lockwarden-test",
                        absl::InvalidArgumentError("--name is empty")),
            1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(
      err,
      HasSubstr("startup_failed error=\"INVALID_ARGUMENT: --name is empty\""));
  EXPECT_THAT(
      err, EndsWith("\nlockwarden-test: INVALID_ARGUMENT: --name is empty\n"));
}

}  // namespace
}  // namespace lockwarden
