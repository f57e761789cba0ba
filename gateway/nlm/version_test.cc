#include "gateway/nlm/version.h"

#include <limits>

#include "gtest/gtest.h"

namespace lockwarden::gateway::nlm {
namespace {

constexpr uint64_t kMax64 = std::numeric_limits<uint64_t>::max();

TEST(VersionTest, Range32LengthZeroIsToEndOfFile) {
  EXPECT_EQ(NormalizeRange32(0, 0), (Range64{0, 0}));
  EXPECT_EQ(NormalizeRange32(100, 0), (Range64{100, 0}));
  EXPECT_EQ(NormalizeRange32(0xffffffff, 0), (Range64{0xffffffff, 0}));
}

TEST(VersionTest, Range32WithinTheSpaceIsKept) {
  EXPECT_EQ(NormalizeRange32(0, 1), (Range64{0, 1}));
  EXPECT_EQ(NormalizeRange32(10, 20), (Range64{10, 20}));
  // Ends exactly at the last 32-bit byte: still expressible.
  EXPECT_EQ(NormalizeRange32(0, 0xffffffff), (Range64{0, 0xffffffff}));
  EXPECT_EQ(NormalizeRange32(1, 0xffffffff), (Range64{1, 0xffffffff}));
  EXPECT_EQ(NormalizeRange32(0xffffffff, 1), (Range64{0xffffffff, 1}));
}

TEST(VersionTest, Range32OverflowIsToEndOfFile) {
  // offset + len > 2^32: Linux lockd takes the negative 32-bit end as EOF.
  EXPECT_EQ(NormalizeRange32(2, 0xffffffff), (Range64{2, 0}));
  EXPECT_EQ(NormalizeRange32(0xffffffff, 2), (Range64{0xffffffff, 0}));
  EXPECT_EQ(NormalizeRange32(0x80000000, 0x80000001), (Range64{0x80000000, 0}));
}

TEST(VersionTest, Range64KeepsFittingRanges) {
  EXPECT_EQ(NormalizeRange64(0, 0), (Range64{0, 0}));
  EXPECT_EQ(NormalizeRange64(0, kMax64), (Range64{0, kMax64}));
  EXPECT_EQ(NormalizeRange64(1, kMax64), (Range64{1, kMax64}));
  EXPECT_EQ(NormalizeRange64(kMax64, 1), (Range64{kMax64, 1}));
  EXPECT_EQ(NormalizeRange64(1ull << 40, 4096), (Range64{1ull << 40, 4096}));
}

TEST(VersionTest, Range64OverflowIsClampedNotWrapped) {
  // [2, 2 + max) would wrap: clamped to end at 2^64 - 1.
  EXPECT_EQ(NormalizeRange64(2, kMax64), (Range64{2, kMax64 - 1}));
  EXPECT_EQ(NormalizeRange64(kMax64, 2), (Range64{kMax64, 1}));
  EXPECT_EQ(NormalizeRange64(kMax64 - 9, 100), (Range64{kMax64 - 9, 10}));
}

TEST(VersionTest, RangeFor32MapsHoldersBack) {
  EXPECT_EQ(RangeFor32({0, 0}), (Range32{0, 0}));
  EXPECT_EQ(RangeFor32({5, 10}), (Range32{5, 10}));
  // The whole 32-bit space, 2^32 bytes: its length does not fit 32 bits.
  EXPECT_EQ(RangeFor32({0, 0x100000000ull}), (Range32{0, 0}));
  // Ends exactly at 2^32 - 1: expressible.
  EXPECT_EQ(RangeFor32({1, 0xffffffff}), (Range32{1, 0xffffffff}));
  // Ends past 2^32 - 1: reported as to end of file.
  EXPECT_EQ(RangeFor32({2, 0xffffffff}), (Range32{2, 0}));
  EXPECT_EQ(RangeFor32({100, kMax64 - 100}), (Range32{100, 0}));
  EXPECT_EQ(RangeFor32({0xffffffff, 1}), (Range32{0xffffffff, 1}));
  // Starts past 2^32 - 1: cannot be expressed at all.
  EXPECT_EQ(RangeFor32({0x100000000ull, 1}), std::nullopt);
  EXPECT_EQ(RangeFor32({kMax64, 0}), std::nullopt);
}

TEST(VersionTest, Nlm4StatsIsLockStatusMinusOne) {
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_GRANTED), NLM4_GRANTED);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_DENIED), NLM4_DENIED);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_NO_LOCKS), NLM4_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_BLOCKED), NLM4_BLOCKED);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_GRACE_PERIOD),
            NLM4_DENIED_GRACE_PERIOD);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_DEADLOCK), NLM4_DEADLCK);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_READ_ONLY_FS), NLM4_ROFS);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_STALE_FH), NLM4_STALE_FH);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_FBIG), NLM4_FBIG);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_FAILED), NLM4_FAILED);
  EXPECT_EQ(ToNlm4Stats(v1::LOCK_STATUS_UNSPECIFIED), NLM4_FAILED);
  EXPECT_EQ(ToNlm4Stats(static_cast<v1::LockStatus>(99)), NLM4_FAILED);
}

