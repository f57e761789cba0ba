#include "gateway/client/session_client.h"

#include <pthread.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway {
namespace {

using Case = v1::SessionCall::RequestCase;

// Runs one SessionCall as its unary RPC (a server without Session).
// `start` starts the async RPC, `set` stores the response in the result.
template <typename Request, typename Response, typename Start, typename Set>
void UnaryCall(ServerClient* server, const Request& request, uint64_t call_id,
               Start start, Set set, SessionClient::Done done) {
  auto req = std::make_shared<Request>(request);
  server->Call<Response>(
      [req, start](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
                   Response* resp, std::function<void(grpc::Status)> cb) {
        start(stubs, ctx, req.get(), resp, std::move(cb));
      },
      [call_id, set, done = std::move(done)](const grpc::Status& status,
                                             const Response& resp) {
        v1::SessionResult result;
        result.set_call_id(call_id);
        result.set_code(static_cast<int32_t>(status.error_code()));
        result.set_message(status.error_message());
        if (status.ok()) set(resp, &result);
        done(status, result);
      });
}

}  // namespace

// One Session stream on the client's completion queue. Created under the
// client's mutex, deleted by the completion-queue thread once Finish's tag
// is back; the owner's mu_ guards every field and every operation started
// on `rw` (Start/Read/Write/Finish), so an operation is never started on a
// call whose Finish has been asked for.
class SessionClient::Stream {
 public:
  enum class Op { kStart, kRead, kWrite, kFinish };
  // What comes back from CompletionQueue::Next: one per kind of operation,
  // each outstanding at most once.
  struct Tag {
    Stream* stream;
    Op op;
  };

  Stream(ServerClient::Stubs& stubs, grpc::CompletionQueue* cq)
      : rw(stubs.lock->PrepareAsyncSession(&ctx, cq)) {
    rw->StartCall(tag(Op::kStart));
    // The read may precede the start's completion (separate op sets); the
    // write may not: the start's initial metadata uses the write's.
    rw->Read(&response, tag(Op::kRead));
  }

  void* tag(Op op) { return &tags_[static_cast<int>(op)]; }

  // The leader named in the trailers of a FAILED_PRECONDITION end.
  std::string LeaderHint() const {
    if (status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) return "";
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto it = trailers.find(kLeaderAddressMetadata);
    if (it == trailers.end()) return "";
    return std::string(it->second.data(), it->second.size());
  }

  grpc::ClientContext ctx;  // Outlives rw (declared first).
  const std::unique_ptr<
      grpc::ClientAsyncReaderWriter<v1::SessionRequest, v1::SessionResponse>>
      rw;
  bool starting = true;        // StartCall's tag outstanding.
  bool started = false;        // ... and back ok: writes may begin.
  bool reading = true;         // A Read outstanding (re-armed until one fails).
  bool writing = false;        // A Write outstanding.
  bool broken = false;         // Ending: no new writes.
  bool finishing = false;      // Finish asked for.
  v1::SessionRequest request;  // The write in flight.
  v1::SessionResponse response;  // The read in flight.
  grpc::Status status;           // Filled in by Finish.

 private:
  Tag tags_[4] = {{this, Op::kStart},
                  {this, Op::kRead},
                  {this, Op::kWrite},
                  {this, Op::kFinish}};
};

SessionClient::SessionClient(ServerClient* server, bool use_stream)
    : server_(server), alive_(std::make_shared<Alive>()) {
  alive_->client = this;
  {
    absl::MutexLock lock(&mu_);
    unary_only_ = !use_stream;
  }
  cq_thread_ = std::thread([this] { CompletionLoop(); });
  // Named for profiles and the bench's switches-per-thread table.
  pthread_setname_np(cq_thread_.native_handle(), "session-cq");
}

SessionClient::~SessionClient() {
  {
    // Timers that fire from now on find no client.
    absl::MutexLock lock(&alive_->mu);
    alive_->client = nullptr;
  }
  std::vector<Pending> left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_ != nullptr) stream_->ctx.TryCancel();
    // Cancelled, every outstanding operation of the stream comes back
    // (failed), then Finish's tag; OnStreamDone clears stream_.
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stream_ == nullptr;
    };
    mu_.Await(absl::Condition(&ended));
    for (Pending& p : queue_) left.push_back(std::move(p));
    queue_.clear();
  }
  // No stream is open and none can start (stopping_): the queue only has to
  // drain of nothing before Next returns false.
  cq_.Shutdown();
  cq_thread_.join();
  Complete(left, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "gateway shutting down"));
}

