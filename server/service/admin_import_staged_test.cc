// The staged snapshot import over real gRPC on loopback: a snapshot far
// larger than one store commit (20,000 locks; RocksDB batches hold 4096
// mutations, an etcd Txn 128 operations) imports whole into RocksDB and into
// a real 1-member etcd; a store that fails mid-import leaves the marker
// and every server recovering it refuses to serve (UNAVAILABLE, NOT_SERVING)
// until an import with force finishes it (the store then holds exactly the
// snapshot) or an abandon empties it; an import ends the gateways' event
// and session streams so they reconnect to the new state.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"
#include "server/service/service_test_util.h"
#include "server/service/snapshot.h"
#include "server/store/etcd_store.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/memory_store.h"
#include "server/store/rocksdb_store.h"
#include "server/store/store_test_util.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::service::testing {
namespace {

constexpr int kLocks = 20'000;
using Records = std::map<std::string, std::string>;

// The records of a core holding `locks` locks through gw-a (and one waiter).
Records BigState(int locks) {
  core::LockCore core(core::CoreOptions{});
  for (int i = 0; i < locks; ++i) {
    core::LockCmd c;
    c.gateway = "gw-a";
    c.fh = absl::StrCat("file-", i % 500);
    c.owner = core::Owner{absl::StrCat("client-", i % 97), static_cast<uint32_t>(i), "oh"};
    c.range = core::Range{static_cast<uint64_t>(i) * 10, 5};
    c.exclusive = true;
    c.client_state = 1;
    EXPECT_EQ(core.Apply(c, 1000).reply.status, core::LockStatus::kGranted);
  }
  return core.Snapshot();
}

std::vector<v1::SnapshotChunk> Chunks(const Records& records) {
  std::vector<v1::SnapshotChunk> out(1);
  *out[0].mutable_header() = MakeSnapshotHeader(records);
  for (auto it = records.cbegin(); it != records.cend();) {
    out.emplace_back();
    NextSnapshotChunk(records, &it, &out.back());
  }
  return out;
}

Records Contents(const store::StateStore& store) {
  auto all = store.LoadAll();
  EXPECT_TRUE(all.ok()) << all.status();
  return all.ok() ? Records(all->begin(), all->end()) : Records();
}

class StagedImportTest : public ServiceTest {
 protected:
  grpc::Status Import(const std::vector<v1::SnapshotChunk>& chunks, bool force,
                      bool state_is_current, bool abandon = false,
                      v1::ImportSnapshotResponse* out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::ImportSnapshotResponse resp;
    auto writer = admin_->ImportSnapshot(&ctx, &resp);
    v1::ImportSnapshotRequest first;
    first.set_request_id(NextRequestId());
    first.set_reason("staged import test");
    first.set_force(force);
    first.set_state_is_current(state_is_current);
    first.set_abandon(abandon);
    if (!chunks.empty()) *first.mutable_chunk() = chunks[0];
    bool ok = writer->Write(first);
    for (size_t i = 1; ok && i < chunks.size(); ++i) {
      v1::ImportSnapshotRequest r;
      *r.mutable_chunk() = chunks[i];
      ok = writer->Write(r);
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (out != nullptr) *out = resp;
    return s;
  }

  uint64_t LockCount() {
    v1::ListLocksRequest r;
    r.set_page_size(1);
    v1::ListLocksResponse resp;
    grpc::Status s = admin_->ListLocks(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.total_size();
  }

  v1::GetServerStatusResponse Status() {
    v1::GetServerStatusResponse resp;
    EXPECT_TRUE(admin_->GetServerStatus(Ctx().get(), v1::GetServerStatusRequest(), &resp).ok());
    return resp;
  }
};

TEST_F(StagedImportTest, SnapshotFarLargerThanOneCommitImportsIntoRocksDb) {
  auto rocks = store::RocksDbStore::Open(store::testing::MakeTempDir("staged_import"), {});
  ASSERT_TRUE(rocks.ok()) << rocks.status();
  ASSERT_LT((*rocks)->Limits().max_mutations_per_batch, static_cast<size_t>(kLocks));
  StartServer(rocks->get());
  const Records snapshot = BigState(kLocks);
  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import(Chunks(snapshot), false, /*state_is_current=*/true, false, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.keys_imported(), snapshot.size());
  EXPECT_EQ(LockCount(), static_cast<uint64_t>(kLocks));
  EXPECT_EQ(Contents(**rocks), snapshot);  // Exactly the snapshot, no marker.
  StopServer();
  StartServer(rocks->get());  // Recovers the imported state.
  EXPECT_EQ(LockCount(), static_cast<uint64_t>(kLocks));
  EXPECT_EQ(Lock(LockReq("new", 1, "file-1", 10, 1)), v1::LOCK_STATUS_DENIED);
}

TEST_F(StagedImportTest, SnapshotFarLargerThanOneTxnImportsIntoEtcd) {
  auto cluster = lockwarden::testing::EtcdCluster::Start({.members = 1});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  store::EtcdStoreOptions options;
  options.client.endpoints = (*cluster)->ClientEndpoints();
  options.key_prefix = "/lwtest/staged-import/";
  options.fenced = false;
  auto etcd = store::EtcdStore::Open(options);
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  ASSERT_LT((*etcd)->Limits().max_mutations_per_batch, static_cast<size_t>(kLocks));
  StartServer(etcd->get());
  ASSERT_EQ(Lock(LockReq("old", 1, "old-file", 0, 1)), v1::LOCK_STATUS_GRANTED);
  const Records snapshot = BigState(kLocks);
  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import(Chunks(snapshot), /*force=*/true, /*state_is_current=*/true, false,
                          &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(LockCount(), static_cast<uint64_t>(kLocks));
  Records after = Contents(**etcd);
  EXPECT_EQ(after.size(), snapshot.size());  // The old lock and its records went.
  EXPECT_EQ(after.count(std::string(core::codec::kImportMarkerKey)), 0u);
  after.erase(std::string(core::codec::kCountersKey));
  Records want = snapshot;
  want.erase(std::string(core::codec::kCountersKey));
  EXPECT_EQ(after, want);
  StopServer();
  StartServer(etcd->get());
  EXPECT_EQ(LockCount(), static_cast<uint64_t>(kLocks));
  StopServer();
}

TEST_F(StagedImportTest, AGatewayResumingFromAnOldCursorGetsTheImportedEvents) {
  store::MemoryStore store;
  StartServer(&store);
  // The old state issued event sequences 1..3 (three grants).
  for (const char* fh : {"f1", "f2", "f3"}) {
    ASSERT_EQ(Lock(LockReq("a", 1, fh, 0, 10)), v1::LOCK_STATUS_GRANTED);
    ASSERT_EQ(Lock(LockReq("b", 1, fh, 0, 10, true, /*block=*/true)), v1::LOCK_STATUS_BLOCKED);
    ASSERT_EQ(Unlock("a", 1, fh, 0, 10), v1::LOCK_STATUS_GRANTED);
  }
  // The snapshot holds one pending grant, event sequence 1.
  core::LockCore snap(core::CoreOptions{});
  core::LockCmd l;
  l.gateway = "gw-a";
  l.fh = "s";
  l.owner = core::Owner{"x", 1, "oh"};
  l.range = core::Range{0, 10};
  l.exclusive = true;
  l.client_state = 1;
  l.callback = "cb";
  // On the server's clock, so the grant does not expire at once.
  const int64_t now = clock_.NowMs();
  ASSERT_EQ(snap.Apply(l, now).reply.status, core::LockStatus::kGranted);
  l.owner = core::Owner{"y", 1, "oh"};
  l.block = true;
  ASSERT_EQ(snap.Apply(l, now).reply.status, core::LockStatus::kBlocked);
  ASSERT_EQ(snap.Apply(core::UnlockCmd{"", "gw-a", "s", core::Owner{"x", 1, "oh"}, {0, 0}}, now)
                .events.size(),
            1u);
  ASSERT_TRUE(Import(Chunks(snap.Snapshot()), /*force=*/true, /*state_is_current=*/true).ok());
  // The gateway resumes after sequence 3, its cursor from the old state.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::WatchGrantsRequest wg;
  wg.set_gateway_id("gw-a");
  wg.set_after_sequence(3);
  auto grants = lock_->WatchGrants(&ctx, wg);
  v1::WatchGrantsResponse g;
  ASSERT_TRUE(grants->Read(&g));
  ASSERT_EQ(g.events_size(), 1);
  EXPECT_EQ(g.events(0).sequence(), 1u);
  EXPECT_EQ(g.events(0).owner().client_name(), "y");
  ctx.TryCancel();
  (void)grants->Finish();
  StopServer();
}

class InterruptedImportTest : public StagedImportTest {
 protected:
  void SetUp() override {
    auto base = std::make_unique<store::MemoryStore>();
    base_ = base.get();
    faulty_ = std::make_unique<store::FaultInjectingStore>(std::move(base));
    StartServer(faulty_.get());
    Mon("c1");
    ASSERT_EQ(Lock(LockReq("c1", 1, "old-file", 0, 100)), v1::LOCK_STATUS_GRANTED);
    before_ = Contents(*base_);
    snapshot_ = BigState(kLocks);
    // The third commit of the import fails: the marker and one chunk are in.
    faulty_->Arm(store::FaultSpec::FailNth(3));
    grpc::Status s = Import(Chunks(snapshot_), /*force=*/true, /*state_is_current=*/true);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    faulty_->Disarm();
    ASSERT_EQ(Contents(*base_).count(std::string(core::codec::kImportMarkerKey)), 1u);
    StopServer();
    StartServer(faulty_.get());  // The restarted (or taking-over) server.
  }

  void ExpectRefusesToServe() {
    v1::LockResponse resp;
    grpc::Status s = lock_->Lock(Ctx().get(), LockReq("c2", 1, "x", 0, 1), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_NE(s.error_message().find("interrupted snapshot import"), std::string::npos)
        << s.error_message();
    EXPECT_NE(s.error_message().find("--abandon"), std::string::npos);
    EXPECT_FALSE(server_->runner_for_testing()->Health().ok());
    const v1::GetServerStatusResponse status = Status();
    EXPECT_EQ(status.store_health(), v1::STORE_HEALTH_UNAVAILABLE);
    EXPECT_NE(status.store_health_detail().find("interrupted snapshot import"),
              std::string::npos);
    EXPECT_EQ(HealthOf("lockwarden.v1.LockService"),
              grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    EXPECT_EQ(HealthOf(""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    // What standbys probe stays SERVING: another leader would refuse too,
    // so deposing this one would only make leadership flap.
    EXPECT_EQ(HealthOf(kLeadershipHealthService),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }

  store::MemoryStore* base_ = nullptr;
  std::unique_ptr<store::FaultInjectingStore> faulty_;
  Records before_;
  Records snapshot_;
};

TEST_F(InterruptedImportTest, RefusesToServeUntilAForcedImportFinishesIt) {
  ExpectRefusesToServe();
  // Not without force.
  EXPECT_EQ(Import(Chunks(snapshot_), false, true).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ExpectRefusesToServe();
  // Re-running the import with force finishes it: exactly the snapshot.
  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import(Chunks(snapshot_), /*force=*/true, true, false, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // Exactly the snapshot's records; its counters raised above the replaced
  // store's (its monitor and request ids), never lowered.
  Records after = Contents(*base_);
  Records want = snapshot_;
  const std::string counters(core::codec::kCountersKey);
  ASSERT_EQ(after.count(counters), 1u);
  EXPECT_NE(after[counters], want[counters]);
  after.erase(counters);
  want.erase(counters);
  EXPECT_EQ(after, want);
  EXPECT_TRUE(server_->runner_for_testing()->Health().ok());
  EXPECT_EQ(HealthOf("lockwarden.v1.LockService"),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(HealthOf(kLeadershipHealthService),
            grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(LockCount(), static_cast<uint64_t>(kLocks));
  EXPECT_EQ(Lock(LockReq("c2", 1, "x", 0, 1)), v1::LOCK_STATUS_GRANTED);
}

TEST_F(InterruptedImportTest, AbandonLeavesAnEmptyStateThatServes) {
  ExpectRefusesToServe();
  // Abandon needs an interrupted import and no snapshot.
  EXPECT_EQ(Import(Chunks(snapshot_), true, false, /*abandon=*/true).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ImportSnapshotResponse resp;
  grpc::Status s = Import({}, false, false, /*abandon=*/true, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(server_->runner_for_testing()->Health().ok());
  EXPECT_EQ(LockCount(), 0u);
  EXPECT_EQ(Contents(*base_).count(std::string(core::codec::kImportMarkerKey)), 0u);
  // The identity is kept and reset: its NSM state number went up.
  ASSERT_EQ(resp.state_changes_size(), 1);
  EXPECT_EQ(resp.state_changes(0).gateway_id(), "gw-a");
  EXPECT_GT(resp.state_changes(0).new_state(), 1);
  // Fencing tokens never go backwards past the partial import's counters.
  v1::LockResponse lock;
  ASSERT_EQ(Lock(LockReq("c2", 1, "x", 0, 1), &lock), v1::LOCK_STATUS_GRANTED);
  EXPECT_GT(lock.fencing_token(), static_cast<uint64_t>(kLocks));
  // A second abandon finds nothing to abandon.
  EXPECT_EQ(Import({}, false, false, true).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(StagedImportTest, ImportEndsEventAndSessionStreamsSoGatewaysReconnect) {
  store::MemoryStore store;
  StartServer(&store);
  ASSERT_EQ(Lock(LockReq("c1", 1, "f", 0, 10)), v1::LOCK_STATUS_GRANTED);
  grpc::ClientContext grants_ctx;
  v1::WatchGrantsRequest wg;
  wg.set_gateway_id("gw-a");
  wg.set_instance_name("test");
  auto grants = lock_->WatchGrants(&grants_ctx, wg);
  grpc::ClientContext notes_ctx;
  v1::WatchNotificationsRequest wn;
  wn.set_gateway_id("gw-a");
  wn.set_instance_name("test");
  auto notes = monitor_->WatchNotifications(&notes_ctx, wn);
  grpc::ClientContext session_ctx;
  auto session = lock_->Session(&session_ctx);
  v1::SessionRequest sr;
  v1::SessionCall* call = sr.add_calls();
  call->set_call_id(1);
  *call->mutable_lock() = LockReq("c2", 1, "g", 0, 10);
  ASSERT_TRUE(session->Write(sr));
  v1::SessionResponse answer;
  ASSERT_TRUE(session->Read(&answer));  // The session is live.

  grpc::Status s = Import(Chunks(BigState(10)), /*force=*/true, true);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::WatchGrantsResponse g;
  while (grants->Read(&g)) {
  }
  s = grants->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_NE(s.error_message().find("snapshot import"), std::string::npos);
  v1::WatchNotificationsResponse n;
  while (notes->Read(&n)) {
  }
  EXPECT_EQ(notes->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  while (session->Read(&answer)) {
  }
  EXPECT_EQ(session->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  // A new session works on the new state.
  grpc::ClientContext again_ctx;
  auto again = lock_->Session(&again_ctx);
  call->set_call_id(2);
  *call->mutable_lock() = LockReq("c3", 1, "file-0", 0, 1);
  ASSERT_TRUE(again->Write(sr));
  ASSERT_TRUE(again->Read(&answer));
  ASSERT_EQ(answer.results_size(), 1);
  EXPECT_EQ(answer.results(0).lock().status(), v1::LOCK_STATUS_DENIED);  // Imported lock.
  again->WritesDone();
  while (again->Read(&answer)) {
  }
  EXPECT_TRUE(again->Finish().ok());
  StopServer();
}

}  // namespace
}  // namespace lockwarden::service::testing