TEST(VersionTest, NlmStatsForV1AndV3) {
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_GRANTED), LCK_GRANTED);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_DENIED), LCK_DENIED);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_NO_LOCKS), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_BLOCKED), LCK_BLOCKED);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_GRACE_PERIOD), LCK_DENIED_GRACE_PERIOD);
  // v1/v3 have no DEADLCK.
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_DEADLOCK), LCK_DENIED);
  // Not representable: Linux's v1/v3 catch-all.
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_READ_ONLY_FS), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_STALE_FH), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_FBIG), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_FAILED), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(ToNlmStats(v1::LOCK_STATUS_UNSPECIFIED), LCK_DENIED_NOLOCKS);
}

TEST(VersionTest, WireStatsFollowTheVersion) {
  for (uint32_t vers : {1u, 3u}) {
    EXPECT_EQ(ToWireStats(vers, v1::LOCK_STATUS_DEADLOCK),
              static_cast<uint32_t>(LCK_DENIED));
    EXPECT_EQ(ToWireStats(vers, v1::LOCK_STATUS_FAILED),
              static_cast<uint32_t>(LCK_DENIED_NOLOCKS));
    EXPECT_EQ(FromWireStats(vers, LCK_BLOCKED), v1::LOCK_STATUS_BLOCKED);
    EXPECT_EQ(FromWireStats(vers, 7), v1::LOCK_STATUS_FAILED);
  }
  EXPECT_EQ(ToWireStats(4, v1::LOCK_STATUS_DEADLOCK),
            static_cast<uint32_t>(NLM4_DEADLCK));
  EXPECT_EQ(FromWireStats(4, NLM4_STALE_FH), v1::LOCK_STATUS_STALE_FH);
  EXPECT_EQ(FromWireStats(4, 10), v1::LOCK_STATUS_FAILED);
}

TEST(VersionTest, StatusRoundTripsThroughV4) {
  for (int s = v1::LOCK_STATUS_GRANTED; s <= v1::LOCK_STATUS_FAILED; ++s) {
    const auto status = static_cast<v1::LockStatus>(s);
    EXPECT_EQ(FromNlm4Stats(ToNlm4Stats(status)), status) << s;
  }
}

TEST(VersionTest, EdgeChecksNameTheField) {
  EXPECT_EQ(ValidateLockFields("host", std::string(64, 'f'),
                               std::string(1024, 'o')),
            std::nullopt);
  auto empty_name = ValidateLockFields("", "fh", "oh");
  ASSERT_TRUE(empty_name.has_value());
  EXPECT_EQ(empty_name->answer, v1::LOCK_STATUS_FAILED);
  EXPECT_NE(empty_name->reason.find("caller_name"), std::string::npos);

  auto long_name = ValidateLockFields(std::string(1025, 'h'), "fh", "oh");
  ASSERT_TRUE(long_name.has_value());
  EXPECT_NE(long_name->reason.find("1025"), std::string::npos);

  auto long_fh = ValidateLockFields("host", std::string(65, 'f'), "oh");
  ASSERT_TRUE(long_fh.has_value());
  EXPECT_EQ(long_fh->answer, v1::LOCK_STATUS_STALE_FH);
  EXPECT_NE(long_fh->reason.find("fh is 65 bytes"), std::string::npos);
  // STALE_FH on v4, DENIED_NOLOCKS on v1/v3.
  EXPECT_EQ(ToWireStats(4, long_fh->answer),
            static_cast<uint32_t>(NLM4_STALE_FH));
  EXPECT_EQ(ToWireStats(3, long_fh->answer),
            static_cast<uint32_t>(LCK_DENIED_NOLOCKS));

  auto empty_fh = ValidateLockFields("host", "", "oh");
  ASSERT_TRUE(empty_fh.has_value());
  EXPECT_EQ(empty_fh->answer, v1::LOCK_STATUS_STALE_FH);

  auto long_oh = ValidateLockFields("host", "fh", std::string(1025, 'o'));
  ASSERT_TRUE(long_oh.has_value());
  EXPECT_EQ(long_oh->answer, v1::LOCK_STATUS_FAILED);
  EXPECT_NE(long_oh->reason.find("oh is 1025"), std::string::npos);
}

TEST(VersionTest, SupportedVersions) {
  EXPECT_TRUE(IsSupportedVersion(1));
  EXPECT_FALSE(IsSupportedVersion(2));
  EXPECT_TRUE(IsSupportedVersion(3));
  EXPECT_TRUE(IsSupportedVersion(4));
  EXPECT_FALSE(IsSupportedVersion(5));
  EXPECT_TRUE(Is32BitVersion(1));
  EXPECT_TRUE(Is32BitVersion(3));
  EXPECT_FALSE(Is32BitVersion(4));
}

}  // namespace
}  // namespace lockwarden::gateway::nlm
