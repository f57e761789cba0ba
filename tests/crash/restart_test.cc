// Restart tests of lockwarden-server as a process: state built through the
// API survives SIGTERM and kill -9 identically (locks with their fencing
// tokens, waiters in queue order, shares, monitors, client and gateway NSM
// state numbers), no grace period follows a restart, an unacknowledged grant
// is redelivered after a restart, and fencing tokens never go back.
#include <signal.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"
#include "tests/common/stubs.h"

namespace lockwarden::crash {
namespace {

using ::lockwarden::testing::ContextWithDeadline;
using ::lockwarden::testing::RequestIdGenerator;
using ::lockwarden::testing::ServerProcess;
using ::lockwarden::testing::Stubs;
using ::google::protobuf::util::MessageDifferencer;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
constexpr absl::Duration kCallTimeout = absl::Seconds(10);
constexpr char kGateway[] = "gw-a";
// Grants stay unconfirmed long enough for a restart to happen in between.
constexpr int64_t kGrantTimeoutMs = 600'000;

v1::LockOwner Owner(const std::string& client, uint32_t svid, const std::string& oh) {
  v1::LockOwner o;
  o.set_client_name(client);
  o.set_svid(svid);
  o.set_oh(oh);
  return o;
}

std::string Priv(char c) { return std::string(16, c); }

v1::MonitorCallback MyId() {
  v1::MonitorCallback id;
  id.set_my_name("gw-a-host");
  id.set_my_prog(100021);
  id.set_my_vers(4);
  id.set_my_proc(16);
  return id;
}

class Client {
 public:
  explicit Client(const ServerProcess& server) : stubs_(server.NewChannel()) {}

