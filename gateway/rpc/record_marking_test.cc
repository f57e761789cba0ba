#include "gateway/rpc/record_marking.h"

#include <random>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::lockwarden::testing::StatusIs;

TEST(RecordMarkingTest, SingleFragmentRoundTrip) {
  const std::string wire = EncodeRecord("hello");
  ASSERT_EQ(wire.size(), 9u);
  EXPECT_EQ(static_cast<unsigned char>(wire[0]), 0x80);  // last fragment
  RecordDecoder d;
  std::vector<std::string> records;
  LW_ASSERT_OK(d.Feed(wire, &records));
  EXPECT_EQ(records, std::vector<std::string>{"hello"});
  EXPECT_EQ(d.buffered_bytes(), 0u);
}

TEST(RecordMarkingTest, MultiFragmentRecordsFedByteByByte) {
  std::string wire = EncodeRecord("abcdefghij", 3);  // 4 fragments
  wire += EncodeRecord("", 3);                        // empty record
  wire += EncodeRecord("xyz");
  RecordDecoder d;
  std::vector<std::string> records;
  for (char c : wire) LW_ASSERT_OK(d.Feed(absl::string_view(&c, 1), &records));
  EXPECT_EQ(records, (std::vector<std::string>{"abcdefghij", "", "xyz"}));
}

TEST(RecordMarkingTest, RandomChunkingYieldsTheSameRecords) {
  const uint32_t seed = 20261126;
  std::mt19937 rng(seed);
  std::vector<std::string> sent;
  std::string wire;
  for (int i = 0; i < 50; ++i) {
    std::string msg(rng() % 3000, static_cast<char>('a' + i % 26));
    sent.push_back(msg);
    AppendRecord(msg, &wire, 1 + rng() % 1500);
  }
  RecordDecoder d;
  std::vector<std::string> got;
  absl::string_view rest = wire;
  while (!rest.empty()) {
    const size_t n = std::min<size_t>(rest.size(), 1 + rng() % 700);
    LW_ASSERT_OK(d.Feed(rest.substr(0, n), &got));
    rest.remove_prefix(n);
  }
  EXPECT_EQ(got, sent) << "seed " << seed;
}

TEST(RecordMarkingTest, OversizeRecordIsAFramingError) {
  RecordDecoder d(/*max_record_bytes=*/100);
  std::vector<std::string> records;
  // Two fragments of 60 bytes: the second crosses the bound.
  const std::string wire = EncodeRecord(std::string(120, 'x'), 60);
  EXPECT_THAT(d.Feed(wire, &records),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(records.empty());
  EXPECT_TRUE(d.failed());
  // Stays failed.
  EXPECT_FALSE(d.Feed(EncodeRecord("ok"), &records).ok());
}

TEST(RecordMarkingTest, HeaderAloneAnnouncingHugeFragmentFailsImmediately) {
  RecordDecoder d;
  std::vector<std::string> records;
  const std::string header("\xff\xff\xff\xff", 4);
  EXPECT_THAT(d.Feed(header, &records),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(RecordMarkingTest, TooManyEmptyFragmentsIsAFramingError) {
  RecordDecoder d(kMaxRecordBytes, /*max_fragments=*/4);
  std::vector<std::string> records;
  std::string wire(20, '\0');  // five empty non-last fragments
  EXPECT_THAT(d.Feed(wire, &records),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RecordMarkingTest, MaximumSizeRecordIsAccepted) {
  RecordDecoder d;
  std::vector<std::string> records;
  LW_ASSERT_OK(d.Feed(EncodeRecord(std::string(kMaxRecordBytes, 'm')), &records));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].size(), kMaxRecordBytes);
}

}  // namespace
}  // namespace lockwarden::gateway
