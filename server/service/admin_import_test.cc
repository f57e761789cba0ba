// AdminService.ImportSnapshot over real gRPC on loopback: a snapshot exported
// by one server imported into another keeps every lock, waiter and state
// number (state_is_current); an older snapshot imported with force raises
// every state number above both, enters grace and queues SM_NOTIFY; bad
// streams (checksum, order, header, non-empty store) change nothing.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class AdminImportTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  std::vector<v1::SnapshotChunk> Export() {
    grpc::ClientContext ctx;
    v1::ExportSnapshotRequest r;
    r.set_reason("import test");
    auto reader = admin_->ExportSnapshot(&ctx, r);
    std::vector<v1::SnapshotChunk> chunks;
    v1::ExportSnapshotResponse resp;
    while (reader->Read(&resp)) chunks.push_back(resp.chunk());
    EXPECT_TRUE(reader->Finish().ok());
    return chunks;
  }

  grpc::Status Import(const std::vector<v1::SnapshotChunk>& chunks, bool force,
                      bool state_is_current, v1::ImportSnapshotResponse* out,
                      const std::string& reason = "import test") {
    grpc::ClientContext ctx;
    auto writer = admin_->ImportSnapshot(&ctx, out);
    bool first = true;
    for (const v1::SnapshotChunk& c : chunks) {
      v1::ImportSnapshotRequest r;
      if (first) {
        r.set_request_id(NextRequestId());
        r.set_reason(reason);
        r.set_force(force);
        r.set_state_is_current(state_is_current);
        first = false;
      }
      *r.mutable_chunk() = c;
      if (!writer->Write(r)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  v1::Gateway GatewayA() {
    v1::ListGatewaysRequest r;
    r.set_gateway_id("gw-a");
    v1::ListGatewaysResponse resp;
    EXPECT_TRUE(admin_->ListGateways(Ctx().get(), r, &resp).ok());
    return resp.gateways_size() == 1 ? resp.gateways(0) : v1::Gateway();
  }

  store::MemoryStore store_;
};

TEST_F(AdminImportTest, ExportedStateImportedIntoAnEmptyServerKeepsEverything) {
  Mon("c1");
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c2", 2, "f1", 0, 10, true, true)), v1::LOCK_STATUS_BLOCKED);
  const v1::ListLocksResponse locks_before = ListLocks();
  const std::vector<v1::SnapshotChunk> snap = Export();
  ASSERT_GE(snap.size(), 2u);

  StopServer();
  store::MemoryStore other;
  StartServer(&other);
  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import(snap, /*force=*/false, /*state_is_current=*/true, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.keys_imported(), snap.front().header().key_count());
  EXPECT_EQ(resp.state_changes_size(), 0);

  const v1::ListLocksResponse locks_after = ListLocks();
  ASSERT_EQ(locks_after.locks_size(), locks_before.locks_size());
  EXPECT_EQ(locks_after.locks(0).fencing_token(), locks_before.locks(0).fencing_token());
  v1::ListWaitersResponse w;
  ASSERT_TRUE(admin_->ListWaiters(Ctx().get(), v1::ListWaitersRequest(), &w).ok());
  ASSERT_EQ(w.waiters_size(), 1);
  EXPECT_EQ(w.waiters(0).owner().client_name(), "c2");
  EXPECT_EQ(GatewayA().nsm_state(), 1);
  EXPECT_FALSE(GatewayA().in_grace());
  EXPECT_EQ(GatewayA().monitored_client_count(), 1u);
  // Durable: a restart on the same store recovers the imported state.
  StopServer();
  StartServer(&other);
  EXPECT_EQ(ListLocks().locks_size(), locks_before.locks_size());
  // Fencing tokens keep growing past the imported ones.
  v1::LockResponse fresh;
  ASSERT_EQ(Lock(LockReq("c3", 3, "f9", 0, 10), &fresh), v1::LOCK_STATUS_GRANTED);
  EXPECT_GT(fresh.fencing_token(), locks_before.locks(0).fencing_token());
}

TEST_F(AdminImportTest, OlderSnapshotRaisesStatesAboveBothEntersGraceAndNotifies) {
  Mon("c1");
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
  const std::vector<v1::SnapshotChunk> old = Export();  // gw-a at state 1.
  // Later the identity was reset twice: 1 -> 3 -> 5.
  for (int i = 0; i < 2; ++i) {
    v1::ResetGatewayRequest r;
    r.set_request_id(NextRequestId());
    r.set_reason("test");
    r.set_gateway_id("gw-a");
    v1::ResetGatewayResponse rr;
    ASSERT_TRUE(admin_->ResetGateway(Ctx().get(), r, &rr).ok());
  }
  ASSERT_EQ(GatewayA().nsm_state(), 5);
  Mon("c9");  // The store is not empty now (a monitor).

  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import(old, /*force=*/false, /*state_is_current=*/false, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_EQ(GatewayA().nsm_state(), 5);  // Unchanged.

  s = Import(old, /*force=*/true, /*state_is_current=*/false, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.state_changes_size(), 1);
  EXPECT_EQ(resp.state_changes(0).gateway_id(), "gw-a");
  EXPECT_EQ(resp.state_changes(0).snapshot_state(), 1);
  EXPECT_EQ(resp.state_changes(0).new_state(), 7);  // Above 1 and 5.
  const v1::Gateway g = GatewayA();
  EXPECT_EQ(g.nsm_state(), 7);
  EXPECT_TRUE(g.in_grace());
  // The snapshot's lock is released for reclaim; its monitor is back and an
  // SM_NOTIFY with the new state is pending for it.
  EXPECT_EQ(ListLocks().locks_size(), 0);
  v1::ListPendingEventsRequest er;
  er.set_kind(v1::EVENT_KIND_NOTIFICATION);
  v1::ListPendingEventsResponse events;
  ASSERT_TRUE(admin_->ListPendingEvents(Ctx().get(), er, &events).ok());
  bool notified = false;
  for (const v1::PendingEvent& e : events.events()) {
    notified |= e.notification().sm_notify().target_host() == "c1" &&
                e.notification().sm_notify().state() == 7;
  }
  EXPECT_TRUE(notified);
  // The client reclaims in grace.
  v1::LockRequest reclaim = LockReq("c1", 1, "f1", 0, 100);
  reclaim.set_reclaim(true);
  EXPECT_EQ(Lock(reclaim), v1::LOCK_STATUS_GRANTED);
}

TEST_F(AdminImportTest, BadStreamsAreRefusedAndChangeNothing) {
  ASSERT_EQ(Lock(LockReq("c1", 1, "f1", 0, 100)), v1::LOCK_STATUS_GRANTED);
  const std::vector<v1::SnapshotChunk> snap = Export();
  ASSERT_EQ(Unlock("c1", 1, "f1", 0, 100), v1::LOCK_STATUS_GRANTED);
  ASSERT_EQ(Lock(LockReq("c7", 7, "f7", 0, 1)), v1::LOCK_STATUS_GRANTED);
  v1::ImportSnapshotResponse resp;

  std::vector<v1::SnapshotChunk> bad = snap;
  bad.front().mutable_header()->set_checksum_sha256(std::string(32, '\0'));
  EXPECT_EQ(Import(bad, true, true, &resp).error_code(), grpc::StatusCode::DATA_LOSS);

  bad = snap;
  auto* entries = bad.back().mutable_entries()->mutable_entries();
  ASSERT_GE(entries->size(), 2);
  entries->SwapElements(0, 1);
  EXPECT_EQ(Import(bad, true, true, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  bad.assign(snap.begin() + 1, snap.end());  // No header.
  EXPECT_EQ(Import(bad, true, true, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  bad = snap;
  bad.front().mutable_header()->set_format_version(2);
  EXPECT_EQ(Import(bad, true, true, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  EXPECT_EQ(Import(snap, true, true, &resp, /*reason=*/"").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Nothing changed: c7 still holds its lock, c1 none.
  const v1::ListLocksResponse locks = ListLocks();
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "c7");
}

}  // namespace
}  // namespace lockwarden::service::testing
