#include "cli/parse.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace lockwarden::cli {
namespace {

TEST(ParseHexBytesTest, DecodesMixedCaseWithAndWithoutPrefix) {
  absl::StatusOr<std::string> bytes = ParseHexBytes("0a1BfF", "--fh");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, std::string("\x0a\x1b\xff", 3));
  bytes = ParseHexBytes("0x0001", "--fh");
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(*bytes, std::string("\x00\x01", 2));
}

TEST(ParseHexBytesTest, EmptyIsNoBytes) {
  absl::StatusOr<std::string> bytes = ParseHexBytes("", "--oh");
  ASSERT_TRUE(bytes.ok());
  EXPECT_TRUE(bytes->empty());
}

TEST(ParseHexBytesTest, OddLengthIsRejectedNamingTheFlag) {
  absl::StatusOr<std::string> bytes = ParseHexBytes("abc", "--fh");
  ASSERT_FALSE(bytes.ok());
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "--fh"));
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "odd"));
}

TEST(ParseHexBytesTest, NonHexDigitIsRejectedWithItsPosition) {
  absl::StatusOr<std::string> bytes = ParseHexBytes("00zz", "--oh");
  ASSERT_FALSE(bytes.ok());
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "'z' at position 2"))
      << bytes.status();
}

TEST(ParseHexBytesTest, TooLongIsRejected) {
  EXPECT_TRUE(ParseHexBytes(std::string(2 * kHexBytesMax, 'a'), "--oh").ok());
  EXPECT_FALSE(
      ParseHexBytes(std::string(2 * kHexBytesMax + 2, 'a'), "--oh").ok());
}

TEST(ParseDurationFlagTest, AcceptsUnitsAndBareSeconds) {
  EXPECT_EQ(*ParseDurationFlag("5s", "--timeout"), absl::Seconds(5));
  EXPECT_EQ(*ParseDurationFlag("250ms", "--timeout"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseDurationFlag("1m30s", "--timeout"), absl::Seconds(90));
  EXPECT_EQ(*ParseDurationFlag("2", "--timeout"), absl::Seconds(2));
  EXPECT_EQ(*ParseDurationFlag("0.5", "--timeout"), absl::Milliseconds(500));
}

TEST(ParseDurationFlagTest, RejectsGarbageZeroNegativeAndInfinite) {
  for (const char* text : {"abc", "0", "0s", "-1s", "inf", ""}) {
    absl::StatusOr<absl::Duration> parsed = ParseDurationFlag(text, "--timeout");
    EXPECT_FALSE(parsed.ok()) << text;
    if (!parsed.ok()) {
      EXPECT_TRUE(absl::StrContains(parsed.status().message(), "--timeout"));
    }
  }
}

TEST(ParseServerListTest, SplitsCommasAndTrims) {
  absl::StatusOr<std::vector<std::string>> list =
      ParseServerList({"127.0.0.1:7420, leader:1 ,", "[::1]:9"});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list, (std::vector<std::string>{"127.0.0.1:7420", "leader:1",
                                             "[::1]:9"}));
}

TEST(ParseServerListTest, RejectsMissingOrBadPortsAndEmptyLists) {
  EXPECT_FALSE(ParseServerList({"localhost"}).ok());
  EXPECT_FALSE(ParseServerList({"host:0"}).ok());
  EXPECT_FALSE(ParseServerList({"host:65536"}).ok());
  EXPECT_FALSE(ParseServerList({":80"}).ok());
  EXPECT_FALSE(ParseServerList({" , "}).ok());
}

TEST(ParseServerListTest, LimitsTheNumberOfAddresses) {
  std::vector<std::string> items(kServerAddressesMax + 1, "h:1");
  EXPECT_FALSE(ParseServerList(items).ok());
  items.pop_back();
  EXPECT_TRUE(ParseServerList(items).ok());
}

TEST(NewRequestIdTest, HasThePrefixFitsTheLimitAndIsUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = NewRequestId();
    EXPECT_TRUE(absl::StartsWith(id, "ctl-")) << id;
    EXPECT_LE(id.size(), kRequestIdBytesMax);
    EXPECT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

}  // namespace
}  // namespace lockwarden::cli
