// LockService.Session over real gRPC on loopback: batching, per-call
// errors, request_id deduplication across streams, limits, shutdown (idle,
// and while a batch commits), many concurrent sessions, snapshot import
// resetting every session.
#include "server/service/session_stream.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/borrowed_store.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

using Stream = grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>;

// A store whose commits block, once armed, until released: holds a batch
// "in the fsync" while the test shuts the server down.
class GatedStore final : public store::BorrowedStore {
 public:
  explicit GatedStore(store::StateStore* base) : store::BorrowedStore(base) {}
  void Arm() {
    absl::MutexLock lock(&mu_);
    armed_ = true;
  }
  // True once a commit is held at the gate (waits up to 5 s).
  bool AwaitHeldCommit() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&held_), absl::Seconds(5));
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    armed_ = false;
  }
  absl::Status Commit(const Delta& batch) override {
    {
      absl::MutexLock lock(&mu_);
      if (armed_) {
        held_ = true;
        auto released = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !armed_;
        };
        mu_.Await(absl::Condition(&released));
      }
    }
    return store::BorrowedStore::Commit(batch);
  }

 private:
  absl::Mutex mu_;
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
};

class SessionStreamTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  // Reads until `n` results arrived (or the stream ends); by call_id.
  static absl::flat_hash_map<uint64_t, v1::SessionResult> ReadResults(
      Stream* stream, size_t n) {
    absl::flat_hash_map<uint64_t, v1::SessionResult> out;
    v1::SessionResponse resp;
    while (out.size() < n && stream->Read(&resp)) {
      for (const v1::SessionResult& r : resp.results()) out[r.call_id()] = r;
    }
    return out;
  }

  v1::UnlockRequest UnlockReq(const std::string& client, uint32_t svid,
                              const std::string& fh, uint64_t offset,
                              uint64_t length) {
    v1::LockRequest l = LockReq(client, svid, fh, offset, length);
    v1::UnlockRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_file_handle(fh);
    *r.mutable_owner() = l.owner();
    *r.mutable_range() = l.range();
    return r;
  }

  // One SessionRequest holding a LOCK of [offset, offset+1) on `fh`.
  v1::SessionRequest LockMessage(uint64_t call_id, const std::string& client,
                                 const std::string& fh, uint64_t offset) {
    v1::SessionRequest req;
    v1::SessionCall* c = req.add_calls();
    c->set_call_id(call_id);
    *c->mutable_lock() = LockReq(client, 1, fh, offset, 1);
    return req;
  }

  store::MemoryStore store_;
};