  v1::LockResponse Lock(const std::string& fh, const v1::LockOwner& owner, uint64_t offset,
                        uint64_t length, bool exclusive, bool block, int32_t client_state) {
    v1::LockRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_file_handle(fh);
    *req.mutable_owner() = owner;
    req.mutable_range()->set_offset(offset);
    req.mutable_range()->set_length(length);
    req.set_exclusive(exclusive);
    req.set_block(block);
    req.set_client_state(client_state);
    req.set_monitored(true);
    req.set_cookie(absl::StrCat("cookie-", owner.oh()));
    if (block) {
      req.mutable_callback()->set_client_address("127.0.0.1");
      req.mutable_callback()->set_nlm_version(4);
      req.mutable_callback()->set_caller_name(owner.client_name());
    }
    v1::LockResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.lock->Lock(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  void Unlock(const std::string& fh, const v1::LockOwner& owner, uint64_t offset,
              uint64_t length) {
    v1::UnlockRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_file_handle(fh);
    *req.mutable_owner() = owner;
    req.mutable_range()->set_offset(offset);
    req.mutable_range()->set_length(length);
    v1::UnlockResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.lock->Unlock(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }

  v1::LockStatus Share(const std::string& fh, const std::string& client, const std::string& oh,
                       v1::ShareAccess access, v1::ShareDeny deny) {
    v1::ShareRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_file_handle(fh);
    req.mutable_owner()->set_client_name(client);
    req.mutable_owner()->set_oh(oh);
    req.set_access(access);
    req.set_deny(deny);
    v1::ShareResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.lock->Share(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  }

  v1::MonResponse Mon(const std::string& mon_name, char priv) {
    v1::MonRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_mon_name(mon_name);
    *req.mutable_my_id() = MyId();
    req.set_priv(Priv(priv));
    v1::MonResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.monitor->Mon(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  int32_t Stat() {
    v1::StatRequest req;
    req.set_gateway_id(kGateway);
    req.set_mon_name("anyone");
    v1::StatResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.monitor->Stat(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.state();
  }

  v1::NotifyResponse Notify(const std::string& mon_name, int32_t state) {
    v1::NotifyRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_mon_name(mon_name);
    req.set_state(state);
    req.set_source_address("127.0.0.1");
    v1::NotifyResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.monitor->Notify(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  v1::AckGrantResponse Ack(uint64_t sequence) {
    v1::AckGrantRequest req;
    req.set_request_id(ids_.Next());
    req.set_gateway_id(kGateway);
    req.set_sequence(sequence);
    req.set_outcome(v1::GRANT_OUTCOME_DELIVERED);
    v1::AckGrantResponse resp;
    auto ctx = ContextWithDeadline(kCallTimeout);
    grpc::Status s = stubs_.lock->AckGrant(ctx.get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // The first non-empty message of a fresh WatchGrants stream.
  std::vector<v1::GrantEvent> FirstGrants() {
    v1::WatchGrantsRequest req;
    req.set_gateway_id(kGateway);
    auto ctx = ContextWithDeadline(kCallTimeout);
    auto stream = stubs_.lock->WatchGrants(ctx.get(), req);
    v1::WatchGrantsResponse msg;
    std::vector<v1::GrantEvent> out;
    while (out.empty() && stream->Read(&msg)) {
      out.assign(msg.events().begin(), msg.events().end());
    }
    ctx->TryCancel();
    (void)stream->Finish();
    return out;
  }

  // The first status callback of a fresh WatchNotifications stream.
  std::vector<v1::NotificationEvent> FirstNotifications() {
    v1::WatchNotificationsRequest req;
    req.set_gateway_id(kGateway);
    auto ctx = ContextWithDeadline(kCallTimeout);
    auto stream = stubs_.monitor->WatchNotifications(ctx.get(), req);
    v1::WatchNotificationsResponse msg;
    std::vector<v1::NotificationEvent> out;
    while (out.empty() && stream->Read(&msg)) {
      out.assign(msg.events().begin(), msg.events().end());
    }
    ctx->TryCancel();
    (void)stream->Finish();
    return out;
  }

  Stubs& stubs() { return stubs_; }

 private:
  Stubs stubs_;
  RequestIdGenerator ids_{"restart"};
};

// Everything the admin listings and Stat show.
struct Observed {
  std::vector<v1::Lock> locks;
  std::vector<v1::Waiter> waiters;
  std::vector<v1::Share> shares;
  int32_t nsm_state = 0;
};

Observed Observe(Client& c) {
  Observed o;
  auto locks = testing::ListAllLocks(*c.stubs().admin);
  auto waiters = testing::ListAllWaiters(*c.stubs().admin);
  auto shares = testing::ListAllShares(*c.stubs().admin);
  EXPECT_TRUE(locks.ok() && waiters.ok() && shares.ok());
  if (locks.ok()) o.locks = *locks;
  if (waiters.ok()) o.waiters = *waiters;
  if (shares.ok()) o.shares = *shares;
  o.nsm_state = c.Stat();
  return o;
}

template <typename Proto>
void ExpectSameRows(const std::vector<Proto>& before, const std::vector<Proto>& after,
                    const char* what) {
  ASSERT_EQ(before.size(), after.size()) << what;
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(before[i], after[i]))
        << what << " #" << i << "\n before: " << before[i].ShortDebugString()
        << "\n after:  " << after[i].ShortDebugString();
  }
}

std::unique_ptr<ServerProcess> StartServer() {
  testing::ServerProcessOptions o;
  o.extra_args = {absl::StrCat("--grant-timeout-ms=", kGrantTimeoutMs)};
  auto server = ServerProcess::Start(o);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

void Stop(ServerProcess& server, int signal) {
  if (signal == SIGKILL) {
    LW_ASSERT_OK(server.Kill(SIGKILL));
  } else {
    auto code = server.Terminate();
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
}

const v1::LockOwner kA = Owner("c-alpha", 1, "A");
const v1::LockOwner kB = Owner("c-alpha", 2, "B");
const v1::LockOwner kC = Owner("c-beta", 7, "C");
const v1::LockOwner kD = Owner("c-gamma", 9, "D");
constexpr int32_t kAlphaState = 5, kBetaState = 7, kGammaState = 9;

class RestartTest : public ::testing::TestWithParam<int> {};

TEST_P(RestartTest, EverythingSurvivesIdentically) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  Observed before;
  uint64_t max_token = 0;
  {
    Client c(*server);
    auto granted = [&](const v1::LockResponse& r) {
      EXPECT_EQ(r.status(), v1::LOCK_STATUS_GRANTED);
      max_token = std::max(max_token, r.fencing_token());
    };
    granted(c.Lock("f1", kA, 0, 10, true, false, kAlphaState));
    granted(c.Lock("f1", kA, 100, 0, false, false, kAlphaState));      // len 0: to EOF.
    granted(c.Lock("f2", kC, 0, kMax, true, false, kBetaState));       // [0, 2^64-2].
    granted(c.Lock("f2", kD, kMax, 0, true, false, kGammaState));      // Byte 2^64-1.
    granted(c.Lock("f3", kB, 5, 5, false, false, kAlphaState));
    granted(c.Lock("f3", kC, 5, 5, false, false, kBetaState));
    // Two blocked waiters behind A on f1, through gateway gw-a, B first.
    EXPECT_EQ(c.Lock("f1", kB, 0, 5, true, true, kAlphaState).status(),
              v1::LOCK_STATUS_BLOCKED);
    EXPECT_EQ(c.Lock("f1", kC, 2, 1, false, true, kBetaState).status(),
              v1::LOCK_STATUS_BLOCKED);
    EXPECT_EQ(c.Share("f4", "c-alpha", "A", v1::SHARE_ACCESS_READ_WRITE,
                      v1::SHARE_DENY_WRITE),
              v1::LOCK_STATUS_GRANTED);
    EXPECT_EQ(c.Share("f4", "c-beta", "C", v1::SHARE_ACCESS_READ, v1::SHARE_DENY_NONE),
              v1::LOCK_STATUS_GRANTED);
    const v1::MonResponse mon = c.Mon("c-beta", 'p');
    EXPECT_EQ(mon.result(), v1::NSM_RESULT_SUCCESS);
    EXPECT_EQ(c.Mon("c-gamma", 'q').result(), v1::NSM_RESULT_SUCCESS);
    before = Observe(c);
    EXPECT_EQ(before.nsm_state, mon.state());
    EXPECT_EQ(before.nsm_state % 2, 1) << "NSM state numbers are odd while up";
    ASSERT_EQ(before.locks.size(), 6u);
    ASSERT_EQ(before.waiters.size(), 2u);
    EXPECT_EQ(before.waiters[0].owner().oh(), "B");
    EXPECT_EQ(before.waiters[1].owner().oh(), "C");
    EXPECT_EQ(before.shares.size(), 2u);
  }

  Stop(*server, GetParam());
  LW_ASSERT_OK(server->Restart());

  Client c(*server);
  const Observed after = Observe(c);
  ExpectSameRows(before.locks, after.locks, "lock");
  ExpectSameRows(before.waiters, after.waiters, "waiter");
  ExpectSameRows(before.shares, after.shares, "share");
  EXPECT_EQ(after.nsm_state, before.nsm_state) << "a restart must not bump the NSM state";

  // No grace: an ordinary (non-reclaim) LOCK is granted at once, with a
  // fencing token above every token granted before the restart.
  const v1::LockResponse fresh = c.Lock("f5", Owner("c-delta", 3, "E"), 0, 1, true, false, 1);
  EXPECT_EQ(fresh.status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_GT(fresh.fencing_token(), max_token);
  // The conflict structure survived too: B still waits behind A's lock.
  const v1::LockResponse conflict = c.Lock("f1", kD, 0, 1, true, false, kGammaState);
  EXPECT_EQ(conflict.status(), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(conflict.conflicting_holder().owner().oh(), "A");

  // The client NSM state numbers survived: a notify with a state older than
  // c-alpha's recorded one is stale and releases nothing (had the record
  // been lost, it would count as a reboot and release A's and B's locks).
  const v1::NotifyResponse stale = c.Notify("c-alpha", kAlphaState - 2);
  EXPECT_TRUE(stale.stale());
  EXPECT_EQ(stale.released_locks(), 0u);
  // The monitors survived: c-beta's reboot owes gw-a-host a status callback
  // with the priv given to Mon before the restart.
  const v1::NotifyResponse reboot = c.Notify("c-beta", kBetaState + 2);
  EXPECT_FALSE(reboot.stale());
  EXPECT_GT(reboot.released_locks(), 0u);  // C's monitored locks, share, waiter.
  const std::vector<v1::NotificationEvent> events = c.FirstNotifications();
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].has_status_callback());
  EXPECT_EQ(events[0].status_callback().mon_name(), "c-beta");
  EXPECT_EQ(events[0].status_callback().state(), kBetaState + 2);
  EXPECT_EQ(events[0].status_callback().priv(), Priv('p'));
  EXPECT_EQ(events[0].status_callback().my_id().my_name(), "gw-a-host");
}

TEST_P(RestartTest, UnackedGrantIsRedeliveredAndCanBeAcked) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  v1::GrantEvent first;
  {
    Client c(*server);
    ASSERT_EQ(c.Lock("f1", kA, 0, 10, true, false, kAlphaState).status(),
              v1::LOCK_STATUS_GRANTED);
    ASSERT_EQ(c.Lock("f1", kB, 0, 10, true, true, kAlphaState).status(),
              v1::LOCK_STATUS_BLOCKED);
    c.Unlock("f1", kA, 0, 0);  // B is granted, unconfirmed.
    const std::vector<v1::GrantEvent> events = c.FirstGrants();
    ASSERT_EQ(events.size(), 1u);
    first = events[0];
    EXPECT_EQ(first.owner().oh(), "B");
    EXPECT_EQ(first.cookie(), "cookie-B");
    // Not acked.
  }
  Stop(*server, GetParam());
  LW_ASSERT_OK(server->Restart());

  Client c(*server);
  const std::vector<v1::GrantEvent> again = c.FirstGrants();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].sequence(), first.sequence());
  EXPECT_EQ(again[0].fencing_token(), first.fencing_token());
  EXPECT_TRUE(MessageDifferencer::Equals(again[0].owner(), first.owner()));
  EXPECT_TRUE(MessageDifferencer::Equals(again[0].range(), first.range()));
  EXPECT_EQ(again[0].cookie(), first.cookie());
  EXPECT_TRUE(MessageDifferencer::Equals(again[0].deadline(), first.deadline()));
  const v1::AckGrantResponse ack = c.Ack(again[0].sequence());
  EXPECT_TRUE(ack.applied());
  EXPECT_TRUE(ack.lock_held());
  auto locks = testing::ListAllLocks(*c.stubs().admin);
  ASSERT_TRUE(locks.ok()) << locks.status();
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_EQ((*locks)[0].fencing_token(), first.fencing_token());
  EXPECT_TRUE((*locks)[0].confirmed());
  // Nothing is pending any more.
  const v1::LockResponse probe = c.Lock("f9", kD, 0, 1, true, false, kGammaState);
  EXPECT_EQ(probe.status(), v1::LOCK_STATUS_GRANTED);
}

TEST_P(RestartTest, FencingTokensKeepIncreasingAcrossRestarts) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  uint64_t last = 0;
  constexpr int kRestarts = 4;
  for (int i = 0; i < kRestarts; ++i) {
    {
      Client c(*server);
      for (int k = 0; k < 3; ++k) {
        const v1::LockResponse r = c.Lock(absl::StrCat("f", i), Owner("c", i * 10 + k, "o"),
                                          static_cast<uint64_t>(k) * 10, 5, true, false, 1);
        ASSERT_EQ(r.status(), v1::LOCK_STATUS_GRANTED);
        EXPECT_GT(r.fencing_token(), last) << "restart " << i << " lock " << k;
        last = r.fencing_token();
      }
      // Released locks' tokens are not reused either.
      c.Unlock(absl::StrCat("f", i), Owner("c", i * 10 + 2, "o"), 0, 0);
    }
    Stop(*server, GetParam());
    LW_ASSERT_OK(server->Restart());
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, RestartTest, ::testing::Values(SIGTERM, SIGKILL),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == SIGKILL ? std::string("Sigkill")
                                                        : std::string("Sigterm");
                         });

}  // namespace
}  // namespace lockwarden::crash
