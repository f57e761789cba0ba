// SessionStream: the server side of LockService.Session, the batched,
// long-lived form of the unary lock calls that gateways use.
//
//   gateway --SessionRequest{calls...}--> OnReadDone: convert each call,
//     CoreRunner::SubmitBatch(all of them)   (one lock hold, one queue entry)
//   commit thread: one durable commit --> results appended to the outbox;
//     at most one write in flight, results that arrive meanwhile go out
//     together in the next SessionResponse.
//
// Compared with one unary RPC per NLM request this removes gRPC's per-call
// setup (metadata, call objects, a callback-executor hop per reply) and lets
// one read, one core lock hold, one queue entry, one fsync and one write
// serve many requests.
//
// Limits: a message with more than kSessionCallsPerMessageMax calls ends
// the stream with RESOURCE_EXHAUSTED. At most kSessionOutstandingCallsMax
// calls are unanswered at once: past it the stream stops reading (gRPC flow
// control then pushes back on the gateway) until results are written.
//
// A snapshot import (CoreRunner::ImportState) ends every session with
// UNAVAILABLE once its calls in flight are answered, so the gateways open new
// ones on the new state (SessionRegistry::ResetAll).
//
// Transport: Session is served through gRPC's asynchronous API on
// completion queues of our own (SessionQueues), each polled by one dedicated
// thread blocked in ServerCompletionQueue::Next(), while every other
// LockService method stays on the callback API. gRPC 1.51 never runs a bidi
// callback reaction inline: each read and write completion hopped from the
// poller to a callback-executor thread. A thread in Next() is a poller
// itself, so a completion costs at most one wake-up of that thread.
//
// Operations: at most one read and one write (Finish included) are in
// flight per stream; each has its own tag (an OpTag member), returned by the
// queue exactly once. Completions run on the queue's thread; operations
// start there, on the commit thread (Deliver: a write, or a read resumed
// after back-pressure) or in a registry call (Close): gRPC async operations
// may start on any thread, and each starts under mu_ after checking that
// none of its kind is in flight. Finish waits for the write in flight.
//
// Lifetime: the stream deletes itself when its last reference goes. The
// accept (later, gRPC's "call done" notification), every operation in
// flight, every CoreRunner batch in flight, and SessionRegistry::EndAll
// hold one each. grpc::Server::Shutdown returns only once every accepted
// stream is deleted (its ServerContext holds the call), so SessionQueues
// shuts its queues down after it and never sees an operation started on a
// shut-down queue.
//
// Thread-safety: all mutable state is guarded by mu_; lock order
// SessionRegistry::mu_ before SessionStream::mu_. No gRPC completion runs
// inline in the thread that starts an operation, so operations are started
// under mu_ safely.
#ifndef LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_
#define LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "server/service/core_runner.h"

namespace lockwarden::service {

// Calls in one SessionRequest at most (== one CoreRunner batch at most).
inline constexpr size_t kSessionCallsPerMessageMax = kBatchItemsMax;
// Calls read but not yet answered on one stream before it stops reading.
inline constexpr size_t kSessionOutstandingCallsMax = 1024;

class SessionStream;

// The live sessions of one LockServiceImpl, so that a shutting-down server
// can end them promptly instead of waiting for its shutdown deadline.
class SessionRegistry {
 public:
  SessionRegistry() = default;
  ~SessionRegistry();
  SessionRegistry(const SessionRegistry&) = delete;
  SessionRegistry& operator=(const SessionRegistry&) = delete;

  // Ends every live session with UNAVAILABLE once its calls in flight are
  // answered; later sessions are refused at once.
  void CloseAll();
  bool closed() const;
  // Ends every live session with `status` once its calls in flight are
  // answered; later sessions start as usual. Called through the runner
  // when a snapshot import replaced the lock state.
  void ResetAll(const absl::Status& status);

