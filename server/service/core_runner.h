// CoreRunner: the one mutation pipeline of the lock service.
//
//   request -> Submit(command)
//     [mu_] reserve a commit slot, apply the command to the pure core, enqueue
//           its delta (in apply order) on the group-commit pipeline
//     [pipeline thread] one durable commit for every delta in flight
//     -> reply to all of them, then publish their events to the streams.
//
// Nothing is acknowledged before it is durable: replies and events are
// released only from the commit callback. If a commit fails, the in-memory
// core is ahead of the disk, so the runner breaks: every later request gets
// UNAVAILABLE and health turns NOT_SERVING until the process restarts and
// recovers from the store (which holds exactly the acknowledged state plus,
// possibly, the failed group applied whole or not at all).
//
// Reads (TEST, STAT, admin views) run under the lock without a commit; a
// read whose answer could reflect a not-yet-durable mutation waits for a
// barrier (an empty delta) behind it before replying.
//
// Timers: a tick thread applies core::TickCmd when core.NextDeadlineMs() is
// due (grant expiry, end of grace). No busy loop: it sleeps on a CondVar.
//
// Thread-safety: every public method may be called from any thread. Done
// callbacks run on the commit pipeline's thread, or inline in Submit /
// SubmitBatch (on errors, and when the pipeline was idle so the submitting
// thread committed itself: CommitPipeline::Drive); they must not block, and
// callers must not hold a lock across Submit that the callback takes.
#ifndef LOCKWARDEN_SERVER_SERVICE_CORE_RUNNER_H_
#define LOCKWARDEN_SERVER_SERVICE_CORE_RUNNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/core/lock_core.h"
#include "server/store/commit_pipeline.h"
#include "server/store/state_store.h"

namespace lockwarden::service {

// Longest the tick thread sleeps without re-checking (bounds clock skew).
inline constexpr int64_t kTickMaxSleepMs = 1000;
// Shortest interval between two ticks (bounds tick work under deadline storms).
inline constexpr int64_t kTickMinIntervalMs = 5;

// Receives a wake-up when durable events for its gateway appear.
// Wake() runs on the pipeline thread: it must not block.
class EventListener {
 public:
  virtual ~EventListener() = default;
  virtual void Wake() = 0;
  // The whole lock state was replaced (a snapshot import): end the stream
  // with `status` (UNAVAILABLE) so its gateway reconnects and reads the new
  // state. Runs on the pipeline thread: must not block.
  virtual void Reset(const absl::Status& status) { (void)status; }
};

// Commands of one SubmitBatch at most (a Session message is bounded below).
inline constexpr size_t kBatchItemsMax = 1024;

// The refusal while the store holds an interrupted import (UNAVAILABLE,
// naming the marker and the two ways out).
absl::Status InterruptedImportError(const core::ImportMarker& m);

// One item of a CoreRunner::SubmitBatch: a mutation or a read (TEST).
using BatchItem = std::variant<core::Command, core::TestQuery>;

class CoreRunner {
 public:
  using Done = std::function<void(absl::StatusOr<core::Reply>)>;
  // One result per item of the batch, in item order.
  using BatchDone =
      std::function<void(std::vector<absl::StatusOr<core::Reply>> replies)>;
  using EventFilter = std::function<bool(const core::Event&)>;

  // `pipeline` and `clock` are not owned and must outlive the runner.
  // Every event already in `core` is durable (it was loaded from the store).
  CoreRunner(core::LockCore core, store::CommitPipeline* pipeline,
             const Clock* clock);
  ~CoreRunner();

  CoreRunner(const CoreRunner&) = delete;
  CoreRunner& operator=(const CoreRunner&) = delete;

  // Starts the tick thread.
  void Start();
  // Stops the tick thread. Pending commits still complete (the pipeline owns
  // them); new submissions fail with UNAVAILABLE.
  void Stop();

  // Applies `cmd` and calls `done` once its effects are durable, or with an
  // error (UNAVAILABLE: store broken or shutting down; RESOURCE_EXHAUSTED:
  // commit queue full; INVALID_ARGUMENT: the core rejected a field).
  void Submit(core::Command cmd, Done done);

  // Applies the items of `items` in order under one lock acquisition and
  // queues their deltas as one unit on the pipeline, so that one commit
  // makes them durable together; then calls `done` once with every reply.
  // A read (TestQuery) sees the mutations before it and is answered, like
  // the mutations, only once everything it observed is durable. Errors are
  // per item (INVALID_ARGUMENT from the core), or for all items
  // (UNAVAILABLE, RESOURCE_EXHAUSTED as Submit; INVALID_ARGUMENT when more
  // than kBatchItemsMax). `done` runs on the pipeline thread, or inline if
  // nothing needs a commit or on errors.
  // With `drive` false the batch is applied and queued but not committed
  // here even if the pipeline is idle, and SubmitBatch returns true when
  // the caller then owes one DriveCommits() for it (the pipeline waits for
  // it): a Session stream applies its messages in read order and commits
  // them once its queue is drained, without holding that order across an
  // fsync. With `drive` true it returns false.
  bool SubmitBatch(std::vector<BatchItem> items, BatchDone done,
                   bool drive = true);
  // The Drive() a SubmitBatch(..., drive=false) that returned true owes:
  // commits what is queued, here, if no commit is in progress (else the
  // commit in progress or the pipeline thread takes it).
  void DriveCommits();

