#include "gateway/rpc/duplicate_request_cache.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using State = DuplicateRequestCache::State;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

DrcKey Key(uint32_t xid, absl::string_view args = "args",
           std::string client = "192.0.2.1") {
  return DrcKey::Make(std::move(client), xid, 100021, 4, 2, args);
}

TEST(DuplicateRequestCacheTest, RetransmissionOfCompletedCallReplaysReply) {
  DuplicateRequestCache drc;
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kNew);
  drc.Complete(Key(1), "reply-1", kT0);
  DuplicateRequestCache::Lookup hit = drc.Begin(Key(1), kT0 + absl::Seconds(1));
  EXPECT_EQ(hit.state, State::kCompleted);
  EXPECT_EQ(hit.reply, "reply-1");
  EXPECT_EQ(drc.stats().hits, 1u);
  EXPECT_EQ(drc.stats().misses, 1u);
}

TEST(DuplicateRequestCacheTest, RetransmissionWhileInProgressIsAbsorbed) {
  DuplicateRequestCache drc;
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kNew);
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kInProgress);
  EXPECT_EQ(drc.stats().in_progress, 1u);
}

TEST(DuplicateRequestCacheTest, KeyIncludesClientArgsAndProcedure) {
  DuplicateRequestCache drc;
  drc.Begin(Key(1), kT0);
  drc.Complete(Key(1), "r", kT0);
  EXPECT_EQ(drc.Begin(Key(1, "other-args"), kT0).state, State::kNew);
  EXPECT_EQ(drc.Begin(Key(1, "args", "192.0.2.2"), kT0).state, State::kNew);
  DrcKey unlock = Key(1);
  unlock.proc = 4;
  EXPECT_EQ(drc.Begin(unlock, kT0).state, State::kNew);
}

TEST(DuplicateRequestCacheTest, AbandonedCallExecutesAgain) {
  DuplicateRequestCache drc;
  drc.Begin(Key(1), kT0);
  drc.Abandon(Key(1));
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kNew);
}

TEST(DuplicateRequestCacheTest, EmptyReplyMeansNoReplyAndIsStillAHit) {
  DuplicateRequestCache drc;
  drc.Begin(Key(1), kT0);
  drc.Complete(Key(1), "", kT0);
  DuplicateRequestCache::Lookup hit = drc.Begin(Key(1), kT0);
  EXPECT_EQ(hit.state, State::kCompleted);
  EXPECT_TRUE(hit.reply.empty());
}

TEST(DuplicateRequestCacheTest, EntriesExpireAfterTtl) {
  DuplicateRequestCache drc(DrcOptions{.ttl = absl::Seconds(10)});
  drc.Begin(Key(1), kT0);
  drc.Complete(Key(1), "r", kT0);
  EXPECT_EQ(drc.Begin(Key(1), kT0 + absl::Seconds(11)).state, State::kNew);
  EXPECT_EQ(drc.stats().expirations, 1u);
}

TEST(DuplicateRequestCacheTest, LeastRecentlyUsedEntryIsEvictedAtEntryLimit) {
  DuplicateRequestCache drc(DrcOptions{.max_entries = 2});
  for (uint32_t xid : {1, 2}) {
    drc.Begin(Key(xid), kT0);
    drc.Complete(Key(xid), "r", kT0);
  }
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kCompleted);  // touch 1
  drc.Begin(Key(3), kT0);  // evicts 2, the least recently used
  EXPECT_EQ(drc.stats().entries, 2u);
  EXPECT_EQ(drc.stats().evictions, 1u);
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kCompleted);
  EXPECT_EQ(drc.Begin(Key(2), kT0).state, State::kNew);
}

TEST(DuplicateRequestCacheTest, ByteLimitEvictsAndOversizeReplyIsNotCached) {
  DuplicateRequestCache drc(DrcOptions{.max_reply_bytes = 10});
  drc.Begin(Key(1), kT0);
  drc.Complete(Key(1), std::string(6, 'a'), kT0);
  drc.Begin(Key(2), kT0);
  drc.Complete(Key(2), std::string(6, 'b'), kT0);  // 12 bytes > 10: evict 1
  EXPECT_LE(drc.stats().reply_bytes, 10u);
  EXPECT_EQ(drc.Begin(Key(1), kT0).state, State::kNew);
  drc.Begin(Key(3), kT0);
  drc.Complete(Key(3), std::string(11, 'c'), kT0);
  EXPECT_EQ(drc.Begin(Key(3), kT0).state, State::kNew);
}

TEST(DuplicateRequestCacheTest, ConcurrentUseKeepsBoundsAndCounts) {
  DuplicateRequestCache drc(DrcOptions{.max_entries = 64});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&drc, t] {
      for (uint32_t i = 0; i < 1000; ++i) {
        DrcKey k = Key(i, "a", "198.18.0." + std::to_string(t));
        if (drc.Begin(k, kT0).state == State::kNew) drc.Complete(k, "r", kT0);
      }
    });
  }
  for (auto& th : threads) th.join();
  DrcStats s = drc.stats();
  EXPECT_LE(s.entries, 64u);
  EXPECT_EQ(s.misses, 4000u);
}

}  // namespace
}  // namespace lockwarden::gateway
