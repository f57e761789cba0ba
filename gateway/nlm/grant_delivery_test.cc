// GrantDelivery against a real LockServer and a fake client NLM on
// loopback: GRANTED_MSG and synchronous GRANTED, refusal, retries until the
// deadline, v1 callbacks, and a gateway restart with a grant outstanding.
#include "gateway/nlm/grant_delivery.h"

#include "gateway/nlm/nlm_test_client.h"
#include "gateway/nlm/nlm_test_env.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nlm {
namespace {

// Owner A holds [0, 100); owner B (same host, other svid) blocks on it;
// A unlocks, so B is granted and the gateway must call B back.
void BlockThenRelease(CLIENT* c) {
  Spec a;
  Spec b = a;
  b.svid = 2;
  b.oh = "oh-2";
  b.block = true;
  ASSERT_EQ(Lock4(c, a), NLM4_GRANTED);
  ASSERT_EQ(Lock4(c, b), NLM4_BLOCKED);
  ASSERT_EQ(Unlock4(c, a), NLM4_GRANTED);
}

size_t CountClientEvents(const NlmTestEnv& env, uint32_t proc) {
  size_t n = 0;
  for (const auto& e : env.client_events()) n += e.proc == proc;
  return n;
}

TEST(GrantDeliveryTest, CookieEncodesTheSequence) {
  const std::string cookie = GrantDelivery::CookieFor(0x0102030405060708ull);
  EXPECT_EQ(cookie, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(GrantDelivery::SequenceFromCookie(cookie), 0x0102030405060708ull);
  EXPECT_EQ(GrantDelivery::SequenceFromCookie("short"), std::nullopt);
  EXPECT_EQ(GrantDelivery::SequenceFromCookie(std::string(8, '\0')),
            std::nullopt);
}

TEST(GrantDeliveryTest, SynchronousGrantedIsAckedDelivered) {
  NlmTestEnvOptions o;
  o.use_granted_msg = false;
  NlmTestEnv env(o);
  CLIENT* c = env.Client(false, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  BlockThenRelease(c);
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_GRANTED, absl::Seconds(10)));
  EXPECT_TRUE(Eventually([&] {
    auto locks = env.ListLocks();
    return locks.size() == 1 && locks[0].confirmed() &&
           locks[0].owner().svid() == 2;
  }));
  EXPECT_EQ(env.grants().stats().delivered, 1u);
  EXPECT_EQ(CountClientEvents(env, NLMPROC4_GRANTED_MSG), 0u);
  clnt_destroy(c);
}

TEST(GrantDeliveryTest, RefusedGrantReleasesTheLock) {
  NlmTestEnvOptions o;
  o.use_granted_msg = false;
  o.client_answers_granted = false;  // the client answers GRANTED with DENIED
  NlmTestEnv env(o);
  CLIENT* c = env.Client(true, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  BlockThenRelease(c);
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_GRANTED, absl::Seconds(10)));
  EXPECT_TRUE(Eventually([&] { return env.grants().stats().refused == 1; }));
  EXPECT_TRUE(Eventually([&] { return env.ListLocks().empty(); }));
  clnt_destroy(c);
}