TEST_F(SessionStreamTest, OneMessageOfCallsIsAppliedInOrderAndEachAnswered) {
  auto ctx = Ctx();
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  v1::SessionRequest req;
  v1::SessionCall* c = req.add_calls();
  c->set_call_id(1);
  *c->mutable_lock() = LockReq("host-a", 1, "fh1", 0, 100);
  c = req.add_calls();
  c->set_call_id(2);
  *c->mutable_lock() = LockReq("host-b", 1, "fh1", 50, 10);  // Conflicts.
  c = req.add_calls();
  c->set_call_id(3);
  v1::TestRequest* t = c->mutable_test();
  t->set_gateway_id("gw-a");
  t->set_file_handle("fh1");
  t->mutable_owner()->set_client_name("host-c");
  t->mutable_range()->set_offset(0);
  t->mutable_range()->set_length(1);
  t->set_exclusive(true);
  c = req.add_calls();
  c->set_call_id(4);
  *c->mutable_unlock() = UnlockReq("host-a", 1, "fh1", 0, 100);
  c = req.add_calls();
  c->set_call_id(5);
  *c->mutable_lock() = LockReq("host-b", 1, "fh1", 50, 10);  // Free now.
  ASSERT_TRUE(stream->Write(req));

  auto results = ReadResults(stream.get(), 5);
  ASSERT_EQ(results.size(), 5u);
  for (const auto& [id, r] : results) EXPECT_EQ(r.code(), 0) << id << r.message();
  EXPECT_EQ(results[1].lock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_GT(results[1].lock().fencing_token(), 0u);
  EXPECT_EQ(results[2].lock().status(), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(results[2].lock().conflicting_holder().owner().client_name(), "host-a");
  EXPECT_EQ(results[3].test().status(), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(results[4].unlock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(results[5].lock().status(), v1::LOCK_STATUS_GRANTED);

  stream->WritesDone();
  grpc::Status s = stream->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  // The unary view agrees: host-b holds 50+10, host-a nothing.
  v1::ListLocksResponse locks = ListLocks("fh1");
  ASSERT_EQ(locks.locks_size(), 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "host-b");
}

TEST_F(SessionStreamTest, ABadCallGetsItsOwnErrorAndTheOthersProceed) {
  auto ctx = Ctx();
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  v1::SessionRequest req;
  req.add_calls()->set_call_id(7);  // No request set.
  v1::SessionCall* c = req.add_calls();
  c->set_call_id(8);
  *c->mutable_lock() = LockReq("host-a", 1, "fh1", 0, 1);
  c->mutable_lock()->set_file_handle("");  // Invalid field.
  c = req.add_calls();
  c->set_call_id(9);
  *c->mutable_lock() = LockReq("host-a", 1, "fh1", 0, 1);
  ASSERT_TRUE(stream->Write(req));
  auto results = ReadResults(stream.get(), 3);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[7].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(results[8].code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(results[8].message().find("file_handle"), std::string::npos)
      << results[8].message();
  EXPECT_EQ(results[9].code(), 0);
  EXPECT_EQ(results[9].lock().status(), v1::LOCK_STATUS_GRANTED);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SessionStreamTest, ARequestResentOnANewStreamIsAnsweredFromTheFirst) {
  const v1::LockRequest lock = LockReq("host-a", 1, "fh1", 0, 10);
  uint64_t token = 0;
  {
    auto ctx = Ctx();
    std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
    v1::SessionRequest req;
    v1::SessionCall* c = req.add_calls();
    c->set_call_id(1);
    *c->mutable_lock() = lock;
    ASSERT_TRUE(stream->Write(req));
    auto results = ReadResults(stream.get(), 1);
    ASSERT_EQ(results[1].lock().status(), v1::LOCK_STATUS_GRANTED);
    token = results[1].lock().fencing_token();
    // The stream breaks (the gateway does not see this answer, say).
    ctx->TryCancel();
    stream->Finish();
  }
  // Meanwhile the owner unlocks through a unary call...
  EXPECT_EQ(Unlock("host-a", 1, "fh1", 0, 10), v1::LOCK_STATUS_GRANTED);
  // ...and the retransmitted LOCK (same request_id) on a new stream is not
  // executed again: the answer is the first one and nothing is re-locked.
  auto ctx = Ctx();
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  v1::SessionRequest req;
  v1::SessionCall* c = req.add_calls();
  c->set_call_id(1);
  *c->mutable_lock() = lock;
  ASSERT_TRUE(stream->Write(req));
  auto results = ReadResults(stream.get(), 1);
  ASSERT_EQ(results[1].code(), 0) << results[1].message();
  EXPECT_EQ(results[1].lock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(results[1].lock().fencing_token(), token);
  EXPECT_EQ(ListLocks("fh1").locks_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SessionStreamTest, TooManyCallsInOneMessageEndTheStream) {
  auto ctx = Ctx();
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  v1::SessionRequest req;
  for (size_t i = 0; i <= kSessionCallsPerMessageMax; ++i) {
    v1::SessionCall* c = req.add_calls();
    c->set_call_id(i);
    *c->mutable_lock() = LockReq("host-a", 1, "fh1", i, 1);
  }
  stream->Write(req);
  v1::SessionResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(ListLocks("fh1").locks_size(), 0);  // Nothing was applied.
}

TEST_F(SessionStreamTest, ManyMessagesInFlightAreAllAnswered) {
  // More calls than kSessionOutstandingCallsMax, written without reading:
  // the server stops reading at the limit and resumes as it answers.
  auto ctx = Ctx(20000);
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  constexpr int kMessages = 40;
  constexpr int kCallsPerMessage = 64;
  std::thread writer([&] {
    for (int m = 0; m < kMessages; ++m) {
      v1::SessionRequest req;
      for (int i = 0; i < kCallsPerMessage; ++i) {
        v1::SessionCall* c = req.add_calls();
        const int id = m * kCallsPerMessage + i;
        c->set_call_id(id);
        *c->mutable_lock() = LockReq("host-a", 1, "fh1", id, 1);
      }
      if (!stream->Write(req)) return;
    }
    stream->WritesDone();
  });
  auto results = ReadResults(stream.get(), kMessages * kCallsPerMessage);
  writer.join();
  EXPECT_EQ(results.size(), static_cast<size_t>(kMessages * kCallsPerMessage));
  for (const auto& [id, r] : results) {
    ASSERT_EQ(r.lock().status(), v1::LOCK_STATUS_GRANTED) << id;
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(SessionStreamTest, ShutdownEndsAnIdleSessionWithUnavailable) {
  auto ctx = Ctx(20000);
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  v1::SessionRequest req;
  v1::SessionCall* c = req.add_calls();
  c->set_call_id(1);
  *c->mutable_lock() = LockReq("host-a", 1, "fh1", 0, 1);
  ASSERT_TRUE(stream->Write(req));
  ASSERT_EQ(ReadResults(stream.get(), 1).size(), 1u);
  const absl::Time start = absl::Now();
  std::thread stopper([this] { server_->Shutdown(); });
  v1::SessionResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status s = stream->Finish();
  stopper.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Well before the server's 5 s shutdown deadline.
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

TEST_F(SessionStreamTest, ManyConcurrentSessionsAreAllAnswered) {
  constexpr int kSessions = 24;
  constexpr int kRounds = 20;
  std::atomic<int> granted{0};
  std::vector<std::thread> gateways;
  for (int g = 0; g < kSessions; ++g) {
    gateways.emplace_back([&, g] {
      auto ctx = Ctx(30000);
      std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
      const std::string client = absl::StrCat("host-", g);
      for (int i = 0; i < kRounds; ++i) {
        // Two messages in flight per round: a LOCK, then a TEST of it.
        // (Gaps between the ranges: an owner's adjacent locks merge.)
        const uint64_t offset = g * 1000 + 2 * i;
        if (!stream->Write(LockMessage(2 * i, client, "fh1", offset))) {
          return;
        }
        v1::SessionRequest test;
        v1::SessionCall* c = test.add_calls();
        c->set_call_id(2 * i + 1);
        v1::TestRequest* t = c->mutable_test();
        t->set_gateway_id("gw-a");
        t->set_file_handle("fh1");
        t->mutable_owner()->set_client_name("someone-else");
        t->mutable_range()->set_offset(offset);
        t->mutable_range()->set_length(1);
        t->set_exclusive(true);
        if (!stream->Write(test)) return;
        auto results = ReadResults(stream.get(), 2);
        if (results[2 * i].lock().status() == v1::LOCK_STATUS_GRANTED &&
            results[2 * i + 1].test().status() == v1::LOCK_STATUS_DENIED) {
          ++granted;
        }
      }
      stream->WritesDone();
      EXPECT_TRUE(stream->Finish().ok());
    });
  }
  for (std::thread& t : gateways) t.join();
  EXPECT_EQ(granted.load(), kSessions * kRounds);
  EXPECT_EQ(ListLocks("fh1").locks_size(), kSessions * kRounds);
}

TEST_F(SessionStreamTest, ShutdownWhileABatchCommitsAnswersItThenEnds) {
  StopServer();
  GatedStore gated(&store_);
  StartServer(&gated);
  auto ctx = Ctx(20000);
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  ASSERT_TRUE(stream->Write(LockMessage(1, "host-a", "fh1", 0)));
  ASSERT_EQ(ReadResults(stream.get(), 1).size(), 1u);  // The session is live.

  gated.Arm();
  ASSERT_TRUE(stream->Write(LockMessage(2, "host-a", "fh1", 10)));
  ASSERT_TRUE(gated.AwaitHeldCommit());
  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    server_->Shutdown();
    shut_down = true;
  });
  // Shutdown cannot complete while the session's batch is not durable.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(shut_down.load());
  gated.Release();

  // The batch in flight is answered, then the session ends.
  auto results = ReadResults(stream.get(), 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[2].lock().status(), v1::LOCK_STATUS_GRANTED);
  v1::SessionResponse resp;
  EXPECT_FALSE(stream->Read(&resp));
  grpc::Status s = stream->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  stopper.join();
  EXPECT_TRUE(shut_down.load());

  // Both locks are durable: a restarted server holds them.
  StopServer();
  StartServer(&store_);
  EXPECT_EQ(ListLocks("fh1").locks_size(), 2);
}

TEST_F(SessionStreamTest,
       MessagesReadDuringACommitAreAppliedAndJoinTheNextOne) {
  // One gateway is one session: messages that arrive while a commit is in
  // its fsync must be applied at once (in order) and committed together,
  // not each wait for a commit of its own behind the first.
  StopServer();
  GatedStore gated(&store_);
  StartServer(&gated);
  auto ctx = Ctx(20000);
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  ASSERT_TRUE(stream->Write(LockMessage(1, "host-a", "fh9", 0)));
  ASSERT_EQ(ReadResults(stream.get(), 1).size(), 1u);  // The session is live.

  gated.Arm();
  ASSERT_TRUE(stream->Write(LockMessage(2, "host-a", "fh9", 10)));
  ASSERT_TRUE(gated.AwaitHeldCommit());
  constexpr int kMore = 8;
  for (int i = 0; i < kMore; ++i) {
    ASSERT_TRUE(
        stream->Write(LockMessage(3 + i, "host-a", "fh9", 20 + 10 * i)));
  }
  // All of them reach the core while the first commit is held.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int applied = 0;
  while (absl::Now() < deadline) {
    applied = ListLocks("fh9").locks_size();
    if (applied == 2 + kMore) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(applied, 2 + kMore);
  gated.Release();
  auto results = ReadResults(stream.get(), 1 + kMore);
  ASSERT_EQ(results.size(), 1u + kMore);
  for (const auto& [id, r] : results) {
    EXPECT_EQ(r.lock().status(), v1::LOCK_STATUS_GRANTED) << "call " << id;
  }
}

TEST_F(SessionStreamTest, ShutdownEndsEverySession) {
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 6; ++i) {
    ctxs.push_back(Ctx(20000));
    streams.push_back(lock_->Session(ctxs.back().get()));
    ASSERT_TRUE(streams.back()->Write(
        LockMessage(1, absl::StrCat("host-", i), "fh1", i)));
    ASSERT_EQ(ReadResults(streams.back().get(), 1).size(), 1u);
  }
  std::thread stopper([this] { server_->Shutdown(); });
  for (auto& stream : streams) {
    v1::SessionResponse resp;
    EXPECT_FALSE(stream->Read(&resp));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  stopper.join();
}

TEST_F(SessionStreamTest, SnapshotImportResetsEverySessionAndNewOnesSeeIt) {
  ASSERT_EQ(Lock(LockReq("host-x", 1, "fh2", 0, 10)), v1::LOCK_STATUS_GRANTED);
  // The snapshot holds host-x's lock only.
  std::vector<v1::SnapshotChunk> snapshot;
  {
    grpc::ClientContext ctx;
    v1::ExportSnapshotRequest r;
    r.set_reason("session test");
    auto reader = admin_->ExportSnapshot(&ctx, r);
    v1::ExportSnapshotResponse resp;
    while (reader->Read(&resp)) snapshot.push_back(resp.chunk());
    ASSERT_TRUE(reader->Finish().ok());
  }
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 4; ++i) {
    ctxs.push_back(Ctx(20000));
    streams.push_back(lock_->Session(ctxs.back().get()));
    ASSERT_TRUE(streams.back()->Write(
        LockMessage(1, absl::StrCat("host-", i), "fh1", i)));
    ASSERT_EQ(ReadResults(streams.back().get(), 1).size(), 1u);
  }
  {
    grpc::ClientContext ctx;
    v1::ImportSnapshotResponse resp;
    auto writer = admin_->ImportSnapshot(&ctx, &resp);
    bool first = true;
    for (const v1::SnapshotChunk& c : snapshot) {
      v1::ImportSnapshotRequest r;
      if (first) {
        r.set_request_id(NextRequestId());
        r.set_reason("session test");
        r.set_force(true);
        r.set_state_is_current(true);
        first = false;
      }
      *r.mutable_chunk() = c;
      ASSERT_TRUE(writer->Write(r));
    }
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  for (auto& stream : streams) {
    v1::SessionResponse resp;
    while (stream->Read(&resp)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  // The sessions' locks are gone with the old state; a new session works
  // on the imported one.
  EXPECT_EQ(ListLocks("fh1").locks_size(), 0);
  auto ctx = Ctx();
  std::unique_ptr<Stream> stream = lock_->Session(ctx.get());
  ASSERT_TRUE(stream->Write(LockMessage(1, "host-y", "fh2", 5)));
  auto results = ReadResults(stream.get(), 1);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[1].lock().status(), v1::LOCK_STATUS_DENIED);
  EXPECT_EQ(results[1].lock().conflicting_holder().owner().client_name(),
            "host-x");
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace lockwarden::service::testing
