// NsmService end to end on loopback: libtirpc clients -> NsmService ->
// ServerClient -> a real LockServer on a MemoryStore; outgoing SM_NOTIFY
// and status callbacks to fake peers found through an embedded portmapper.
#include "gateway/nsm/nsm_service.h"

#include <string>

#include "absl/strings/match.h"
#include "gateway/nsm/notification_deliverer.h"
#include "gateway/nsm/notification_stream.h"
#include "gateway/nsm/nsm_test_fixture.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nsm::testing {
namespace {

const std::string kPriv = "0123456789abcdef";
constexpr timeval kTimeout{5, 0};

// Decodes an sm_stat_res reply produced by DispatchFrom.
sm_stat_res DecodeStatRes(const std::optional<std::string>& reply) {
  sm_stat_res res{stat_fail, -1};
  EXPECT_TRUE(reply.has_value());
  if (!reply) return res;
  absl::StatusOr<ReplyHeader> header = DecodeReplyHeader(*reply);
  EXPECT_TRUE(header.ok()) << header.status();
  if (!header.ok() || !ReplyStatus(*header).ok()) return res;
  EXPECT_TRUE(XdrDecode(XdrProc(xdr_sm_stat_res),
                        absl::string_view(*reply).substr(
                            header->results_offset),
                        &res)
                  .ok());
  return res;
}

TEST_F(NsmServiceTest, MonReturnsTheDurableOddStateAndStatMatchesIt) {
  sm_stat_res mon = Mon("client-a", "localhost", 100021, 4, 16, kPriv);
  EXPECT_EQ(mon.res_stat, stat_succ);
  EXPECT_EQ(mon.state % 2, 1);
  EXPECT_GT(mon.state, 0);
  sm_stat_res stat = Stat("client-a");
  EXPECT_EQ(stat.res_stat, stat_succ);
  EXPECT_EQ(stat.state, mon.state);
  EXPECT_EQ(nsm_->last_known_state(), mon.state);

  // A server restart on the same store is not a state loss.
  StopLockServer();
  StartLockServer();
  EXPECT_EQ(Stat("client-a").state, mon.state);
  EXPECT_EQ(Mon("client-a", "localhost", 100021, 4, 16, kPriv).state,
            mon.state);
}

TEST_F(NsmServiceTest, UnmonAndUnmonAllAnswerTheState) {
  const int state = Mon("client-a", "localhost", 100021, 4, 16, kPriv).state;
  mon_id id{};
  id.mon_name = const_cast<char*>("client-a");
  id.my_id = my_id{const_cast<char*>("localhost"), 100021, 4, 16};
  sm_stat res{};
  CLIENT* c = NsmClient();
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(clnt_call(c, SM_UNMON, XdrProc(xdr_mon_id),
                      reinterpret_cast<caddr_t>(&id), XdrProc(xdr_sm_stat),
                      reinterpret_cast<caddr_t>(&res), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(res.state, state);
  my_id all{const_cast<char*>("localhost"), 100021, 4, 16};
  res = sm_stat{};
  ASSERT_EQ(clnt_call(c, SM_UNMON_ALL, XdrProc(xdr_my_id),
                      reinterpret_cast<caddr_t>(&all), XdrProc(xdr_sm_stat),
                      reinterpret_cast<caddr_t>(&res), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(res.state, state);
  clnt_destroy(c);
}

TEST_F(NsmServiceTest, PrivateProceduresFromARemoteAddressAreRefused) {
  const int state = Stat("x").state;
  mon args{};
  args.mon_id.mon_name = const_cast<char*>("victim");
  args.mon_id.my_id = my_id{const_cast<char*>("198.18.0.66"), 100021, 4, 16};
  sm_stat_res res = DecodeStatRes(
      DispatchFrom("198.18.0.5", SM_MON, XdrProc(xdr_mon), &args));
  EXPECT_EQ(res.res_stat, stat_fail);
  EXPECT_EQ(res.state, state);
  // SIMU_CRASH from a remote host changes nothing.
  std::optional<std::string> reply =
      DispatchFrom("198.18.0.5", SM_SIMU_CRASH, XdrVoid(), nullptr);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(Stat("x").state, state);
  // SM_STAT is public, as in statd.
  sm_name name{const_cast<char*>("x")};
  EXPECT_EQ(DecodeStatRes(DispatchFrom("198.18.0.5", SM_STAT,
                                       XdrProc(xdr_sm_name), &name))
                .res_stat,
            stat_succ);
  // The same SM_MON from loopback is accepted.
  EXPECT_EQ(DecodeStatRes(
                DispatchFrom("127.0.0.1", SM_MON, XdrProc(xdr_mon), &args))
                .res_stat,
            stat_succ);
}

TEST_F(NsmServiceTest, RemoteMonIsAcceptedWhenConfigured) {
  StopNsm();
  NsmOptions options = DefaultOptions();
  options.allow_remote_mon = true;
  StartNsm(options);
  mon args{};
  args.mon_id.mon_name = const_cast<char*>("client-r");
  args.mon_id.my_id = my_id{const_cast<char*>("198.18.0.5"), 100021, 4, 16};
  EXPECT_EQ(DecodeStatRes(
                DispatchFrom("198.18.0.5", SM_MON, XdrProc(xdr_mon), &args))
                .res_stat,
            stat_succ);
}

TEST_F(NsmServiceTest, SimuCrashBumpsByTwoAndNotifiesTheMonitoredHost) {
  // The fake statd listens on 127.0.0.1; the portmapper maps 100024 there.
  const int before = Mon("127.0.0.1", "localhost", 100021, 4, 16, kPriv).state;
  // The stream survives a server restart (it reconnects).
  StopLockServer();
  StartLockServer();
  ASSERT_TRUE(SimuCrash());
  const int after = Stat("127.0.0.1").state;
  EXPECT_EQ(after, before + 2);
  ASSERT_TRUE(statd_->WaitForCalls(1, absl::Seconds(15)));
  const ReceivedCall got = statd_->calls().front();
  EXPECT_EQ(got.mon_name, kGatewayId);
  EXPECT_EQ(got.state, after);
  EXPECT_EQ(got.peer, "127.0.0.1");
  NotificationDeliverer* deliverer = nsm_->deliverer_for_testing();
  EXPECT_TRUE(Eventually([&] { return deliverer->stats().delivered == 1; }));
  EXPECT_TRUE(Eventually([&] { return deliverer->tracked() == 0; }));
  // An SM_NOTIFY, not a status callback (the metrics tell them apart).
  EXPECT_EQ(nsm_->stats().deliveries.notify_delivered, 1u);
  EXPECT_GE(nsm_->stats().stream.connects, 2u);  // reconnected once
  StopNsm();  // acked: the server has nothing left to send
  EXPECT_FALSE(FirstPendingNotification(absl::Seconds(1)).has_value());
}

TEST_F(NsmServiceTest, AnUnreachableTargetGetsFailedAcksWithGrowingAttempts) {
  // Nothing listens on 127.0.0.2: GETPORT fails at once (port unreachable).
  Mon("127.0.0.2", "localhost", 100021, 4, 16, kPriv);
  ASSERT_TRUE(SimuCrash());
  NotificationDeliverer* deliverer = nsm_->deliverer_for_testing();
  ASSERT_TRUE(
      Eventually([&] { return deliverer->stats().failed_attempts >= 3; }));
  StopNsm();  // the server now hands the event to our own stream
  std::optional<v1::NotificationEvent> event = FirstPendingNotification();
  ASSERT_TRUE(event.has_value());
  EXPECT_EQ(event->sm_notify().target_host(), "127.0.0.2");
  EXPECT_GE(event->attempts(), 3u);
  EXPECT_EQ(statd_->calls().size(), 0u);
}

TEST_F(NsmServiceTest, DeliveryGivesUpAtTheEndOfTheSchedule) {
  StopNsm();
  NsmOptions options = DefaultOptions();
  options.notify_retry_schedule = {absl::Milliseconds(50),
                                   absl::Milliseconds(50)};
  StartNsm(options);
  Mon("127.0.0.2", "localhost", 100021, 4, 16, kPriv);
  ASSERT_TRUE(SimuCrash());
  NotificationDeliverer* deliverer = nsm_->deliverer_for_testing();
  ASSERT_TRUE(Eventually([&] { return deliverer->stats().gave_up == 1; }));
  EXPECT_EQ(deliverer->stats().failed_attempts, 3u);
  EXPECT_EQ(deliverer->stats().notify_gave_up, 1u);
  EXPECT_EQ(deliverer->stats().notify_failed_attempts, 3u);
  EXPECT_TRUE(Eventually([&] { return deliverer->tracked() == 0; }));
  StopNsm();
  EXPECT_FALSE(FirstPendingNotification(absl::Seconds(1)).has_value());
}

TEST_F(NsmServiceTest, NewerNotifyReleasesTheClientsLocksAndStaleOneDoesNot) {
  book_.Record("client-a", "127.0.0.1");
  ASSERT_EQ(LockFor("client-a", 1, "fh-1"), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(CountLocks("fh-1"), 1u);
  ASSERT_TRUE(Notify("client-a", 3));  // rebooted: 1 -> 3
  EXPECT_EQ(CountLocks("fh-1"), 0u);

  ASSERT_EQ(LockFor("client-a", 3, "fh-1"), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(Notify("client-a", 3));  // repeated
  ASSERT_TRUE(Notify("client-a", 1));  // older
  EXPECT_EQ(CountLocks("fh-1"), 1u);
}

TEST_F(NsmServiceTest, StrictSourceCheckRejectsANotifyFromAnotherAddress) {
  book_.Record("client-b", "198.18.0.8");
  ASSERT_EQ(LockFor("client-b", 1, "fh-2"), v1::LOCK_STATUS_GRANTED);
  // From the wrong host: answered, not forwarded.
  ASSERT_TRUE(NotifyAnsweredFrom("198.18.0.7", "client-b", 5));
  EXPECT_EQ(CountLocks("fh-2"), 1u);
  // From the recorded address: applied.
  ASSERT_TRUE(NotifyAnsweredFrom("198.18.0.8", "client-b", 5));
  EXPECT_EQ(CountLocks("fh-2"), 0u);
}

TEST_F(NsmServiceTest, StrictSourceCheckAcceptsAnIpLiteralNameFromItself) {
  ASSERT_EQ(LockFor("198.18.0.9", 1, "fh-3"), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(NotifyAnsweredFrom("198.18.0.10", "198.18.0.9", 3));
  EXPECT_EQ(CountLocks("fh-3"), 1u);
  ASSERT_TRUE(NotifyAnsweredFrom("198.18.0.9", "198.18.0.9", 3));
  EXPECT_EQ(CountLocks("fh-3"), 0u);
}

TEST_F(NsmServiceTest, TrustNameModeAcceptsAnySource) {
  StopNsm();
  NsmOptions options = DefaultOptions();
  options.notify_source_check = NsmOptions::NotifySourceCheck::kTrustName;
  StartNsm(options);
  ASSERT_EQ(LockFor("client-t", 1, "fh-4"), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(NotifyAnsweredFrom("198.18.0.77", "client-t", 3));
  EXPECT_EQ(CountLocks("fh-4"), 0u);
}

TEST_F(NsmServiceTest, StatusCallbackReachesLockdWithPrivAndOwnOnesAreAcked) {
  ASSERT_EQ(Mon("client-c", "localhost", 100021, 4, 16, kPriv).res_stat,
            stat_succ);
  // The gateway's own NLM registration: acked without a call.
  ASSERT_EQ(Mon("client-c", kGatewayId, 100021, 4, 16, "ffffffffffffffff")
                .res_stat,
            stat_succ);
  book_.Record("client-c", "127.0.0.1");
  ASSERT_TRUE(Notify("client-c", 7));
  ASSERT_TRUE(lockd_->WaitForCalls(1, absl::Seconds(15)));
  const ReceivedCall got = lockd_->calls().front();
  EXPECT_EQ(got.mon_name, "client-c");
  EXPECT_EQ(got.state, 7);
  EXPECT_EQ(got.priv, kPriv);
  NotificationDeliverer* deliverer = nsm_->deliverer_for_testing();
  EXPECT_TRUE(Eventually([&] {
    return deliverer->stats().delivered == 1 && deliverer->tracked() == 0;
  }));
  EXPECT_EQ(deliverer->stats().self_acked, 1u);
  EXPECT_EQ(lockd_->calls().size(), 1u);
  EXPECT_EQ(statd_->calls().size(), 0u);
  StopNsm();
  EXPECT_FALSE(FirstPendingNotification(absl::Seconds(1)).has_value());
}

TEST_F(NsmServiceTest, EventsBeyondTheTableLimitAreFetchedAgainLater) {
  StopNsm();
  NsmOptions options = DefaultOptions();
  options.max_tracked_events = 1;
  StartNsm(options);
  // Two monitored hosts, both reaching the fake statd on 127.0.0.1.
  Mon("127.0.0.1", "localhost", 100021, 4, 16, kPriv);
  Mon("localhost", "localhost", 100021, 4, 16, kPriv);
  ASSERT_TRUE(SimuCrash());
  ASSERT_TRUE(statd_->WaitForCalls(2, absl::Seconds(15)));
  NotificationDeliverer* deliverer = nsm_->deliverer_for_testing();
  EXPECT_TRUE(Eventually([&] { return deliverer->stats().delivered == 2; }));
  EXPECT_GE(deliverer->stats().refused_full, 1u);
  for (const ReceivedCall& call : statd_->calls()) {
    EXPECT_EQ(call.mon_name, kGatewayId);
  }
}

TEST_F(NsmServiceTest, StopIsPromptWithTheStreamOpen) {
  Mon("client-s", "localhost", 100021, 4, 16, kPriv);
  ASSERT_TRUE(Eventually([&] {
    return nsm_->stream_for_testing()->stats().connects >= 1;
  }));
  const absl::Time start = absl::Now();
  StopNsm();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(NsmServiceTest, ServerDownAnswersStatFailWithTheLastStateAndNoNotify) {
  const int state = Mon("client-d", "localhost", 100021, 4, 16, kPriv).state;
  StopLockServer();
  sm_stat_res res = Stat("client-d");  // after the 3 s failover wait
  EXPECT_EQ(res.res_stat, stat_fail);
  EXPECT_EQ(res.state, state);
  // An SM_NOTIFY the server could not record is not answered, so the
  // sender retransmits it.
  EXPECT_FALSE(NotifyAnsweredFrom("127.0.0.1", "127.0.0.1", 3));
  StartLockServer();
  EXPECT_TRUE(NotifyAnsweredFrom("127.0.0.1", "127.0.0.1", 3));
}

TEST_F(NsmServiceTest, NullProcedureAnswers) {
  CLIENT* c = NsmClient();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(clnt_call(c, SM_NULL, XdrVoid(), nullptr, XdrVoid(), nullptr,
                      kTimeout),
            RPC_SUCCESS);
  clnt_destroy(c);
}

}  // namespace
}  // namespace lockwarden::gateway::nsm::testing
