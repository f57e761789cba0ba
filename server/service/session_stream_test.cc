// LockService.Session over real gRPC on loopback: batching, per-call
// errors, request_id deduplication across streams, limits, shutdown.
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/service/session_stream.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

using Stream = grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionResponse>;

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

}  // namespace
}  // namespace lockwarden::service::testing
