// AdminService maintenance calls over real gRPC on loopback: DrainGateway
// (no new waiters, queued ones still granted, visible in ListGateways,
// durable across a restart),
// gateway activity (streams, last_seen_at) and client activity.
#include <string>

#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class AdminMaintenanceTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  grpc::Status Drain(const std::string& gateway, bool drain,
                     v1::DrainGatewayResponse* out = nullptr) {
    v1::DrainGatewayRequest r;
    r.set_request_id(NextRequestId());
    r.set_reason("maintenance test");
    r.set_gateway_id(gateway);
    r.set_drain(drain);
    v1::DrainGatewayResponse resp;
    grpc::Status s = admin_->DrainGateway(Ctx().get(), r, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  v1::Gateway GatewayA() {
    v1::ListGatewaysRequest r;
    r.set_gateway_id("gw-a");
    v1::ListGatewaysResponse resp;
    grpc::Status s = admin_->ListGateways(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.gateways_size() == 1 ? resp.gateways(0) : v1::Gateway();
  }

  store::MemoryStore store_;
};

TEST_F(AdminMaintenanceTest, DrainedGatewayQueuesNoNewWaitersButGrantsQueuedOnes) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);

  v1::DrainGatewayResponse d;
  grpc::Status s = Drain("gw-a", true, &d);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(d.draining());
  EXPECT_EQ(d.waiter_count(), 1u);
  EXPECT_TRUE(GatewayA().draining());

  // A new blocking LOCK that conflicts is answered DENIED, not queued.
  v1::LockResponse denied;
  EXPECT_EQ(Lock(LockReq("c3", 3, "f1", 50, 10, true, true), &denied),
            v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(denied.conflicting_holder().owner().client_name(), "c1");
  // An uncontended blocking LOCK is still granted at once.
  EXPECT_EQ(Lock(LockReq("c3", 3, "f2", 0, 10, true, true)), v1::LOCK_STATUS_GRANTED);
  // The waiter queued before the drain is granted when the holder leaves.
  ASSERT_EQ(Unlock("c1", 1, "f1", 0, 100), v1::LOCK_STATUS_GRANTED);
  v1::ListWaitersResponse w;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), v1::ListWaitersRequest(), &w).ok());
  EXPECT_EQ(w.waiters_size(), 0);
  bool c2_holds = false;
  const v1::ListLocksResponse locks = ListLocks("f1");
  for (const v1::Lock& l : locks.locks()) {
    c2_holds |= l.owner().client_name() == "c2";
  }
  EXPECT_TRUE(c2_holds);

  // Undrain: blocking LOCKs queue again.
  ASSERT_TRUE(Drain("gw-a", false, &d).ok());
  EXPECT_FALSE(d.draining());
  EXPECT_FALSE(GatewayA().draining());
  EXPECT_EQ(Lock(LockReq("c4", 4, "f2", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
}

TEST_F(AdminMaintenanceTest, DrainAppliesToLocksBatchedOnASession) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(Drain("gw-a", true).ok());
  grpc::ClientContext ctx;
  auto stream = lock_->Session(&ctx);
  v1::SessionRequest req;
  v1::SessionCall* call = req.add_calls();
  call->set_call_id(1);
  *call->mutable_lock() = LockReq("c2", 2, "f1", 0, 10, true, true);
  ASSERT_TRUE(stream->Write(req));
  v1::SessionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  ASSERT_EQ(resp.results_size(), 1);
  EXPECT_EQ(resp.results(0).code(), 0) << resp.results(0).message();
  EXPECT_EQ(resp.results(0).lock().status(), v1::LOCK_STATUS_DENIED);
  // The session is listed as a stream of the identity of its calls.
  v1::Gateway g = GatewayA();
  bool session_listed = false;
  for (const v1::GatewayStream& st : g.streams()) {
    session_listed |= st.kind() == v1::STREAM_KIND_SESSION;
  }
  EXPECT_TRUE(session_listed);
  stream->WritesDone();
  ctx.TryCancel();
  (void)stream->Finish();
  v1::ListWaitersResponse w;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), v1::ListWaitersRequest(), &w).ok());
  EXPECT_EQ(w.waiters_size(), 0);
}

TEST_F(AdminMaintenanceTest, DrainIsDurableAcrossARestart) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  ASSERT_TRUE(Drain("gw-a", true).ok());
  StopServer();
  StartServer(&store_);  // Recovers from the store: the drain is in it.
  EXPECT_TRUE(GatewayA().draining());
  v1::LockResponse resp;
  EXPECT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, /*block=*/true), &resp),
            v1::LOCK_STATUS_DENIED);
  v1::ListWaitersResponse w;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), v1::ListWaitersRequest(), &w).ok());
  EXPECT_EQ(w.waiters_size(), 0);
  // Undrained, and that too survives a restart.
  ASSERT_TRUE(Drain("gw-a", false).ok());
  StopServer();
  StartServer(&store_);
  EXPECT_FALSE(GatewayA().draining());
  EXPECT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, /*block=*/true)),
            v1::LOCK_STATUS_BLOCKED);
}

