#include "common/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace lockwarden {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;

TEST(LoggingTest, TextLineHasEventAndFields) {
  const std::string line = FormatLogLineForTesting(
      LogFormat::kText, LogLevel::kInfo, "recovery_done",
      {{"objects", 12}, {"dir", "/var/lib/x y"}, {"ok", true}});
  EXPECT_THAT(line, HasSubstr(" INFO [test] recovery_done objects=12"));
  EXPECT_THAT(line, EndsWith("dir=\"/var/lib/x y\" ok=true"));
}

TEST(LoggingTest, JsonLineIsValidJsonWithTypedFields) {
  const std::string line = FormatLogLineForTesting(
      LogFormat::kJson, LogLevel::kWarn, "store_error",
      {{"error", absl::UnavailableError("disk \"full\"")}, {"batch", 3u}});
  const auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["level"], "warn");
  EXPECT_EQ(json["event"], "store_error");
  EXPECT_EQ(json["component"], "test");
  EXPECT_EQ(json["batch"], 3);
  EXPECT_THAT(json["error"].get<std::string>(), HasSubstr("disk \"full\""));
}

TEST(LoggingTest, ParsesLevelsAndFormats) {
  LogLevel level;
  EXPECT_TRUE(ParseLogLevel("WARN", &level).ok());
  EXPECT_EQ(level, LogLevel::kWarn);
  EXPECT_FALSE(ParseLogLevel("loud", &level).ok());
  LogFormat format;
  EXPECT_TRUE(ParseLogFormat("json", &format).ok());
  EXPECT_EQ(format, LogFormat::kJson);
  EXPECT_FALSE(ParseLogFormat("xml", &format).ok());
}

TEST(LoggingTest, LogEnabledFollowsTheConfiguredLevel) {
  LogOptions options;
  options.level = LogLevel::kWarn;
  InitLogging(options);
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kWarn));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  options.level = LogLevel::kDebug;
  InitLogging(options);
  EXPECT_TRUE(LogEnabled(LogLevel::kDebug));
}

}  // namespace
}  // namespace lockwarden
