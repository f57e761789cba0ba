#include "gateway/client/session_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "server/service/lock_server.h"
#include "server/store/borrowed_store.h"
#include "server/store/memory_store.h"

namespace lockwarden::gateway {
namespace {

using Result = std::pair<grpc::Status, v1::SessionResult>;
using store::BorrowedStore;

// A port nothing listens on: bind, read the port, close.
int DeadPort() {
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto s = b.BuildAndStart();
  s->Shutdown();
  return port;
}

std::unique_ptr<service::LockServer> StartServer(store::StateStore* store,
                                                 const Clock* clock, int port = 0) {
  service::LockServerOptions o;
  o.listen = absl::StrCat("127.0.0.1:", port);
  o.shutdown_timeout_ms = 500;
  auto s = service::LockServer::Start(o, std::make_unique<BorrowedStore>(store), clock);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

v1::SessionCall LockCall(const std::string& request_id, uint64_t offset) {
  v1::SessionCall c;
  v1::LockRequest* r = c.mutable_lock();
  r->set_request_id(request_id);
  r->set_gateway_id("gw");
  r->set_file_handle("fh");
  r->mutable_owner()->set_client_name("host-a");
  r->mutable_owner()->set_svid(1);
  r->mutable_owner()->set_oh("oh");
  r->mutable_range()->set_offset(offset);
  r->mutable_range()->set_length(1);
  r->set_exclusive(true);
  r->set_monitored(true);
  return c;
}

Result CallAndWait(SessionClient& client, v1::SessionCall call) {
  std::promise<Result> p;
  client.Call(std::move(call), [&p](const grpc::Status& s, const v1::SessionResult& r) {
    p.set_value({s, r});
  });
  return p.get_future().get();
}

// A LockService whose Session is scripted by the test: each stream hands
// every message it reads to `on_message`, which returns the status to end
// the stream with (or nullopt to answer every call GRANTED), plus trailing
// metadata, or `hold`: the stream then neither answers nor reads any more
// (so the client's next write stalls once HTTP/2's flow-control window is
// full) until EndHeld() or the client cancels. Unary Lock answers GRANTED.
class ScriptedLockService final : public v1::LockService::CallbackService {
 public:
  struct Outcome {
    std::optional<grpc::Status> end;
    std::string leader;  // Sent as lockwarden-leader-address when set.
    bool hold = false;
  };
  using OnMessage = std::function<Outcome(const v1::SessionRequest&)>;

  explicit ScriptedLockService(OnMessage on_message, bool session = true)
      : on_message_(std::move(on_message)), session_(session) {}

  grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse>* Session(
      grpc::CallbackServerContext* ctx) override {
    if (!session_) return v1::LockService::CallbackService::Session(ctx);
    return new Stream(ctx, this);
  }

  grpc::ServerUnaryReactor* Lock(grpc::CallbackServerContext* ctx,
                                 const v1::LockRequest*,
                                 v1::LockResponse* response) override {
    unary_locks_.fetch_add(1);
    response->set_status(v1::LOCK_STATUS_GRANTED);
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  std::vector<v1::SessionRequest> seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  int unary_locks() const { return unary_locks_.load(); }
  size_t held() {
    absl::MutexLock lock(&mu_);
    return held_.size();
  }
  // Ends every held stream with `status`.
  void EndHeld(const grpc::Status& status) {
    std::vector<Stream*> held;
    {
      absl::MutexLock lock(&mu_);
      held.swap(held_);
      for (Stream* s : held) s->finished_ = true;
    }
    // Outside mu_: Finish may run OnDone inline.
    for (Stream* s : held) s->Finish(status);
  }

 private:
  class Stream final
      : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse> {
   public:
    Stream(grpc::CallbackServerContext* ctx, ScriptedLockService* s)
        : ctx_(ctx), service_(s) {
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      {
        absl::MutexLock lock(&service_->mu_);
        service_->seen_.push_back(request_);
      }
      Outcome o = service_->on_message_(request_);
      if (o.hold) {
        absl::MutexLock lock(&service_->mu_);
        service_->held_.push_back(this);
        return;
      }
      if (o.end.has_value()) {
        if (!o.leader.empty()) {
          ctx_->AddTrailingMetadata(kLeaderAddressMetadata, o.leader);
        }
        Finish(*o.end);
        return;
      }
      response_.Clear();
      for (const v1::SessionCall& c : request_.calls()) {
        v1::SessionResult* r = response_.add_results();
        r->set_call_id(c.call_id());
        r->mutable_lock()->set_status(v1::LOCK_STATUS_GRANTED);
      }
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::CANCELLED);
        return;
      }
      StartRead(&request_);
    }
    void OnCancel() override {
      {
        absl::MutexLock lock(&service_->mu_);
        auto it =
            std::find(service_->held_.begin(), service_->held_.end(), this);
        if (it == service_->held_.end() || finished_) return;
        service_->held_.erase(it);
        finished_ = true;
      }
      Finish(grpc::Status::CANCELLED);
    }
    void OnDone() override { delete this; }

    bool finished_ ABSL_GUARDED_BY(service_->mu_) = false;  // Held only.

   private:
    grpc::CallbackServerContext* const ctx_;
    ScriptedLockService* const service_;
    v1::SessionRequest request_;
    v1::SessionResponse response_;
  };

  const OnMessage on_message_;
  const bool session_;
  absl::Mutex mu_;
  std::vector<v1::SessionRequest> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<Stream*> held_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> unary_locks_{0};
};

struct ScriptedServer {
  explicit ScriptedServer(ScriptedLockService::OnMessage on_message, bool session = true)
      : service(std::move(on_message), session) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&service);
    // A fixed, small HTTP/2 window: a held stream stops the client's writes
    // after 64 KiB (with BDP probing gRPC widens it to megabytes).
    b.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    b.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
    server = b.BuildAndStart();
  }
  ~ScriptedServer() { server->Shutdown(std::chrono::system_clock::now()); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  ScriptedLockService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

TEST(SessionClientTest, CallsMadeWhileAWriteIsInFlightShareMessages) {
  RealClock clock;
  store::MemoryStore store;
  auto server = StartServer(&store, &clock);
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", server->port())};
  ServerClient sc(o);
  SessionClient client(&sc);
  constexpr int kCalls = 500;
  absl::Mutex mu;
  int granted = 0;
  int finished = 0;
  for (int i = 0; i < kCalls; ++i) {
    client.Call(LockCall(absl::StrCat("r", i), i),
                [&](const grpc::Status& s, const v1::SessionResult& r) {
                  absl::MutexLock lock(&mu);
                  ++finished;
                  if (s.ok() && r.lock().status() == v1::LOCK_STATUS_GRANTED) ++granted;
                });
  }
  {
    absl::MutexLock lock(&mu);
    auto all = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return finished == kCalls; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(30)));
    EXPECT_EQ(granted, kCalls);
  }
  const SessionClientStats stats = client.stats();
  EXPECT_EQ(stats.calls, static_cast<uint64_t>(kCalls));
  EXPECT_EQ(stats.streams_started, 1u);
  // Calls queue up behind the write in flight and go out together.
  EXPECT_LT(stats.messages_sent, static_cast<uint64_t>(kCalls));
  EXPECT_EQ(stats.unary_fallback, 0u);
}

