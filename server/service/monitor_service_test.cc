// MonitorService over real gRPC on loopback: the durable statd, stale vs
// fresh SM_NOTIFY, SIMU_CRASH with grace and outgoing notifications.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class MonitorServiceTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  v1::NotifyResponse Notify(const std::string& mon_name, int32_t state) {
    v1::NotifyRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_mon_name(mon_name);
    r.set_state(state);
    v1::NotifyResponse resp;
    grpc::Status s = monitor_->Notify(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  int32_t Stat() {
    v1::StatRequest r;
    r.set_gateway_id("gw-a");
    r.set_mon_name("anything");
    v1::StatResponse resp;
    EXPECT_TRUE(monitor_->Stat(Ctx().get(), r, &resp).ok());
    return resp.state();
  }

  std::vector<v1::NotificationEvent> ReadNotifications(uint64_t after, int timeout_ms = 3000) {
    auto ctx = Ctx(timeout_ms);
    v1::WatchNotificationsRequest req;
    req.set_gateway_id("gw-a");
    req.set_after_sequence(after);
    auto reader = monitor_->WatchNotifications(ctx.get(), req);
    v1::WatchNotificationsResponse resp;
    std::vector<v1::NotificationEvent> out;
    while (reader->Read(&resp)) {
      if (resp.events_size() == 0) continue;
      out.assign(resp.events().begin(), resp.events().end());
      break;
    }
    ctx->TryCancel();
    reader->Finish();
    return out;
  }

  store::MemoryStore store_;
};

TEST_F(MonitorServiceTest, StateNumberIsOddDurableAndUnchangedByRestart) {
  v1::MonResponse m = Mon("client-1");
  EXPECT_EQ(m.result(), v1::NSM_RESULT_SUCCESS);
  EXPECT_EQ(m.state() % 2, 1) << "odd while up";
  const int32_t before = Stat();
  EXPECT_EQ(before, m.state());
  StopServer();
  StartServer(&store_);
  EXPECT_EQ(Stat(), before) << "a restart is not a loss of state";
}

TEST_F(MonitorServiceTest, StaleNotifyReleasesNothingFreshNotifyReleasesOlderLocks) {
  v1::LockRequest l = LockReq("client-1", 1, "fh", 0, 10);
  l.set_client_state(5);
  ASSERT_EQ(Lock(l), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("client-2", 1, "fh", 20, 10)), v1::LOCK_STATUS_GRANTED);

  v1::NotifyResponse stale = Notify("client-1", 5);
  EXPECT_TRUE(stale.stale());
  EXPECT_EQ(stale.outcome(), v1::NOTIFY_OUTCOME_STALE);
  EXPECT_EQ(ListLocks().locks_size(), 2) << "a stale SM_NOTIFY releases nothing";
  EXPECT_TRUE(Notify("client-1", 3).stale()) << "older than recorded";

  v1::NotifyResponse fresh = Notify("client-1", 7);
  EXPECT_FALSE(fresh.stale());
  EXPECT_EQ(fresh.released_locks(), 1u);
  v1::ListLocksResponse locks = ListLocks();
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "client-2");
  EXPECT_TRUE(Notify("client-1", 7).stale()) << "a repeated notify is stale";
}

TEST_F(MonitorServiceTest, NotifySparesNmLockLocks) {
  v1::LockRequest nm = LockReq("client-1", 1, "fh", 0, 10);
  nm.set_client_state(5);
  nm.set_monitored(false);  // NM_LOCK: only FREE_ALL releases it.
  ASSERT_EQ(Lock(nm), v1::LOCK_STATUS_GRANTED);
  v1::LockRequest mon = LockReq("client-1", 2, "fh", 20, 10);
  mon.set_client_state(5);
  ASSERT_EQ(Lock(mon), v1::LOCK_STATUS_GRANTED);

  v1::NotifyResponse fresh = Notify("client-1", 7);
  EXPECT_FALSE(fresh.stale());
  EXPECT_EQ(fresh.released_locks(), 1u);
  v1::ListLocksResponse locks = ListLocks();
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().svid(), 1u);
  EXPECT_FALSE(locks.locks(0).monitored());
}

TEST_F(MonitorServiceTest, NotifyQueuesStatusCallbacksForRegistrations) {
  Mon("client-1", "kernel-lockd-host");
  Notify("client-1", 9);
  std::vector<v1::NotificationEvent> events = ReadNotifications(0);
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].has_status_callback());
  const v1::StatusCallback& cb = events[0].status_callback();
  EXPECT_EQ(cb.mon_name(), "client-1");
  EXPECT_EQ(cb.state(), 9);
  EXPECT_EQ(cb.my_id().my_name(), "kernel-lockd-host");
  EXPECT_EQ(cb.my_id().my_prog(), 100021u);
  EXPECT_EQ(cb.priv(), std::string(16, '\x07'));
}