 private:
  friend class SessionStream;
  class ResetHook;
  // False if the registry is closed (the session must refuse to start).
  // The first Add registers the registry for the runner's resets.
  bool Add(SessionStream* s, CoreRunner* runner);
  void Remove(SessionStream* s);
  // Ends the sessions (taking a reference on each live one) with `status`.
  void EndAll(const grpc::Status& status, bool close_registry);

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<SessionStream*> sessions_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<ResetHook> hook_ ABSL_GUARDED_BY(mu_);
};

// LockService with Session on the asynchronous API, the rest on callbacks.
// The order matters: gRPC 1.51's MarkMethodAsync drops a method's handler
// only when the method was synchronous, so WithAsyncMethod_Session applied
// over CallbackService would leave Session a callback method whose async
// RequestSession crashes. Session goes async on the plain (synchronous)
// Service first; the callback wrappers then replace the other handlers. A
// method added to the proto must be added here, or it stays synchronous.
using SessionAsyncService = v1::LockService::WithCallbackMethod_Test<
    v1::LockService::WithCallbackMethod_Lock<
        v1::LockService::WithCallbackMethod_Cancel<
            v1::LockService::WithCallbackMethod_Unlock<
                v1::LockService::WithCallbackMethod_Share<
                    v1::LockService::WithCallbackMethod_Unshare<
                        v1::LockService::WithCallbackMethod_FreeAll<
                            v1::LockService::WithCallbackMethod_WatchGrants<
                                v1::LockService::WithCallbackMethod_AckGrant<
                                    v1::LockService::WithAsyncMethod_Session<
                                        v1::LockService::Service>>>>>>>>>>;

// One Session call, from its accept to its end (see the banner).
class SessionStream final {
 public:
  // Asks gRPC for the next Session call on `cq`; the new stream accepts it
  // and then asks for the next one. Every pointer must outlive the stream.
  static void Request(SessionAsyncService* service,
                      grpc::ServerCompletionQueue* cq, CoreRunner* runner,
                      SessionRegistry* registry);
  // Handles one completion taken from a Session queue.
  static void Dispatch(void* tag, bool ok);

 private:
  friend class SessionRegistry;
  enum class Op { kAccept, kRead, kWrite, kFinish, kDone };
  // A completion-queue tag: which operation of which stream completed.
  struct OpTag {
    SessionStream* stream;
    Op op;
  };

  SessionStream(SessionAsyncService* service, grpc::ServerCompletionQueue* cq,
                CoreRunner* runner, SessionRegistry* registry);
  ~SessionStream() = default;

  void OnAccepted(bool ok);
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnCallDone();
  // Reference counting (see Lifetime above).
  bool TryRefLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref();

  // Converts and submits the calls of `request` (one reference held).
  void Submit(const v1::SessionRequest& request);
  void Deliver(std::vector<v1::SessionResult> results, size_t answered);
  // Ends the stream with `status` once drained; called by the registry.
  void Close(const grpc::Status& status);
  // Starts the next write / read / finish, as the state allows.
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the call with `status` (first status wins): no operation starts
  // after it, and gRPC's Finish starts once no write is in flight.
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  SessionAsyncService* const service_;
  grpc::ServerCompletionQueue* const cq_;
  CoreRunner* const runner_;
  SessionRegistry* const registry_;
  OpTag accept_tag_{this, Op::kAccept};
  OpTag read_tag_{this, Op::kRead};
  OpTag write_tag_{this, Op::kWrite};
  OpTag finish_tag_{this, Op::kFinish};
  OpTag done_tag_{this, Op::kDone};

  // gRPC's call state; operations on stream_ are started under mu_.
  grpc::ServerContext ctx_;
  grpc::ServerAsyncReaderWriter<v1::SessionResponse, v1::SessionRequest>
      stream_{&ctx_};

  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 1;  // The accept's, then the call-done's.
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;  // Client done or failed.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // No new reads or writes.
  bool finish_started_ ABSL_GUARDED_BY(mu_) = false;
  bool call_done_ ABSL_GUARDED_BY(mu_) = false;      // gRPC: call over.
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);  // Once finished_.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);  // Once closing_.
  size_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // Calls read, unanswered.
  std::vector<v1::SessionResult> outbox_ ABSL_GUARDED_BY(mu_);
  // Owned by the read in flight / the write in flight respectively.
  v1::SessionRequest request_;
  v1::SessionResponse response_;
};

// Threads serving Session calls at most (one completion queue each).
inline constexpr int kSessionThreadsMax = 16;

// The completion queues and threads that serve LockService.Session.
// Sequence: AddTo(builder) before BuildAndStart; Start() after it; Stop()
// after grpc::Server::Shutdown returned (the destructor calls it too).
// Thread-safety: AddTo/Start/Stop from one thread.
class SessionQueues {
 public:
  // The pointers must outlive the queues.
  SessionQueues(SessionAsyncService* service, CoreRunner* runner,
                SessionRegistry* registry)
      : service_(service), runner_(runner), registry_(registry) {}
  ~SessionQueues() { Stop(); }
  SessionQueues(const SessionQueues&) = delete;
  SessionQueues& operator=(const SessionQueues&) = delete;

  // Adds `threads` (1..kSessionThreadsMax, clamped) completion queues.
  void AddTo(grpc::ServerBuilder* builder, int threads);
  // Requests one Session call per queue and starts each queue's thread.
  void Start();
  // Shuts the queues down, drains them (failed accepts delete their
  // streams) and joins the threads. Idempotent.
  void Stop();

 private:
  SessionAsyncService* const service_;
  CoreRunner* const runner_;
  SessionRegistry* const registry_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_