TEST(SessionClientTest, ACallAfterTheStreamBrokeIsServedOnANewStream) {
  RealClock clock;
  store::MemoryStore store;
  const int port = DeadPort();
  auto server = StartServer(&store, &clock, port);
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", port)};
  ServerClient sc(o);
  SessionClient client(&sc);
  Result first = CallAndWait(client, LockCall("r1", 0));
  ASSERT_TRUE(first.first.ok()) << first.first.error_message();
  EXPECT_EQ(first.second.lock().status(), v1::LOCK_STATUS_GRANTED);

  server.reset();  // Ends the stream (UNAVAILABLE).
  server = StartServer(&store, &clock, port);
  ASSERT_NE(server, nullptr);
  Result second = CallAndWait(client, LockCall("r2", 1));
  ASSERT_TRUE(second.first.ok()) << second.first.error_message();
  EXPECT_EQ(second.second.lock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(client.stats().streams_started, 2u);
}

TEST(SessionClientTest, ACallQueuedWhileTheServerIsDownIsSentWhenItReturns) {
  RealClock clock;
  store::MemoryStore store;
  const int port = DeadPort();
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", port)};
  o.failover_wait_ms = 10000;
  ServerClient sc(o);
  SessionClient client(&sc);
  std::unique_ptr<service::LockServer> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    server = StartServer(&store, &clock, port);
  });
  Result r = CallAndWait(client, LockCall("r1", 0));
  starter.join();
  ASSERT_TRUE(r.first.ok()) << r.first.error_message();
  EXPECT_EQ(r.second.lock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_GE(client.stats().streams_started, 2u);  // Backoff, then success.
}

