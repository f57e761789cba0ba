// SessionClient: the gateway's batched channel to lockwarden-server, one
// long-lived LockService.Session stream instead of one unary RPC per NLM
// request.
//
//   Call(call, done)   any thread; queued, sent at once if no write is in
//                      flight, otherwise together with every call that
//                      arrives meanwhile (one message, one server batch,
//                      one fsync for all of them)
//   results            matched by call_id on the client's own
//                      completion-queue thread
//
// The stream uses gRPC's completion-queue API with one dedicated thread
// blocked in CompletionQueue::Next() (one read and at most one write
// outstanding per stream). That thread wakes once per completion, but
// under gRPC 1.51's epoll1 engine it is only one of the process's
// candidate pollers (the callback API's threads, the sync watch readers),
// so a completion is often polled elsewhere and handed over: ~9-10 context
// switches per NLM call at one client as with the callback API, 40% fewer
// at 64 clients (docs/BENCHMARKS.md, "Session stream on the
// completion-queue API").
//
// Failure handling keeps the unary path's guarantees (server_client.h):
//   - a stream that ends puts its unanswered calls back at the head of the
//     queue and a new stream resends them unchanged: mutations carry their
//     request_id, so the server answers a resent call from its first
//     execution instead of applying it twice;
//   - FAILED_PRECONDITION with `lockwarden-leader-address` (a standby):
//     reconnect to that address at once; any other end: next address, with
//     backoff (backoff_initial_ms doubling to backoff_max_ms);
//   - a call that is not answered within failover_wait_ms of its Call()
//     completes with UNAVAILABLE (the NLM layer answers DENIED_NOLOCKS);
//     a stream with a call unanswered for rpc_timeout_ms is cancelled and
//     its calls resent;
//   - a per-call retryable error (e.g. UNAVAILABLE) restarts the stream, so
//     the call is resent with backoff;
//   - UNIMPLEMENTED (a server without Session): every call from then on
//     goes through the unary RPCs of ServerClient.
//
// Limits: at most kSessionClientQueueMax calls waiting or unanswered
// (beyond it Call fails at once with RESOURCE_EXHAUSTED), at most
// kSessionClientCallsPerMessage calls per message.
//
// Thread-safety: all public methods may be called from any thread; `done`
// callbacks run on the completion-queue thread, the ServerClient timer
// thread or gRPC's callback threads (unary fallback), never under the
// client's mutex, and must not block. The destructor cancels the stream,
// waits until it has ended and joins the completion-queue thread (so it
// must not run inside a `done` callback); calls still pending then
// complete with UNAVAILABLE.
#ifndef LOCKWARDEN_GATEWAY_CLIENT_SESSION_CLIENT_H_
#define LOCKWARDEN_GATEWAY_CLIENT_SESSION_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "gateway/client/server_client.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::gateway {

// Calls queued or in flight at once.
inline constexpr size_t kSessionClientQueueMax = 16384;
// Calls per SessionRequest (the server accepts up to 1024).
inline constexpr size_t kSessionClientCallsPerMessage = 256;
// How often unanswered calls are checked against their deadlines.
inline constexpr int64_t kSessionClientSweepMs = 50;

struct SessionClientStats {
  uint64_t calls = 0;
  uint64_t messages_sent = 0;
  uint64_t streams_started = 0;
  uint64_t resent = 0;         // calls resent on a new stream
  uint64_t unary_fallback = 0;  // calls sent as unary RPCs
  uint64_t expired = 0;        // calls that used up the failover wait
};

class SessionClient {
 public:
  using Done =
      std::function<void(const grpc::Status& status, const v1::SessionResult& result)>;

  // `server` provides the addresses, the leader following and the timer,
  // and must outlive this client. With `use_stream` false every call is a
  // unary RPC (the behaviour before Session existed).
  explicit SessionClient(ServerClient* server, bool use_stream = true);
  ~SessionClient();
  SessionClient(const SessionClient&) = delete;
  SessionClient& operator=(const SessionClient&) = delete;

  // Sends `call` (its request set; call_id is assigned here). `done` runs
  // exactly once: OK with the result (its response set), or the per-call
  // error, or UNAVAILABLE / RESOURCE_EXHAUSTED as described above.
  void Call(v1::SessionCall call, Done done);

  SessionClientStats stats() const;

  // True while a write is outstanding on the open stream.
  bool WriteInFlightForTesting() const;

 private:
  class Stream;
  // Lets timer callbacks (on ServerClient's thread) reach the client only
  // while it exists: the destructor clears `client` under `mu`.
  struct Alive {
    absl::Mutex mu;
    SessionClient* client ABSL_GUARDED_BY(mu) = nullptr;
  };
  struct Pending {
    v1::SessionCall call;
    Done done;
    std::chrono::steady_clock::time_point give_up_at;
    std::chrono::steady_clock::time_point sent_at;
  };
  using Clock = std::chrono::steady_clock;

  // Starts a stream if calls wait and none is open or being opened.
  void MaybeConnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the next message on `stream` if it may write.
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A write completed: the calls it carried go back to their in_flight_
  // entries (MaybeWriteLocked moved them into the message).
  void ReclaimSentCallsLocked(v1::SessionRequest& sent)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks for the stream's status once no operation of it is outstanding.
  void MaybeFinishLocked(Stream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The completion-queue thread: every tag of every stream comes back here.
  void CompletionLoop();
  void OnStarted(Stream* stream, bool ok);
  void OnRead(Stream* stream, bool ok);
  void OnWritten(Stream* stream, bool ok);
  void OnStreamDone(Stream* stream, const grpc::Status& status,
                    const std::string& leader);
  void Reconnect();
  void ScheduleSweepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Sweep();
  void SendUnary(Pending p);
  // Removes calls past their give_up_at from the queue into `*expired`.
  void ExpireLocked(Clock::time_point now, std::vector<Pending>* expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Complete(std::vector<Pending>& calls, const grpc::Status& status);

  ServerClient* const server_;
  const std::shared_ptr<Alive> alive_;
  // Every stream's operations complete here; drained by cq_thread_.
  grpc::CompletionQueue cq_;
  std::thread cq_thread_;

  mutable absl::Mutex mu_;
  uint64_t next_call_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);  // Not yet sent.
  // Sent on stream_, unanswered; by call_id, which increases with age.
  std::map<uint64_t, Pending> in_flight_ ABSL_GUARDED_BY(mu_);
  // Open or opening; owned by the completion-queue thread, which deletes
  // it when Finish's tag (the last of its tags) comes back.
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool reconnect_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool sweep_scheduled_ ABSL_GUARDED_BY(mu_) = false;
  bool unary_only_ ABSL_GUARDED_BY(mu_) = false;  // Server lacks Session.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t backoff_ms_ ABSL_GUARDED_BY(mu_) = 0;
  SessionClientStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_CLIENT_SESSION_CLIENT_H_