TEST_F(MonitorServiceTest, SimuCrashBumpsByTwoNotifiesAndEntersGrace) {
  const int32_t before = Mon("client-1").state();
  Mon("client-2");
  ASSERT_EQ(Lock(LockReq("client-1", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);

  v1::SimuCrashRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  v1::SimuCrashResponse resp;
  ASSERT_TRUE(monitor_->SimuCrash(Ctx().get(), r, &resp).ok());
  EXPECT_EQ(resp.state(), before + 2);
  EXPECT_EQ(resp.state() % 2, 1);
  EXPECT_EQ(Stat(), before + 2);

  std::vector<v1::NotificationEvent> events = ReadNotifications(0);
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    ASSERT_TRUE(e.has_sm_notify());
    EXPECT_EQ(e.sm_notify().announced_name(), "gw-a");
    EXPECT_EQ(e.sm_notify().state(), before + 2);
    // Where the client's LOCKs came from, for a mon_name that won't resolve.
    if (e.sm_notify().target_host() == "client-1") {
      EXPECT_THAT(e.sm_notify().target_addresses(),
                  ::testing::ElementsAre("198.18.0.9"));
    } else {
      EXPECT_THAT(e.sm_notify().target_addresses(), ::testing::IsEmpty());
    }
  }

  // In grace: only reclaims.
  EXPECT_EQ(Lock(LockReq("client-2", 1, "fh2", 0, 10)), v1::LOCK_STATUS_GRACE_PERIOD);
  v1::LockRequest reclaim = LockReq("client-1", 1, "fh", 0, 10);
  reclaim.set_reclaim(true);
  EXPECT_EQ(Lock(reclaim), v1::LOCK_STATUS_GRANTED);

  // Acknowledged notifications are gone.
  for (const auto& e : events) {
    v1::AckNotificationRequest ack;
    ack.set_request_id(NextRequestId());
    ack.set_gateway_id("gw-a");
    ack.set_sequence(e.sequence());
    ack.set_outcome(v1::NOTIFICATION_OUTCOME_DELIVERED);
    v1::AckNotificationResponse ar;
    ASSERT_TRUE(monitor_->AckNotification(Ctx().get(), ack, &ar).ok());
    EXPECT_TRUE(ar.applied());
  }
  EXPECT_TRUE(ReadNotifications(0, 300).empty());
}

TEST_F(MonitorServiceTest, GraceEndsAtTheDeadline) {
  Mon("client-1");
  ASSERT_EQ(Lock(LockReq("client-1", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::SimuCrashRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  v1::SimuCrashResponse resp;
  ASSERT_TRUE(monitor_->SimuCrash(Ctx().get(), r, &resp).ok());
  EXPECT_EQ(Lock(LockReq("client-9", 1, "fh9", 0, 10)), v1::LOCK_STATUS_GRACE_PERIOD);
  clock_.AdvanceMs(3500);  // Past the fixture's 3 s grace period.
  v1::LockStatus status = v1::LOCK_STATUS_GRACE_PERIOD;
  for (int i = 0; i < 40 && status == v1::LOCK_STATUS_GRACE_PERIOD; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    status = Lock(LockReq("client-9", 1, "fh9", 0, 10));
  }
  EXPECT_EQ(status, v1::LOCK_STATUS_GRANTED);
}

TEST_F(MonitorServiceTest, FailedDeliveryKeepsTheNotificationAndCountsAttempts) {
  Mon("client-1");
  v1::SimuCrashRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  v1::SimuCrashResponse resp;
  ASSERT_TRUE(monitor_->SimuCrash(Ctx().get(), r, &resp).ok());
  std::vector<v1::NotificationEvent> events = ReadNotifications(0);
  ASSERT_EQ(events.size(), 1u);
  v1::AckNotificationRequest ack;
  ack.set_request_id(NextRequestId());
  ack.set_gateway_id("gw-a");
  ack.set_sequence(events[0].sequence());
  ack.set_outcome(v1::NOTIFICATION_OUTCOME_FAILED);
  ack.set_attempts(3);
  ack.set_last_error("timeout");
  v1::AckNotificationResponse ar;
  ASSERT_TRUE(monitor_->AckNotification(Ctx().get(), ack, &ar).ok());
  std::vector<v1::NotificationEvent> again = ReadNotifications(0);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempts(), 3u);
}

TEST_F(MonitorServiceTest, UnmonAndUnmonAllRemoveRegistrations) {
  Mon("client-1");
  Mon("client-2");
  v1::UnmonRequest u;
  u.set_request_id(NextRequestId());
  u.set_gateway_id("gw-a");
  u.set_mon_name("client-1");
  u.mutable_my_id()->set_my_name("localhost");
  u.mutable_my_id()->set_my_prog(100021);
  u.mutable_my_id()->set_my_vers(4);
  u.mutable_my_id()->set_my_proc(16);
  v1::UnmonResponse ur;
  ASSERT_TRUE(monitor_->Unmon(Ctx().get(), u, &ur).ok());
  EXPECT_EQ(ur.state() % 2, 1);
  v1::UnmonAllRequest ua;
  ua.set_request_id(NextRequestId());
  ua.set_gateway_id("gw-a");
  *ua.mutable_my_id() = u.my_id();
  v1::UnmonAllResponse uar;
  ASSERT_TRUE(monitor_->UnmonAll(Ctx().get(), ua, &uar).ok());
  // Nothing monitored any more: SIMU_CRASH notifies nobody.
  v1::SimuCrashRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  v1::SimuCrashResponse resp;
  ASSERT_TRUE(monitor_->SimuCrash(Ctx().get(), r, &resp).ok());
  EXPECT_TRUE(ReadNotifications(0, 300).empty());
}

TEST_F(MonitorServiceTest, InvalidPrivIsRejectedWithTheFieldNamed) {
  v1::MonRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  r.set_mon_name("client-1");
  r.mutable_my_id()->set_my_name("localhost");
  r.mutable_my_id()->set_my_prog(100021);
  r.set_priv("short");
  v1::MonResponse resp;
  grpc::Status s = monitor_->Mon(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("priv"), std::string::npos);
}

}  // namespace
}  // namespace lockwarden::service::testing
