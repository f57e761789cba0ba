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
// Order: a gateway's messages are applied in the order they were read,
// even when the reaction to the next read runs on another callback thread
// before this one has submitted (to_submit_: one submitter at a time).
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
// Lifetime: gRPC owns the reactor until OnDone; batches in flight and
// SessionRegistry::CloseAll/ResetAll hold references, and the reactor deletes itself
// when the last reference goes.
//
// Thread-safety: reactions run on gRPC threads, batch completions on the
// commit thread; all mutable state is guarded by mu_. gRPC operations
// (StartRead/StartWrite/Finish) are started under mu_, so that no operation
// can start after Finish: gRPC 1.51 never runs a bidi reaction inline
// (grpcpp/impl/codegen/server_callback_handlers.h: can_inline=false), so
// this cannot deadlock.
#ifndef LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_
#define LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
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

class SessionStream final
    : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionResponse> {
 public:
  // Starts reading; `runner` and `registry` must outlive the stream.
  SessionStream(CoreRunner* runner, SessionRegistry* registry);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  friend class SessionRegistry;
  ~SessionStream() = default;
  // Reference counting (see Lifetime above).
  bool TryRefLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref();

  // Converts, applies and queues the calls of `request` (one reference
  // held); true if it owes the runner a DriveCommits() (SubmitBatch with
  // drive=false).
  bool Submit(const v1::SessionRequest& request);
  void Deliver(std::vector<v1::SessionResult> results, size_t answered);
  // Ends the stream with `status` once drained; called by the registry.
  void Close(const grpc::Status& status);
  // Starts the next write / read / finish, as the state allows.
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  CoreRunner* const runner_;
  SessionRegistry* const registry_;

  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 1;  // gRPC's, dropped in OnDone.
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;  // Client done or failed.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);  // Once closing_.
  size_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // Calls read, unanswered.
  std::vector<v1::SessionResult> outbox_ ABSL_GUARDED_BY(mu_);
  // Messages read but not yet submitted (at most a few: reading stops at
  // kSessionOutstandingCallsMax calls), and whether a reaction is
  // submitting them (one at a time, in read order).
  std::deque<v1::SessionRequest> to_submit_ ABSL_GUARDED_BY(mu_);
  bool submitting_ ABSL_GUARDED_BY(mu_) = false;
  // Owned by the read in flight / the write in flight respectively.
  v1::SessionRequest request_;
  v1::SessionResponse response_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_SESSION_STREAM_H_
