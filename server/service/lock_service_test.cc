// LockService and AdminService over real gRPC on loopback.
#include <limits>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class LockServiceTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  // Opens WatchGrants and returns the first batch of events (or none by the
  // deadline).
  std::vector<v1::GrantEvent> ReadGrants(uint64_t after, int timeout_ms = 5000) {
    auto ctx = Ctx(timeout_ms);
    v1::WatchGrantsRequest req;
    req.set_gateway_id("gw-a");
    req.set_after_sequence(after);
    auto reader = lock_->WatchGrants(ctx.get(), req);
    v1::WatchGrantsResponse resp;
    std::vector<v1::GrantEvent> out;
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

TEST_F(LockServiceTest, ConflictingOwnersAreDeniedAndTestNamesTheHolder) {
  v1::LockResponse granted;
  EXPECT_EQ(Lock(LockReq("host-a", 1, "fh1", 0, 100), &granted), v1::LOCK_STATUS_GRANTED);
  EXPECT_GT(granted.fencing_token(), 0u);

  v1::LockResponse denied;
  EXPECT_EQ(Lock(LockReq("host-b", 7, "fh1", 50, 10), &denied), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(denied.conflicting_holder().owner().client_name(), "host-a");
  EXPECT_EQ(denied.conflicting_holder().range().offset(), 0u);
  EXPECT_EQ(denied.conflicting_holder().range().length(), 100u);

  // Two svids on one host are different owners.
  EXPECT_EQ(Lock(LockReq("host-a", 2, "fh1", 10, 1)), v1::LOCK_STATUS_DENIED);

  v1::TestRequest t;
  t.set_gateway_id("gw-a");
  t.set_file_handle("fh1");
  t.mutable_owner()->set_client_name("host-b");
  t.mutable_range()->set_offset(99);
  t.mutable_range()->set_length(0);  // To end of file.
  t.set_exclusive(false);
  v1::TestResponse tr;
  ASSERT_TRUE(lock_->Test(Ctx().get(), t, &tr).ok());
  EXPECT_EQ(tr.status(), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(tr.conflicting_holder().owner().client_name(), "host-a");

  EXPECT_EQ(Unlock("host-a", 1, "fh1", 0, 100), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(lock_->Test(Ctx().get(), t, &tr).ok());
  EXPECT_EQ(tr.status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(Lock(LockReq("host-b", 7, "fh1", 50, 10)), v1::LOCK_STATUS_GRANTED);
}

TEST_F(LockServiceTest, SharedLocksCoexistAndRangesUpTo2To64Work) {
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(Lock(LockReq("a", 1, "fh", kMax - 10, 0, /*exclusive=*/false)),
            v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(Lock(LockReq("b", 1, "fh", kMax - 5, 5, false)), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(Lock(LockReq("c", 1, "fh", kMax - 1, 100, true)), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(Lock(LockReq("c", 1, "fh", 0, kMax - 11, true)), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(ListLocks("fh").locks_size(), 3);
}

TEST_F(LockServiceTest, BlockedLockIsGrantedThroughTheStreamAndConfirmedByAck) {
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::LockRequest blocked = LockReq("b", 2, "fh", 5, 10, true, /*block=*/true);
  ASSERT_EQ(Lock(blocked), v1::LOCK_STATUS_BLOCKED);

  v1::ListWaitersRequest wr;
  v1::ListWaitersResponse waiters;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), wr, &waiters).ok());
  ASSERT_EQ(waiters.waiters_size(), 1);
  EXPECT_EQ(waiters.waiters(0).owner().client_name(), "b");

  EXPECT_TRUE(ReadGrants(0, 300).empty()) << "nothing granted yet";
  ASSERT_EQ(Unlock("a", 1, "fh", 0, 10), v1::LOCK_STATUS_GRANTED);

  std::vector<v1::GrantEvent> grants = ReadGrants(0);
  ASSERT_EQ(grants.size(), 1u);
  const v1::GrantEvent& g = grants[0];
  EXPECT_EQ(g.owner().client_name(), "b");
  EXPECT_EQ(g.range().offset(), 5u);
  EXPECT_EQ(g.cookie(), "cookie");
  EXPECT_EQ(g.callback().client_address(), "198.18.0.9");
  EXPECT_GT(g.fencing_token(), 0u);

  // Unacknowledged: a new stream delivers it again.
  std::vector<v1::GrantEvent> again = ReadGrants(0);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].sequence(), g.sequence());

  v1::ListLocksResponse locks = ListLocks("fh");
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_FALSE(locks.locks(0).confirmed());

  v1::AckGrantRequest ack;
  ack.set_request_id(NextRequestId());
  ack.set_gateway_id("gw-a");
  ack.set_sequence(g.sequence());
  ack.set_outcome(v1::GRANT_OUTCOME_DELIVERED);
  v1::AckGrantResponse ack_resp;
  ASSERT_TRUE(lock_->AckGrant(Ctx().get(), ack, &ack_resp).ok());
  EXPECT_TRUE(ack_resp.applied());
  EXPECT_TRUE(ack_resp.lock_held());
  EXPECT_TRUE(ListLocks("fh").locks(0).confirmed());
  EXPECT_TRUE(ReadGrants(0, 300).empty()) << "acknowledged events are not redelivered";
}

TEST_F(LockServiceTest, UnconfirmedGrantExpiresAndPassesToTheNextWaiter) {
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("b", 1, "fh", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  ASSERT_EQ(Lock(LockReq("c", 1, "fh", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  ASSERT_EQ(Unlock("a", 1, "fh", 0, 10), v1::LOCK_STATUS_GRANTED);
  std::vector<v1::GrantEvent> first = ReadGrants(0);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].owner().client_name(), "b");

  clock_.AdvanceMs(2500);  // Past the 2 s grant timeout of the fixture.
  std::vector<v1::GrantEvent> next;
  for (int i = 0; i < 30 && next.empty(); ++i) {
    next = ReadGrants(first[0].sequence(), 200);
  }
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].owner().client_name(), "c");
  v1::ListLocksResponse locks = ListLocks("fh");
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "c");
}

TEST_F(LockServiceTest, CancelRemovesTheWaiter) {
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::LockRequest b = LockReq("b", 1, "fh", 0, 10, true, true);
  ASSERT_EQ(Lock(b), v1::LOCK_STATUS_BLOCKED);
  v1::CancelRequest c;
  c.set_request_id(NextRequestId());
  c.set_gateway_id("gw-a");
  c.set_file_handle("fh");
  *c.mutable_owner() = b.owner();
  *c.mutable_range() = b.range();
  c.set_exclusive(true);
  c.set_block(true);
  v1::CancelResponse cr;
  ASSERT_TRUE(lock_->Cancel(Ctx().get(), c, &cr).ok());
  EXPECT_EQ(cr.status(), v1::LOCK_STATUS_GRANTED);
  c.set_request_id(NextRequestId());
  ASSERT_TRUE(lock_->Cancel(Ctx().get(), c, &cr).ok());
  EXPECT_EQ(cr.status(), v1::LOCK_STATUS_DENIED) << "nothing left to cancel";
  ASSERT_EQ(Unlock("a", 1, "fh", 0, 10), v1::LOCK_STATUS_GRANTED);
  EXPECT_TRUE(ReadGrants(0, 300).empty());
}

TEST_F(LockServiceTest, DeadlockAcrossFilesIsRefused) {
  ASSERT_EQ(Lock(LockReq("a", 1, "f1", 0, 1)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("b", 1, "f2", 0, 1)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("a", 1, "f2", 0, 1, true, true)), v1::LOCK_STATUS_BLOCKED);
  EXPECT_EQ(Lock(LockReq("b", 1, "f1", 0, 1, true, true)), v1::LOCK_STATUS_DEADLOCK);
}

TEST_F(LockServiceTest, SharesConflictByAccessAndDeny) {
  auto share = [&](const std::string& client, v1::ShareAccess access, v1::ShareDeny deny) {
    v1::ShareRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_file_handle("fh");
    r.mutable_owner()->set_client_name(client);
    r.mutable_owner()->set_oh("oh");
    r.set_access(access);
    r.set_deny(deny);
    v1::ShareResponse resp;
    EXPECT_TRUE(lock_->Share(Ctx().get(), r, &resp).ok());
    return resp.status();
  };
  EXPECT_EQ(share("a", v1::SHARE_ACCESS_READ, v1::SHARE_DENY_WRITE), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(share("b", v1::SHARE_ACCESS_WRITE, v1::SHARE_DENY_NONE), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(share("b", v1::SHARE_ACCESS_READ, v1::SHARE_DENY_NONE), v1::LOCK_STATUS_GRANTED);
  v1::UnshareRequest u;
  u.set_request_id(NextRequestId());
  u.set_gateway_id("gw-a");
  u.set_file_handle("fh");
  u.mutable_owner()->set_client_name("a");
  u.mutable_owner()->set_oh("oh");
  v1::UnshareResponse ur;
  ASSERT_TRUE(lock_->Unshare(Ctx().get(), u, &ur).ok());
  EXPECT_EQ(share("b", v1::SHARE_ACCESS_WRITE, v1::SHARE_DENY_NONE), v1::LOCK_STATUS_GRANTED);
}

TEST_F(LockServiceTest, FreeAllReleasesOnlyThatClient) {
  ASSERT_EQ(Lock(LockReq("a", 1, "f1", 0, 1)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("a", 2, "f2", 0, 1)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("b", 1, "f3", 0, 1)), v1::LOCK_STATUS_GRANTED);
  v1::FreeAllRequest r;
  r.set_request_id(NextRequestId());
  r.set_gateway_id("gw-a");
  r.set_client_name("a");
  r.set_state(3);
  v1::FreeAllResponse resp;
  ASSERT_TRUE(lock_->FreeAll(Ctx().get(), r, &resp).ok());
  EXPECT_EQ(resp.released_locks(), 2u);
  v1::ListLocksResponse locks = ListLocks();
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "b");
}

TEST_F(LockServiceTest, RetriedRequestIdIsAppliedOnce) {
  v1::LockRequest r = LockReq("a", 1, "fh", 0, 10);
  v1::LockResponse first, second;
  ASSERT_EQ(Lock(r, &first), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Unlock("a", 1, "fh", 0, 10), v1::LOCK_STATUS_GRANTED);
  // The retry of the first LOCK (same request id) must not take the lock again.
  ASSERT_EQ(Lock(r, &second), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(second.fencing_token(), first.fencing_token());
  EXPECT_EQ(ListLocks("fh").locks_size(), 0);
}

TEST_F(LockServiceTest, InvalidFieldsAreNamed) {
  v1::LockRequest r = LockReq("a", 1, std::string(65, 'x'), 0, 1);
  v1::LockResponse resp;
  grpc::Status s = lock_->Lock(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("file_handle"), std::string::npos) << s.error_message();

  r = LockReq("", 1, "fh", 0, 1);
  s = lock_->Lock(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("owner.client_name"), std::string::npos);

  r = LockReq(std::string(1025, 'n'), 1, "fh", 0, 1);
  s = lock_->Lock(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  r = LockReq("a", 1, "", 0, 1);
  s = lock_->Lock(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  r = LockReq("a", 1, "fh", 0, 1);
  r.clear_gateway_id();
  s = lock_->Lock(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("gateway_id"), std::string::npos);

  v1::AckGrantRequest ack;
  ack.set_gateway_id("gw-a");
  ack.set_sequence(1);
  v1::AckGrantResponse ack_resp;
  s = lock_->AckGrant(Ctx().get(), ack, &ack_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("outcome"), std::string::npos);
  EXPECT_EQ(ListLocks().locks_size(), 0) << "nothing half-applied";
}

TEST_F(LockServiceTest, RestartKeepsLocksWaitersAndTokens) {
  v1::LockResponse a;
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10), &a), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("b", 1, "fh", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  StopServer();
  StartServer(&store_);
  v1::ListLocksResponse locks = ListLocks("fh");
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).fencing_token(), a.fencing_token());
  v1::ListWaitersResponse waiters;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), v1::ListWaitersRequest(), &waiters).ok());
  ASSERT_EQ(waiters.waiters_size(), 1);
  // After restart the waiter is still served in order.
  ASSERT_EQ(Unlock("a", 1, "fh", 0, 10), v1::LOCK_STATUS_GRANTED);
  std::vector<v1::GrantEvent> grants = ReadGrants(0);
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(grants[0].owner().client_name(), "b");
  EXPECT_GT(grants[0].fencing_token(), a.fencing_token()) << "tokens never reused";
}

TEST_F(LockServiceTest, ListLocksPaginates) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_EQ(Lock(LockReq("a", 1, "fh", i * 10, 5)), v1::LOCK_STATUS_GRANTED);
  }
  v1::ListLocksRequest r;
  r.set_page_size(10);
  int seen = 0;
  int pages = 0;
  do {
    v1::ListLocksResponse resp;
    ASSERT_TRUE(admin_->ListLocks(Ctx().get(), r, &resp).ok());
    seen += resp.locks_size();
    EXPECT_EQ(resp.total_size(), 25u);
    r.set_page_token(resp.next_page_token());
    ++pages;
  } while (!r.page_token().empty() && pages < 10);
  EXPECT_EQ(seen, 25);
  EXPECT_EQ(pages, 3);
}

TEST_F(LockServiceTest, ServerStatusReportsCommits) {
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::GetServerStatusResponse st;
  ASSERT_TRUE(admin_->GetServerStatus(Ctx().get(), v1::GetServerStatusRequest(), &st).ok());
  EXPECT_EQ(st.role(), v1::SERVER_ROLE_LEADER);
  EXPECT_EQ(st.store_health(), v1::STORE_HEALTH_OK);
  EXPECT_GE(st.commit_stats().commits(), 1u);
  EXPECT_EQ(st.lock_count(), 1u);
}

}  // namespace
}  // namespace lockwarden::service::testing