TEST(SessionClientTest, UnansweredCallsAreResentUnchangedOnTheNextStream) {
  std::atomic<int> streams{0};
  // The first stream "loses" its answers: it ends UNAVAILABLE after reading.
  ScriptedServer fake([&](const v1::SessionRequest&) {
    ScriptedLockService::Outcome o;
    if (streams.fetch_add(1) == 0) {
      o.end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "lost");
    }
    return o;
  });
  ServerClientOptions o;
  o.servers = {fake.address()};
  ServerClient sc(o);
  SessionClient client(&sc);
  Result r = CallAndWait(client, LockCall("req-x", 7));
  ASSERT_TRUE(r.first.ok()) << r.first.error_message();
  EXPECT_EQ(r.second.lock().status(), v1::LOCK_STATUS_GRANTED);
  std::vector<v1::SessionRequest> seen = fake.service.seen();
  ASSERT_EQ(seen.size(), 2u);
  // Same call both times: the server's request_id dedupe makes it safe.
  ASSERT_EQ(seen[0].calls_size(), 1);
  ASSERT_EQ(seen[1].calls_size(), 1);
  EXPECT_EQ(seen[0].calls(0).lock().request_id(), "req-x");
  EXPECT_EQ(seen[1].calls(0).SerializeAsString(),
            seen[0].calls(0).SerializeAsString());
  EXPECT_EQ(client.stats().resent, 1u);
}

TEST(SessionClientTest, AStandbyRedirectIsFollowedAtOnce) {
  ScriptedServer leader([](const v1::SessionRequest&) {
    return ScriptedLockService::Outcome{};
  });
  ScriptedServer standby([&](const v1::SessionRequest&) {
    ScriptedLockService::Outcome o;
    o.end = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "standby");
    o.leader = leader.address();
    return o;
  });
  ServerClientOptions o;
  o.servers = {standby.address()};
  o.backoff_initial_ms = 2000;  // A redirect must not wait for backoff.
  ServerClient sc(o);
  SessionClient client(&sc);
  const absl::Time start = absl::Now();
  Result r = CallAndWait(client, LockCall("r1", 0));
  ASSERT_TRUE(r.first.ok()) << r.first.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1.5));
  EXPECT_EQ(leader.service.seen().size(), 1u);
  EXPECT_EQ(standby.service.seen().size(), 1u);
}

TEST(SessionClientTest, AServerWithoutSessionGetsUnaryCalls) {
  ScriptedServer old_server([](const v1::SessionRequest&) {
    return ScriptedLockService::Outcome{};
  }, /*session=*/false);
  ServerClientOptions o;
  o.servers = {old_server.address()};
  ServerClient sc(o);
  SessionClient client(&sc);
  for (int i = 0; i < 3; ++i) {
    Result r = CallAndWait(client, LockCall(absl::StrCat("r", i), i));
    ASSERT_TRUE(r.first.ok()) << r.first.error_message();
    EXPECT_EQ(r.second.lock().status(), v1::LOCK_STATUS_GRANTED);
  }
  EXPECT_EQ(old_server.service.unary_locks(), 3);
  EXPECT_EQ(client.stats().unary_fallback, 3u);
}

TEST(SessionClientTest, GivesUpAfterTheFailoverWait) {
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", DeadPort())};
  o.failover_wait_ms = 300;
  ServerClient sc(o);
  SessionClient client(&sc);
  const absl::Time start = absl::Now();
  Result r = CallAndWait(client, LockCall("r1", 0));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.first.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_GE(took, absl::Milliseconds(300));
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_EQ(client.stats().expired, 1u);
}