TEST_F(AdminMaintenanceTest, DrainNeedsAKnownGatewayAndAReason) {
  EXPECT_EQ(Drain("gw-nobody", true).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::DrainGatewayRequest r;
  r.set_gateway_id("gw-a");
  r.set_drain(true);
  v1::DrainGatewayResponse resp;
  EXPECT_EQ(admin_->DrainGateway(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(GatewayA().draining());
}

TEST_F(AdminMaintenanceTest, ListGatewaysShowsOpenStreamsAndLastSeen) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::Gateway g = GatewayA();
  EXPECT_TRUE(g.has_last_seen_at());
  EXPECT_EQ(g.streams_size(), 0);

  grpc::ClientContext ctx;
  v1::WatchGrantsRequest wr;
  wr.set_gateway_id("gw-a");
  wr.set_instance_name("gateway-pod-0");
  auto reader = lock_->WatchGrants(&ctx, wr);
  // The stream is registered once the server has read its request.
  for (int i = 0; i < 200 && g.streams_size() == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    g = GatewayA();
  }
  ASSERT_EQ(g.streams_size(), 1);
  EXPECT_EQ(g.streams(0).kind(), v1::STREAM_KIND_GRANTS);
  EXPECT_EQ(g.streams(0).instance_name(), "gateway-pod-0");
  EXPECT_NE(g.streams(0).peer_address().find("127.0.0.1"), std::string::npos);
  EXPECT_TRUE(g.streams(0).has_connected_at());

  ctx.TryCancel();
  (void)reader->Finish();
  for (int i = 0; i < 200 && g.streams_size() != 0; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
    g = GatewayA();
  }
  EXPECT_EQ(g.streams_size(), 0);
}

TEST_F(AdminMaintenanceTest, ListClientsShowsLastActivityAndNotifySourceAddress) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::NotifyRequest n;
  n.set_request_id(NextRequestId());
  n.set_gateway_id("gw-a");
  n.set_mon_name("c1");
  n.set_state(3);
  n.set_source_address("198.18.0.7");
  v1::NotifyResponse nr;
  ASSERT_TRUE(monitor_->Notify(Ctx().get(), n, &nr).ok());
  v1::ListClientsRequest r;
  v1::ListClientsResponse resp;
  ASSERT_TRUE(admin_->ListClients(Ctx().get(), r, &resp).ok());
  ASSERT_EQ(resp.clients_size(), 1);
  EXPECT_TRUE(resp.clients(0).has_last_activity_at());
  // The address the core recorded from the LOCK first, then the SM_NOTIFY
  // source this leader saw.
  ASSERT_EQ(resp.clients(0).addresses_size(), 2);
  EXPECT_EQ(resp.clients(0).addresses(0), "198.18.0.9");
  EXPECT_EQ(resp.clients(0).addresses(1), "198.18.0.7");
}

TEST_F(AdminMaintenanceTest, EndGraceLetsNonReclaimRequestsInAtOnce) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::EndGraceRequest e;
  e.set_request_id(NextRequestId());
  e.set_reason("grace drill");
  e.set_gateway_id("gw-a");
  v1::EndGraceResponse er;
  // Not in grace yet.
  EXPECT_EQ(admin_->EndGrace(Ctx().get(), e, &er).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::ResetGatewayRequest r;
  r.set_request_id(NextRequestId());
  r.set_reason("lost state drill");
  r.set_gateway_id("gw-a");
  v1::ResetGatewayResponse rr;
  ASSERT_TRUE(admin_->ResetGateway(Ctx().get(), r, &rr).ok());
  // In grace (3 s in tests): a new, non-reclaim LOCK is refused.
  EXPECT_EQ(Lock(LockReq("c2", 2, "f2", 0, 10)), v1::LOCK_STATUS_GRACE_PERIOD);

  e.set_request_id(NextRequestId());
  grpc::Status s = admin_->EndGrace(Ctx().get(), e, &er);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(er.released_locks(), 0u);
  v1::GetGraceStatusRequest gr;
  gr.set_gateway_id("gw-a");
  v1::GetGraceStatusResponse grace;
  ASSERT_TRUE(admin_->GetGraceStatus(Ctx().get(), gr, &grace).ok());
  ASSERT_EQ(grace.gateways_size(), 1);
  EXPECT_FALSE(grace.gateways(0).in_grace());
  EXPECT_EQ(grace.gateways(0).ledger_size(), 0);
  EXPECT_EQ(Lock(LockReq("c2", 2, "f2", 0, 10)), v1::LOCK_STATUS_GRANTED);
  // The state number stays where the reset put it.
  EXPECT_EQ(grace.gateways(0).nsm_state(), rr.new_state());

  // A retry with the same request_id answers the same (dedup), and an
  // unknown identity is NOT_FOUND.
  s = admin_->EndGrace(Ctx().get(), e, &er);
  EXPECT_TRUE(s.ok()) << s.error_message();
  e.set_request_id(NextRequestId());
  e.set_gateway_id("gw-nobody");
  EXPECT_EQ(admin_->EndGrace(Ctx().get(), e, &er).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace lockwarden::service::testing