SessionClientStats SessionClient::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool SessionClient::WriteInFlightForTesting() const {
  absl::MutexLock lock(&mu_);
  return stream_ != nullptr && stream_->writing;
}

void SessionClient::Call(v1::SessionCall call, Done done) {
  const Clock::time_point now = Clock::now();
  Pending p{std::move(call), std::move(done),
            now + std::chrono::milliseconds(server_->options().failover_wait_ms),
            Clock::time_point()};
  grpc::Status refused;
  bool unary = false;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.calls;
    if (stopping_) {
      refused = grpc::Status(grpc::StatusCode::UNAVAILABLE, "gateway shutting down");
    } else if (unary_only_) {
      ++stats_.unary_fallback;
      unary = true;
    } else if (queue_.size() + in_flight_.size() >= kSessionClientQueueMax) {
      refused = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                             absl::StrCat("gateway session queue full (",
                                          kSessionClientQueueMax, " calls)"));
    } else {
      p.call.set_call_id(next_call_id_++);
      queue_.push_back(std::move(p));
      MaybeConnectLocked();
      MaybeWriteLocked();
      ScheduleSweepLocked();
      return;
    }
  }
  if (unary) {
    SendUnary(std::move(p));
    return;
  }
  p.done(refused, v1::SessionResult());
}

void SessionClient::MaybeConnectLocked() {
  if (stream_ != nullptr || reconnect_scheduled_ || stopping_ || queue_.empty()) {
    return;
  }
  ++stats_.streams_started;
  stream_ = new Stream(server_->Current(), &cq_);
}

void SessionClient::MaybeWriteLocked() {
  if (stream_ == nullptr || !stream_->started || stream_->writing ||
      stream_->broken || queue_.empty()) {
    return;
  }
  v1::SessionRequest& req = stream_->request;
  req.Clear();
  const Clock::time_point now = Clock::now();
  while (!queue_.empty() &&
         static_cast<size_t>(req.calls_size()) < kSessionClientCallsPerMessage) {
    Pending& p = queue_.front();
    // Moved, not copied: ReclaimSentCallsLocked moves it back once written
    // (gRPC has serialised it), for a resend after a break.
    req.add_calls()->Swap(&p.call);
    p.call.set_call_id(req.calls(req.calls_size() - 1).call_id());
    p.sent_at = now;
    const uint64_t id = p.call.call_id();
    in_flight_.emplace(id, std::move(p));
    queue_.pop_front();
  }
  ++stats_.messages_sent;
  stream_->writing = true;
  stream_->rw->Write(req, stream_->tag(Stream::Op::kWrite));
}

void SessionClient::MaybeFinishLocked(Stream* stream) {
  // Finish "should not be used concurrently with other operations": it is
  // asked for only once the read has failed (the server's side is over)
  // and neither the start nor a write is outstanding.
  if (stream->finishing || stream->reading || stream->writing ||
      stream->starting) {
    return;
  }
  stream->finishing = true;
  stream->rw->Finish(&stream->status, stream->tag(Stream::Op::kFinish));
}

void SessionClient::CompletionLoop() {
  void* tag = nullptr;
  bool ok = false;
  while (cq_.Next(&tag, &ok)) {
    auto* t = static_cast<Stream::Tag*>(tag);
    switch (t->op) {
      case Stream::Op::kStart:
        OnStarted(t->stream, ok);
        break;
      case Stream::Op::kRead:
        OnRead(t->stream, ok);
        break;
      case Stream::Op::kWrite:
        OnWritten(t->stream, ok);
        break;
      case Stream::Op::kFinish:
        // Finish's tag is a stream's last: nothing of it is outstanding.
        OnStreamDone(t->stream, t->stream->status, t->stream->LeaderHint());
        delete t->stream;
        break;
    }
  }
}

void SessionClient::OnStarted(Stream* stream, bool ok) {
  absl::MutexLock lock(&mu_);
  stream->starting = false;
  if (!ok) {
    // The call is over before it began; the read fails too.
    stream->broken = true;
    MaybeFinishLocked(stream);
    return;
  }
  stream->started = true;
  if (stream == stream_) MaybeWriteLocked();
  MaybeFinishLocked(stream);
}