TEST(GrantDeliveryTest, SilentClientIsRetriedThenUndeliverable) {
  NlmTestEnvOptions o;
  o.client_answers_granted = false;  // GRANTED_MSG never answered
  o.grant_retry_interval = absl::Milliseconds(400);
  o.grant_timeout_ms = 2500;
  NlmTestEnv env(o);
  CLIENT* c = env.Client(false, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  BlockThenRelease(c);
  EXPECT_TRUE(Eventually(
      [&] { return env.grants().stats().undeliverable == 1; },
      absl::Seconds(15)));
  // Retried every 400 ms until 200 ms before the 2.5 s deadline.
  EXPECT_GE(CountClientEvents(env, NLMPROC4_GRANTED_MSG), 3u);
  EXPECT_TRUE(Eventually([&] { return env.ListLocks().empty(); }));
  // Nothing is sent after the deadline.
  const size_t sent = CountClientEvents(env, NLMPROC4_GRANTED_MSG);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_EQ(CountClientEvents(env, NLMPROC4_GRANTED_MSG), sent);
  EXPECT_EQ(env.grants().stats().in_flight, 0u);
  // One event: every attempt after the first is a retry.
  EXPECT_EQ(env.grants().stats().retries, env.grants().stats().attempts - 1);
  EXPECT_GE(env.grants().stats().retries, 2u);
  clnt_destroy(c);
}

TEST(GrantDeliveryTest, V1ClientIsCalledBackWithV1) {
  NlmTestEnv env;
  CLIENT* c = env.Client(false, NLM_VERS);
  ASSERT_NE(c, nullptr);
  Spec a;
  a.offset = 7;
  a.length = 0xffffffff;  // overflows 32 bits: to end of file
  Spec b = a;
  b.svid = 2;
  b.oh = "oh-2";
  b.block = true;
  ASSERT_EQ(Lock1(c, a), LCK_GRANTED);
  ASSERT_EQ(Lock1(c, b), LCK_BLOCKED);
  ASSERT_EQ(Unlock1(c, a), LCK_GRANTED);
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC_GRANTED_MSG, absl::Seconds(10)));
  for (const auto& e : env.client_events()) {
    if (e.proc != NLMPROC_GRANTED_MSG) continue;
    EXPECT_EQ(e.vers, 1u);
    EXPECT_EQ(e.offset, 7u);
    EXPECT_EQ(e.length, 0u);
    EXPECT_EQ(e.svid, 2u);
  }
  EXPECT_TRUE(Eventually([&] {
    auto locks = env.ListLocks();
    return locks.size() == 1 && locks[0].confirmed();
  }));
  clnt_destroy(c);
}

TEST(GrantDeliveryTest, RestartedGatewayDeliversThePendingGrant) {
  NlmTestEnvOptions o;
  o.client_answers_granted = false;
  o.grant_retry_interval = absl::Seconds(2);
  NlmTestEnv env(o);
  CLIENT* c = env.Client(false, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  BlockThenRelease(c);
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_GRANTED_MSG, absl::Seconds(10)));
  clnt_destroy(c);
  // The gateway dies before any GRANTED_RES: the client keeps silent until
  // the old instance is stopped. (Letting it answer earlier raced: the fake
  // client decides after recording the GRANTED_MSG, so its GRANTED_RES
  // could still reach the old instance, which acked the grant itself.)
  env.RestartGateway();
  // The server hands the new instance the unacknowledged event; once the
  // new instance has it in hand and has called the client, every
  // GRANTED_RES can only reach it.
  ASSERT_TRUE(Eventually([&] { return env.grants().stats().attempts >= 1; }))
      << "the new gateway never received the pending grant";
  env.set_client_answers_granted(true);
  EXPECT_TRUE(Eventually([&] {
    auto locks = env.ListLocks();
    return locks.size() == 1 && locks[0].confirmed() &&
           locks[0].owner().svid() == 2;
  })) << "the new gateway did not deliver the pending grant";
  EXPECT_EQ(env.grants().stats().delivered, 1u);
  EXPECT_GE(CountClientEvents(env, NLMPROC4_GRANTED_MSG), 2u);
}

TEST(GrantDeliveryTest, GrantedResForAnEventNotInHandIsStillAcked) {
  NlmTestEnvOptions o;
  o.client_answers_granted = false;
  o.grant_retry_interval = absl::Seconds(30);
  NlmTestEnv env(o);
  CLIENT* c = env.Client(false, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  BlockThenRelease(c);
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_GRANTED_MSG, absl::Seconds(10)));
  std::string cookie;
  for (const auto& e : env.client_events()) {
    if (e.proc == NLMPROC4_GRANTED_MSG) cookie = e.cookie;
  }
  ASSERT_EQ(cookie.size(), 8u);
  // Another process of the same gateway identity (never started, so it has
  // nothing in hand) receives the client's GRANTED_RES: it acks anyway.
  GrantDeliveryOptions gdo;
  gdo.gateway_name = "gw.test";
  NlmCallbackClient callbacks(&env.rpc(), NlmCallbackClientOptions{});
  GrantDelivery other(gdo, &env.server_client(), &callbacks, env.io());
  other.OnGrantedRes(cookie, v1::LOCK_STATUS_GRANTED, "127.0.0.1");
  EXPECT_TRUE(Eventually([&] {
    auto locks = env.ListLocks();
    return locks.size() == 1 && locks[0].confirmed();
  }));
  EXPECT_EQ(other.stats().granted_res_unmatched, 1u);
  other.Stop();
  clnt_destroy(c);
}

}  // namespace
}  // namespace lockwarden::gateway::nlm
