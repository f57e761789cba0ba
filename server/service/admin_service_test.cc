// AdminService over real gRPC on loopback: views (pagination, filters, queue
// positions, wait-for graph, clients, gateways, monitors, grace, events) and
// each mutation's effect on locks, waiters, NSM state and grace; admin
// authorisation by bearer token and the loopback default.
#include <map>
#include <string>

#include "gtest/gtest.h"
#include "server/service/auth.h"
#include "server/service/snapshot.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class AdminServiceTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  v1::ListWaitersResponse ListWaiters() {
    v1::ListWaitersRequest r;
    v1::ListWaitersResponse resp;
    EXPECT_TRUE(admin_->ListWaiters(Ctx().get(), r, &resp).ok());
    return resp;
  }

  // c1 holds [0,100) of f1; c2 and c3 wait behind it.
  void HolderAndTwoWaiters() {
    ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
    ASSERT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
    ASSERT_EQ(Lock(LockReq("c3", 3, "f1", 50, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  }

  store::MemoryStore store_;
};

TEST_F(AdminServiceTest, WaitersCarryQueuePositions) {
  HolderAndTwoWaiters();
  v1::ListWaitersResponse w = ListWaiters();
  ASSERT_EQ(w.waiters_size(), 2);
  EXPECT_EQ(w.waiters(0).owner().client_name(), "c2");
  EXPECT_EQ(w.waiters(0).queue_position(), 0u);
  EXPECT_EQ(w.waiters(1).queue_position(), 1u);
  ASSERT_EQ(w.waiters(0).blocked_by_size(), 1);
  EXPECT_EQ(w.waiters(0).blocked_by(0).owner().client_name(), "c1");
}

TEST_F(AdminServiceTest, WaitForGraphHasEdgesToTheHolderAndNoCycles) {
  HolderAndTwoWaiters();
  v1::GetWaitForGraphRequest r;
  v1::GetWaitForGraphResponse g;
  ASSERT_TRUE(admin_->GetWaitForGraph(Ctx().get(), r, &g).ok());
  ASSERT_GE(g.edges_size(), 2);
  for (const v1::WaitForEdge& e : g.edges()) {
    EXPECT_EQ(e.holder().client_name(), "c1");
    EXPECT_EQ(e.file_handle(), "f1");
    EXPECT_EQ(e.holder_range().length(), 100u);
  }
  EXPECT_EQ(g.cycles_size(), 0);
  r.mutable_filter()->set_client_name("c3");
  ASSERT_TRUE(admin_->GetWaitForGraph(Ctx().get(), r, &g).ok());
  ASSERT_EQ(g.edges_size(), 1);
  EXPECT_EQ(g.edges(0).waiter().client_name(), "c3");
  EXPECT_EQ(g.edges(0).waiter_range().offset(), 50u);
}

TEST_F(AdminServiceTest, ListClientsPaginatesWithCountsAndStates) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(Lock(LockReq(absl::StrCat("host-", i), 1, absl::StrCat("f", i), 0, 10)),
              v1::LOCK_STATUS_GRANTED);
  }
  v1::ListClientsRequest r;
  r.set_page_size(2);
  std::vector<std::string> names;
  for (int page = 0; page < 10; ++page) {
    v1::ListClientsResponse resp;
    ASSERT_TRUE(admin_->ListClients(Ctx().get(), r, &resp).ok());
    EXPECT_EQ(resp.total_size(), 5u);
    for (const v1::Client& c : resp.clients()) {
      names.push_back(c.client_name());
      EXPECT_EQ(c.lock_count(), 1u);
      EXPECT_EQ(c.nsm_state(), 1);
      ASSERT_EQ(c.gateway_ids_size(), 1);
      EXPECT_EQ(c.gateway_ids(0), "gw-a");
    }
    if (resp.next_page_token().empty()) break;
    r.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"host-0", "host-1", "host-2", "host-3", "host-4"}));
  v1::ListClientsRequest prefix;
  prefix.set_client_name_prefix("host-3");
  v1::ListClientsResponse one;
  ASSERT_TRUE(admin_->ListClients(Ctx().get(), prefix, &one).ok());
  ASSERT_EQ(one.clients_size(), 1);
  prefix.set_gateway_id("gw-other");
  ASSERT_TRUE(admin_->ListClients(Ctx().get(), prefix, &one).ok());
  EXPECT_EQ(one.clients_size(), 0);
  v1::ListClientsRequest bad;
  bad.set_page_token("not-a-token");
  EXPECT_EQ(admin_->ListClients(Ctx().get(), bad, &one).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminServiceTest, ListMonitorsAndGateways) {
  Mon("client-1");
  Mon("client-2");
  ASSERT_EQ(Lock(LockReq("client-1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::ListMonitorsRequest mr;
  v1::ListMonitorsResponse m;
  ASSERT_TRUE(admin_->ListMonitors(Ctx().get(), mr, &m).ok());
  ASSERT_EQ(m.monitors_size(), 2);
  EXPECT_EQ(m.monitors(0).mon_name(), "client-1");
  EXPECT_EQ(m.monitors(0).kind(), v1::MONITOR_KIND_SM_MON);
  EXPECT_EQ(m.monitors(0).my_id().my_prog(), 100021u);
  mr.set_mon_name("client-2");
  ASSERT_TRUE(admin_->ListMonitors(Ctx().get(), mr, &m).ok());
  ASSERT_EQ(m.monitors_size(), 1);

  v1::ListGatewaysRequest gr;
  v1::ListGatewaysResponse g;
  ASSERT_TRUE(admin_->ListGateways(Ctx().get(), gr, &g).ok());
  ASSERT_EQ(g.gateways_size(), 1);
  EXPECT_EQ(g.gateways(0).gateway_id(), "gw-a");
  EXPECT_EQ(g.gateways(0).nsm_state() % 2, 1);
  EXPECT_FALSE(g.gateways(0).in_grace());
  EXPECT_EQ(g.gateways(0).lock_count(), 1u);
  EXPECT_EQ(g.gateways(0).monitored_client_count(), 2u);
}

TEST_F(AdminServiceTest, ForceReleaseOfEachTargetWakesWaiters) {
  struct Case {
    const char* name;
    std::function<void(v1::ForceReleaseRequest*)> target;
  };
  const std::vector<Case> cases = {
      {"lock",
       [](v1::ForceReleaseRequest* r) {
         r->mutable_lock()->set_file_handle("f1");
         r->mutable_lock()->mutable_owner()->set_client_name("c1");
         r->mutable_lock()->mutable_owner()->set_svid(1);
         r->mutable_lock()->mutable_owner()->set_oh("oh-c1-1");
         r->mutable_lock()->mutable_range()->set_offset(0);
         r->mutable_lock()->mutable_range()->set_length(0);
       }},
      {"owner",
       [](v1::ForceReleaseRequest* r) {
         r->mutable_owner()->set_client_name("c1");
         r->mutable_owner()->set_svid(1);
         r->mutable_owner()->set_oh("oh-c1-1");
       }},
      {"client", [](v1::ForceReleaseRequest* r) { r->set_client_name("c1"); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    HolderAndTwoWaiters();
    v1::ForceReleaseRequest r;
    r.set_request_id(NextRequestId());
    r.set_reason("test");
    c.target(&r);
    r.set_validate_only(true);
    v1::ForceReleaseResponse resp;
    ASSERT_TRUE(admin_->ForceRelease(Ctx().get(), r, &resp).ok());
    EXPECT_EQ(resp.released_locks(), 1u);
    EXPECT_EQ(ListLocks().locks_size(), 1) << "validate_only changes nothing";
    r.set_validate_only(false);
    grpc::Status s = admin_->ForceRelease(Ctx().get(), r, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.released_locks(), 1u);
    EXPECT_EQ(resp.granted_waiters(), 2u);
    v1::ListLocksResponse locks = ListLocks();
    ASSERT_EQ(locks.locks_size(), 2);
    for (const v1::Lock& l : locks.locks()) EXPECT_NE(l.owner().client_name(), "c1");
    EXPECT_EQ(ListWaiters().waiters_size(), 0);
    // Clean up for the next case.
    v1::ForceReleaseRequest file;
    file.set_request_id(NextRequestId());
    file.set_reason("cleanup");
    file.set_file_handle("f1");
    ASSERT_TRUE(admin_->ForceRelease(Ctx().get(), file, &resp).ok());
    EXPECT_EQ(resp.released_locks(), 2u);
    EXPECT_EQ(ListLocks().locks_size(), 0);
  }
}

TEST_F(AdminServiceTest, ForceReleaseNeedsReasonAndTarget) {
  v1::ForceReleaseRequest r;
  r.set_client_name("c1");
  v1::ForceReleaseResponse resp;
  EXPECT_EQ(admin_->ForceRelease(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  r.set_reason("x");
  r.clear_client_name();
  EXPECT_EQ(admin_->ForceRelease(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(AdminServiceTest, SimulateClientRebootReleasesExactlyThatClientsOlderLocks) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c2", 1, "f2", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::SimulateClientRebootRequest r;
  r.set_request_id(NextRequestId());
  r.set_reason("drill");
  r.set_client_name("c1");
  v1::SimulateClientRebootResponse resp;
  grpc::Status s = admin_->SimulateClientReboot(Ctx().get(), r, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.new_state(), 3);
  EXPECT_EQ(resp.released_locks(), 1u);
  v1::ListLocksResponse locks = ListLocks();
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "c2");
  // Not newer than the recorded 3: refused.
  r.set_request_id(NextRequestId());
  r.set_new_state(3);
  EXPECT_EQ(admin_->SimulateClientReboot(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  r.set_client_name("nobody");
  r.clear_new_state();
  EXPECT_EQ(admin_->SimulateClientReboot(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminServiceTest, ResetGatewayBumpsByTwoEntersGraceAndQueuesSmNotify) {
  Mon("client-1");
  ASSERT_EQ(Lock(LockReq("client-1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::ListGatewaysResponse before;
  ASSERT_TRUE(admin_->ListGateways(Ctx().get(), v1::ListGatewaysRequest(), &before).ok());
  const int32_t old_state = before.gateways(0).nsm_state();
  v1::ResetGatewayRequest r;
  r.set_request_id(NextRequestId());
  r.set_reason("lost state drill");
  r.set_gateway_id("gw-a");
  v1::ResetGatewayResponse resp;
  grpc::Status s = admin_->ResetGateway(Ctx().get(), r, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.new_state(), old_state + 2);
  EXPECT_EQ(resp.notifications_queued(), 1u);
  EXPECT_TRUE(resp.has_grace_ends_at());

  v1::GetGraceStatusRequest gr;
  v1::GetGraceStatusResponse grace;
  ASSERT_TRUE(admin_->GetGraceStatus(Ctx().get(), gr, &grace).ok());
  ASSERT_EQ(grace.gateways_size(), 1);
  EXPECT_TRUE(grace.gateways(0).in_grace());
  EXPECT_EQ(grace.gateways(0).nsm_state(), old_state + 2);
  ASSERT_EQ(grace.gateways(0).ledger_size(), 1);
  EXPECT_EQ(grace.gateways(0).ledger(0).client_name(), "client-1");

  v1::ListPendingEventsRequest er;
  er.set_kind(v1::EVENT_KIND_NOTIFICATION);
  v1::ListPendingEventsResponse events;
  ASSERT_TRUE(admin_->ListPendingEvents(Ctx().get(), er, &events).ok());
  ASSERT_EQ(events.events_size(), 1);
  EXPECT_EQ(events.events(0).notification().sm_notify().target_host(), "client-1");
  EXPECT_EQ(events.events(0).notification().sm_notify().state(), old_state + 2);

  r.set_gateway_id("gw-unknown");
  EXPECT_EQ(admin_->ResetGateway(Ctx().get(), r, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  gr.set_gateway_id("gw-unknown");
  EXPECT_EQ(admin_->GetGraceStatus(Ctx().get(), gr, &grace).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminServiceTest, StepDownOnSingleNodeIsFailedPrecondition) {
  v1::StepDownRequest r;
  r.set_reason("maintenance");
  v1::StepDownResponse resp;
  grpc::Status s = admin_->StepDown(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("no standby"), std::string::npos);
}

TEST_F(AdminServiceTest, ServerStatusReportsTheBoundPort) {
  v1::GetServerStatusResponse st;
  ASSERT_TRUE(admin_->GetServerStatus(Ctx().get(), v1::GetServerStatusRequest(), &st).ok());
  EXPECT_EQ(st.role(), v1::SERVER_ROLE_LEADER);
  EXPECT_EQ(st.leader_address(), absl::StrCat("127.0.0.1:", server_->port()));
}

TEST_F(AdminServiceTest, BearerTokenGuardsMutationsButNotViews) {
  StopServer();
  LockServerOptions options;
  options.admin_auth.bearer_token = "s3cret-token";
  StartServer(&store_, options);
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  v1::ForceReleaseRequest r;
  r.set_reason("test");
  r.set_client_name("c1");
  v1::ForceReleaseResponse resp;
  grpc::Status s = admin_->ForceRelease(Ctx().get(), r, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  auto wrong = Ctx();
  wrong->AddMetadata("authorization", "Bearer nope");
  EXPECT_EQ(admin_->ForceRelease(wrong.get(), r, &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ListLocks().locks_size(), 1) << "views stay open; nothing released";
  auto right = Ctx();
  right->AddMetadata("authorization", "Bearer s3cret-token");
  s = admin_->ForceRelease(right.get(), r, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ListLocks().locks_size(), 0);
}

TEST_F(AdminServiceTest, ExportSnapshotIsHeaderThenOrderedEntriesWithChecksum) {
  HolderAndTwoWaiters();
  Mon("c1");
  auto ctx = Ctx();
  v1::ExportSnapshotRequest r;
  r.set_reason("backup");
  auto reader = admin_->ExportSnapshot(ctx.get(), r);
  v1::ExportSnapshotResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  ASSERT_TRUE(msg.chunk().has_header());
  const v1::SnapshotHeader header = msg.chunk().header();
  EXPECT_EQ(header.format_version(), kSnapshotFormatVersion);
  EXPECT_EQ(header.checksum_sha256().size(), 32u);
  std::map<std::string, std::string> entries;
  std::string last;
  while (reader->Read(&msg)) {
    ASSERT_TRUE(msg.chunk().has_entries());
    for (const v1::SnapshotEntry& e : msg.chunk().entries().entries()) {
      EXPECT_LT(last, e.key()) << "keys in increasing order";
      last = e.key();
      entries[e.key()] = e.value();
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(entries.size(), header.key_count());
  EXPECT_EQ(MakeSnapshotHeader(entries).checksum_sha256(), header.checksum_sha256());
  // The snapshot is the store's content: it rebuilds the same lock state.
  auto rebuilt = core::LockCore::Rebuild(core::CoreOptions{},
                                         {entries.begin(), entries.end()});
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(rebuilt->Counters().locks, 1u);
  EXPECT_EQ(rebuilt->Counters().waiters, 2u);
  EXPECT_EQ(rebuilt->Counters().monitors, 1u);
}

TEST(AdminAuthTest, LoopbackPeersAndConstantTimeCompare) {
  EXPECT_TRUE(IsLoopbackPeer("ipv4:127.0.0.1:4000"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::1]:4000"));
  EXPECT_TRUE(IsLoopbackPeer("ipv6:[::ffff:127.0.0.1]:4000"));
  EXPECT_FALSE(IsLoopbackPeer("ipv4:198.18.0.1:4000"));
  EXPECT_FALSE(IsLoopbackPeer("ipv6:[::ffff:10.0.0.1]:4000"));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

}  // namespace
}  // namespace lockwarden::service::testing