void SessionClient::OnWritten(Stream* stream, bool ok) {
  absl::MutexLock lock(&mu_);
  stream->writing = false;
  ReclaimSentCallsLocked(stream->request);
  if (!ok) {
    // A client write fails only once the call is over (the server ended it
    // or it was cancelled), so the read ends too. Not cancelled here: that
    // could replace the server's status (e.g. UNIMPLEMENTED) with
    // CANCELLED. The rpc_timeout sweep still cancels a stuck stream.
    stream->broken = true;
  } else if (stream == stream_) {
    MaybeWriteLocked();
  }
  MaybeFinishLocked(stream);
}

void SessionClient::OnRead(Stream* stream, bool ok) {
  std::vector<std::pair<Pending, v1::SessionResult*>> done;
  v1::SessionResponse response;
  {
    absl::MutexLock lock(&mu_);
    if (!ok) {
      stream->reading = false;
      stream->broken = true;
      MaybeFinishLocked(stream);
      return;
    }
    // Take the results and read on at once: the next message may arrive
    // while the callbacks below run.
    response.Swap(&stream->response);
    stream->rw->Read(&stream->response, stream->tag(Stream::Op::kRead));
    backoff_ms_ = 0;  // The stream works.
    bool restart = false;
    const Clock::time_point now = Clock::now();
    done.reserve(response.results_size());
    for (v1::SessionResult& r : *response.mutable_results()) {
      auto it = in_flight_.find(r.call_id());
      if (it == in_flight_.end()) continue;  // Answered already (resent).
      const grpc::Status status(static_cast<grpc::StatusCode>(r.code()),
                                r.message());
      if (!status.ok() && IsRetryable(status) && now < it->second.give_up_at) {
        // Resend on a fresh stream after backoff (OnStreamDone requeues).
        restart = true;
        continue;
      }
      done.emplace_back(std::move(it->second), &r);
      in_flight_.erase(it);
    }
    if (restart && stream == stream_) stream->ctx.TryCancel();
  }
  for (auto& [p, r] : done) {
    p.done(grpc::Status(static_cast<grpc::StatusCode>(r->code()), r->message()),
           *r);
  }
}

void SessionClient::ReclaimSentCallsLocked(v1::SessionRequest& sent) {
  for (v1::SessionCall& call : *sent.mutable_calls()) {
    auto it = in_flight_.find(call.call_id());
    // Absent: answered (or expired) before the write completed.
    if (it != in_flight_.end()) it->second.call.Swap(&call);
  }
  sent.Clear();
}

void SessionClient::OnStreamDone(Stream* stream, const grpc::Status& status,
                                 const std::string& leader) {
  std::vector<Pending> unary;
  std::vector<Pending> expired;
  {
    absl::MutexLock lock(&mu_);
    if (stream_ == stream) stream_ = nullptr;
    // Unanswered calls go back to the head of the queue, oldest first.
    stats_.resent += in_flight_.size();
    for (auto it = in_flight_.rbegin(); it != in_flight_.rend(); ++it) {
      queue_.push_front(std::move(it->second));
    }
    in_flight_.clear();
    if (stopping_) {
      // Left in queue_: the destructor, waiting for this stream to end,
      // answers them before it returns (answering here would race it).
    } else if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      unary_only_ = true;
      stats_.unary_fallback += queue_.size();
      for (Pending& p : queue_) unary.push_back(std::move(p));
      queue_.clear();
    } else {
      ExpireLocked(Clock::now(), &expired);
      int64_t delay_ms = 0;
      if (!leader.empty()) {
        server_->Rotate(leader);
      } else if (!status.ok()) {
        server_->Rotate();
        const ServerClientOptions& o = server_->options();
        delay_ms = backoff_ms_;
        backoff_ms_ = std::min(std::max(backoff_ms_ * 2, o.backoff_initial_ms),
                               o.backoff_max_ms);
      }
      if (delay_ms == 0 || queue_.empty()) {
        MaybeConnectLocked();
        MaybeWriteLocked();
      } else {
        reconnect_scheduled_ = true;
        std::weak_ptr<Alive> alive = alive_;
        const bool scheduled = server_->Schedule(delay_ms, [alive] {
          if (auto a = alive.lock()) {
            absl::MutexLock alive_lock(&a->mu);
            if (a->client != nullptr) a->client->Reconnect();
          }
        });
        if (!scheduled) {
          reconnect_scheduled_ = false;
          MaybeConnectLocked();
          MaybeWriteLocked();
        }
      }
    }
  }
  Complete(expired, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 absl::StrCat("lock server unreachable: ",
                                              status.error_message())));
  for (Pending& p : unary) SendUnary(std::move(p));
}