TEST(SessionClientTest, TheQueueIsBounded) {
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", DeadPort())};
  o.failover_wait_ms = 60000;
  ServerClient sc(o);
  std::atomic<int> exhausted{0};
  std::atomic<int> unavailable{0};
  {
    SessionClient client(&sc);
    for (size_t i = 0; i <= kSessionClientQueueMax; ++i) {
      client.Call(LockCall(absl::StrCat("r", i), i),
                  [&](const grpc::Status& s, const v1::SessionResult&) {
                    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
                      exhausted.fetch_add(1);
                    } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
                      unavailable.fetch_add(1);
                    }
                  });
    }
    EXPECT_EQ(exhausted.load(), 1);
  }  // Destroying the client answers the queued calls.
  EXPECT_EQ(unavailable.load(), static_cast<int>(kSessionClientQueueMax));
}

// Collects the results of calls made without waiting.
class Results {
 public:
  SessionClient::Done Add(const std::string& name) {
    return [this, name](const grpc::Status& s, const v1::SessionResult& r) {
      absl::MutexLock lock(&mu_);
      EXPECT_EQ(by_name_.count(name), 0u) << name << " answered twice";
      by_name_[name] = {s, r};
    };
  }
  // Waits (bounded) for `n` results; false if they did not all arrive.
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return by_name_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(30));
  }
  std::map<std::string, Result> all() {
    absl::MutexLock lock(&mu_);
    return by_name_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, Result> by_name_ ABSL_GUARDED_BY(mu_);
};