  // Runs `read` on the core now, then `done` once everything the read could
  // have observed is durable.
  void ReadDurable(absl::FunctionRef<void(const core::LockCore&, int64_t now_ms)> read,
                   std::function<void(absl::Status)> done);

  // Replaces the whole state with `next` (AdminService.ImportSnapshot) in
  // as many durable commits as the store's `limits` need (a staged import,
  // core/lock_core.h; core_runner_import.cc):
  //   1. the import marker `marker` (core/codec.h "m/import") and next's
  //      counters (so counters never go backwards, whatever happens next);
  //   2. chunks of deletes (records next lacks) and puts (records new or
  //      changed), each within `limits`;
  //   3. the marker's deletion: this commit makes the import current.
  // From the call until the last commit, Submit/SubmitBatch/ReadDurable
  // answer UNAVAILABLE (ReadNow still sees the old state). Once the last
  // commit is durable `next` becomes the core, listeners are Reset() (the
  // gateways' streams end and reconnect to the new state) and `done(OK)`
  // runs. A failed commit breaks the runner like any other: the store then
  // holds the marker, and the restarted server (or a standby taking over)
  // refuses to serve until an import is finished or abandoned. Works the
  // same from an interrupted-import core (finishing or abandoning it).
  void ImportState(core::LockCore next, const core::ImportMarker& marker,
                   const store::StoreLimits& limits,
                   std::function<void(absl::Status)> done);

  // Runs `read` on the core now, without waiting for durability (admin views).
  absl::Status ReadNow(
      absl::FunctionRef<void(const core::LockCore&, int64_t now_ms)> read) const;

  // Durable pending events of `gateway` with sequence > `after` that match
  // `filter`, at most `limit`. `*scanned_to` receives the highest sequence
  // examined (so a caller can skip non-matching events next time).
  std::vector<core::Event> DurableEvents(const std::string& gateway,
                                         uint64_t after, size_t limit,
                                         const EventFilter& filter,
                                         uint64_t* scanned_to) const;

  void AddListener(const std::string& gateway, std::weak_ptr<EventListener> l);
  // Event streams resuming below this sequence start from 0 instead: the
  // next event sequence of the state the last snapshot import installed
  // (0 if none in this process). A gateway's cursor from before an import
  // says nothing about the imported outboxes, whose events may carry lower
  // sequences; re-sending an unacknowledged event is harmless, skipping one
  // is not.
  uint64_t EventResumeFloor() const;
  // A listener told only of Reset() (LockService.Session streams).
  void AddResetListener(std::weak_ptr<EventListener> l);

  // OK while serving; the failure otherwise.
  absl::Status Health() const;
  // True when the only reason Health() fails is an interrupted import (the
  // runner is not broken and not stopping): another leader would refuse too.
  bool InterruptedImportOnly() const;
  // Called (on any thread) when Health() changes.
  void SetHealthCallback(std::function<void(bool serving)> cb);

  store::CommitPipelineStats PipelineStats() const { return pipeline_->Stats(); }
  // The core's options (constant after construction).
  const core::CoreOptions& core_options() const { return core_options_; }

 private:
  absl::Status RefusalLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Applies `items`; either queues their deltas with `done` or, when they
  // are reads of durable state only, leaves the replies in `*answer_now`.
  absl::Status ApplyBatchAndEnqueue(
      std::vector<BatchItem>& items, store::CommitPipeline::Slot slot,
      BatchDone& done,
      std::optional<std::vector<absl::StatusOr<core::Reply>>>* answer_now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteDeadline(int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ApplyAndEnqueue(const core::Command& cmd,
                               store::CommitPipeline::Slot slot, Done& done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnCommitted(uint64_t apply_seq, const absl::Status& status,
                   const std::vector<core::Event>& events);
  void Break(const absl::Status& status);
  void TickLoop();
  void WakeListeners(const std::vector<core::Event>& events);
  // Commits chunk `i` of an import, then the next (core_runner_import.cc).
  struct ImportPlan;
  // The import's commits: old records (the live state, or the verbatim
  // records of an interrupted import) to `plan.next`'s.
  void PlanImportLocked(ImportPlan& plan, const core::ImportMarker& marker,
                        const store::StoreLimits& limits)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CommitImportChunk(std::shared_ptr<ImportPlan> plan, size_t i);
  void FinishImport(std::shared_ptr<ImportPlan> plan);
  void ResetListeners(const absl::Status& status);

  store::CommitPipeline* const pipeline_;
  const Clock* const clock_;
  const core::CoreOptions core_options_;

  mutable absl::Mutex mu_;
  core::LockCore core_ ABSL_GUARDED_BY(mu_);
  uint64_t applied_seq_ ABSL_GUARDED_BY(mu_) = 0;   // Commands applied.
  uint64_t durable_seq_ ABSL_GUARDED_BY(mu_) = 0;   // ... and committed.
  uint64_t durable_event_seq_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  bool importing_ ABSL_GUARDED_BY(mu_) = false;  // ImportState running.
  uint64_t event_resume_floor_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t next_deadline_ms_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar tick_cv_;
  std::function<void(bool)> health_cb_ ABSL_GUARDED_BY(mu_);

  mutable absl::Mutex listeners_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::flat_hash_map<std::string, std::vector<std::weak_ptr<EventListener>>>
      listeners_ ABSL_GUARDED_BY(listeners_mu_);
  std::vector<std::weak_ptr<EventListener>> reset_listeners_
      ABSL_GUARDED_BY(listeners_mu_);

  std::thread tick_thread_;
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_CORE_RUNNER_H_