void SessionClient::Reconnect() {
  absl::MutexLock lock(&mu_);
  reconnect_scheduled_ = false;
  MaybeConnectLocked();
  MaybeWriteLocked();
}

void SessionClient::ScheduleSweepLocked() {
  if (sweep_scheduled_ || stopping_) return;
  std::weak_ptr<Alive> alive = alive_;
  sweep_scheduled_ = server_->Schedule(kSessionClientSweepMs, [alive] {
    if (auto a = alive.lock()) {
      absl::MutexLock alive_lock(&a->mu);
      if (a->client != nullptr) a->client->Sweep();
    }
  });
}

void SessionClient::Sweep() {
  std::vector<Pending> expired;
  {
    absl::MutexLock lock(&mu_);
    sweep_scheduled_ = false;
    const Clock::time_point now = Clock::now();
    ExpireLocked(now, &expired);
    // A call unanswered for rpc_timeout_ms on a live stream: the server or
    // the connection is stuck. Start over on a new stream.
    if (!in_flight_.empty() && stream_ != nullptr &&
        now - in_flight_.begin()->second.sent_at >
            std::chrono::milliseconds(server_->options().rpc_timeout_ms)) {
      stream_->ctx.TryCancel();
    }
    if (!queue_.empty() || !in_flight_.empty()) ScheduleSweepLocked();
  }
  Complete(expired, grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "lock server unreachable within the failover wait"));
}

void SessionClient::ExpireLocked(Clock::time_point now,
                                 std::vector<Pending>* expired) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (now >= it->give_up_at) {
      expired->push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  stats_.expired += expired->size();
}

void SessionClient::Complete(std::vector<Pending>& calls,
                             const grpc::Status& status) {
  for (Pending& p : calls) {
    v1::SessionResult r;
    r.set_call_id(p.call.call_id());
    r.set_code(static_cast<int32_t>(status.error_code()));
    r.set_message(status.error_message());
    p.done(status, r);
  }
}

void SessionClient::SendUnary(Pending p) {
  const uint64_t id = p.call.call_id();
  Done done = std::move(p.done);
  const v1::SessionCall& c = p.call;
  switch (c.request_case()) {
    case Case::kTest:
      UnaryCall<v1::TestRequest, v1::TestResponse>(
          server_, c.test(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Test(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_test() = resp; },
          std::move(done));
      return;
    case Case::kLock:
      UnaryCall<v1::LockRequest, v1::LockResponse>(
          server_, c.lock(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Lock(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_lock() = resp; },
          std::move(done));
      return;
    case Case::kCancel:
      UnaryCall<v1::CancelRequest, v1::CancelResponse>(
          server_, c.cancel(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Cancel(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_cancel() = resp; },
          std::move(done));
      return;
    case Case::kUnlock:
      UnaryCall<v1::UnlockRequest, v1::UnlockResponse>(
          server_, c.unlock(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Unlock(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_unlock() = resp; },
          std::move(done));
      return;
    case Case::kShare:
      UnaryCall<v1::ShareRequest, v1::ShareResponse>(
          server_, c.share(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Share(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_share() = resp; },
          std::move(done));
      return;
    case Case::kUnshare:
      UnaryCall<v1::UnshareRequest, v1::UnshareResponse>(
          server_, c.unshare(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->Unshare(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_unshare() = resp; },
          std::move(done));
      return;
    case Case::kFreeAll:
      UnaryCall<v1::FreeAllRequest, v1::FreeAllResponse>(
          server_, c.free_all(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->FreeAll(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) { *r->mutable_free_all() = resp; },
          std::move(done));
      return;
    case Case::kAckGrant:
      UnaryCall<v1::AckGrantRequest, v1::AckGrantResponse>(
          server_, c.ack_grant(), id,
          [](auto& s, auto* ctx, auto* req, auto* resp, auto cb) {
            s.lock->async()->AckGrant(ctx, req, resp, std::move(cb));
          },
          [](const auto& resp, v1::SessionResult* r) {
            *r->mutable_ack_grant() = resp;
          },
          std::move(done));
      return;
    case Case::REQUEST_NOT_SET:
      break;
  }
  v1::SessionResult r;
  r.set_call_id(id);
  const grpc::Status bad(grpc::StatusCode::INVALID_ARGUMENT,
                         "request: no call set");
  r.set_code(static_cast<int32_t>(bad.error_code()));
  r.set_message(bad.error_message());
  done(bad, r);
}

}  // namespace lockwarden::gateway