// Polls `pred` every 10 ms for up to 10 s.
template <typename Pred>
bool Eventually(Pred pred) {
  for (int i = 0; i < 1000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// Larger than the ScriptedServer's HTTP/2 window, below its 4 MiB message
// limit.
constexpr size_t kStallingCallBytes = 1 << 20;

TEST(SessionClientTest, AStreamThatEndsWithAWriteInFlightResendsEveryCall) {
  std::atomic<int> messages{0};
  // The first stream reads one message, then neither answers nor reads.
  ScriptedServer fake([&](const v1::SessionRequest&) {
    ScriptedLockService::Outcome o;
    o.hold = messages.fetch_add(1) == 0;
    return o;
  });
  ServerClientOptions o;
  o.servers = {fake.address()};
  o.failover_wait_ms = 60000;
  o.rpc_timeout_ms = 60000;  // Only the server ends the first stream.
  ServerClient sc(o);
  SessionClient client(&sc);
  Results results;
  client.Call(LockCall("first", 0), results.Add("first"));
  ASSERT_TRUE(Eventually([&] { return fake.service.held() == 1; }));

  v1::SessionCall big = LockCall("big", 1);
  big.mutable_lock()->set_file_handle(std::string(kStallingCallBytes, 'f'));
  client.Call(big, results.Add("big"));
  client.Call(LockCall("queued", 2), results.Add("queued"));
  // The held stream does not read: the big write stays in flight.
  ASSERT_TRUE(Eventually([&] { return client.WriteInFlightForTesting(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(client.WriteInFlightForTesting());

  fake.service.EndHeld(grpc::Status(grpc::StatusCode::UNAVAILABLE, "restart"));
  ASSERT_TRUE(results.WaitFor(3));
  for (const auto& [name, r] : results.all()) {
    ASSERT_TRUE(r.first.ok()) << name << ": " << r.first.error_message();
    EXPECT_EQ(r.second.lock().status(), v1::LOCK_STATUS_GRANTED) << name;
  }
  const SessionClientStats stats = client.stats();
  EXPECT_EQ(stats.streams_started, 2u);
  EXPECT_EQ(stats.resent, 2u);  // "first" and "big"; "queued" was not sent.
  // The second stream got all three, the big call intact: the write that
  // never completed gave its call back for the resend.
  std::map<std::string, v1::SessionCall> resent;
  const std::vector<v1::SessionRequest> seen = fake.service.seen();
  for (size_t i = 1; i < seen.size(); ++i) {
    for (const v1::SessionCall& c : seen[i].calls()) {
      resent[c.lock().request_id()] = c;
    }
  }
  ASSERT_EQ(resent.size(), 3u);
  EXPECT_EQ(resent["big"].lock().SerializeAsString(),
            big.lock().SerializeAsString());
  EXPECT_EQ(resent["first"].lock().request_id(), "first");
  EXPECT_EQ(resent["queued"].lock().range().offset(), 2u);
}

TEST(SessionClientTest, AStreamSilentForTheRpcTimeoutIsCancelledAndResent) {
  std::atomic<int> messages{0};
  ScriptedServer fake([&](const v1::SessionRequest&) {
    ScriptedLockService::Outcome o;
    o.hold = messages.fetch_add(1) == 0;
    return o;
  });
  ServerClientOptions o;
  o.servers = {fake.address()};
  o.rpc_timeout_ms = 300;
  o.failover_wait_ms = 20000;
  ServerClient sc(o);
  SessionClient client(&sc);
  Result r = CallAndWait(client, LockCall("r1", 0));
  ASSERT_TRUE(r.first.ok()) << r.first.error_message();
  EXPECT_EQ(r.second.lock().status(), v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(client.stats().streams_started, 2u);
  EXPECT_EQ(client.stats().resent, 1u);
  EXPECT_EQ(fake.service.held(), 0u);  // Our cancel ended the held stream.
}

TEST(SessionClientTest,
     DestroyingTheClientWhileTheServerHoldsTheStreamAnswersUnavailable) {
  ScriptedServer fake([](const v1::SessionRequest&) {
    ScriptedLockService::Outcome o;
    o.hold = true;
    return o;
  });
  ServerClientOptions o;
  o.servers = {fake.address()};
  o.failover_wait_ms = 60000;
  o.rpc_timeout_ms = 60000;
  ServerClient sc(o);
  Results results;
  {
    SessionClient client(&sc);
    client.Call(LockCall("sent", 0), results.Add("sent"));
    ASSERT_TRUE(Eventually([&] { return fake.service.held() == 1; }));
    v1::SessionCall big = LockCall("big", 1);
    big.mutable_lock()->set_file_handle(std::string(kStallingCallBytes, 'f'));
    client.Call(big, results.Add("big"));
    client.Call(LockCall("queued", 2), results.Add("queued"));
    ASSERT_TRUE(Eventually([&] { return client.WriteInFlightForTesting(); }));
  }
  // The destructor returned: every call has its answer.
  const auto all = results.all();
  ASSERT_EQ(all.size(), 3u);
  for (const auto& [name, r] : all) {
    EXPECT_EQ(r.first.error_code(), grpc::StatusCode::UNAVAILABLE) << name;
  }
}

// A TCP listener that never answers: the kernel completes the handshake
// from the backlog, gRPC's HTTP/2 handshake waits (the channel stays
// CONNECTING, so calls neither start nor fail).
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentListener() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(SessionClientTest, DestroyingTheClientDuringAConnectAnswersUnavailable) {
  SilentListener silent;
  ServerClientOptions o;
  o.servers = {silent.address()};
  o.failover_wait_ms = 60000;
  o.rpc_timeout_ms = 60000;
  ServerClient sc(o);
  Results results;
  {
    SessionClient client(&sc);
    client.Call(LockCall("r1", 0), results.Add("r1"));
    client.Call(LockCall("r2", 1), results.Add("r2"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(client.stats().streams_started, 1u);  // Still connecting.
  }
  const auto all = results.all();
  ASSERT_EQ(all.size(), 2u);
  for (const auto& [name, r] : all) {
    EXPECT_EQ(r.first.error_code(), grpc::StatusCode::UNAVAILABLE) << name;
  }
}

TEST(SessionClientTest, DestroyingTheClientWhileADeadAddressIsRetriedReturns) {
  ServerClientOptions o;
  o.servers = {absl::StrCat("127.0.0.1:", DeadPort())};
  o.failover_wait_ms = 60000;
  o.backoff_initial_ms = 1;
  o.backoff_max_ms = 2;
  ServerClient sc(o);
  Results results;
  {
    SessionClient client(&sc);
    client.Call(LockCall("r1", 0), results.Add("r1"));
    // Streams fail and restart back to back; stop in the middle of that.
    ASSERT_TRUE(
        Eventually([&] { return client.stats().streams_started >= 3; }));
  }
  const auto all = results.all();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all.begin()->second.first.error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace lockwarden::gateway
