// CommitPipeline: group commit in front of a StateStore. The lock service
// applies each command to the core under its own mutex, hands the resulting
// Delta to Enqueue(), and replies to the client from the callback, which runs
// only once the delta is durable.
//
// One background thread takes everything queued since its last commit,
// concatenates the deltas in enqueue order into one batch, calls
// StateStore::Commit() once, and then runs the callbacks of that group, in
// enqueue order, with the result. While a commit (an fsync) is in flight new
// deltas queue up, so under load one fsync acknowledges many requests.
//
// A group's batch is coalesced by key (CoalesceByKey): only the last
// mutation of each key is committed. The batch is atomic, so the store ends
// in exactly the state the ordered concatenation gives, and keys every
// request rewrites (the core's counters record) cost one write per group
// instead of one per request; etcd, which refuses a Txn touching a key
// twice, needs it anyway.
//
// Groups are cut at the store's Limits(), counting the coalesced batch's
// mutations (distinct keys): if the queued deltas do not fit one batch, the
// group takes the longest prefix that fits and the rest goes into the next
// group. Every group is therefore exactly one atomic Commit(), and each
// delta lands whole in one group (a delta that alone breaks the limits is
// refused at Enqueue()).
//
// Caller-driven commits: EnqueueAll(..., will_drive=true) followed by
// Drive() commits on the caller's thread when no commit is in progress, so a
// lone request needs no hand-off to the pipeline thread and back; under load
// the thread commits as before. Either way one group at a time, in order.
//
// Failure: the in-memory state above the pipeline has already moved past a
// delta when it is enqueued, so after a failed commit nothing later may be
// made durable on top of the lost one. The pipeline becomes broken: the
// failing group and everything queued after it complete with UNAVAILABLE,
// new work is refused with UNAVAILABLE, and Healthy() turns false for good.
// The owner recovers by rebuilding state from the store (the failed group's
// outcome is unknown: it may or may not be in the store, never partly).
// BrokenStatus() keeps the store's original error, so a fenced writer
// (FAILED_PRECONDITION) can tell it must step down.
//
// Admission: the queue holds at most max_queued_deltas. A caller that has
// already applied a delta to in-memory state cannot cope with a refusal, so
// it should ReserveSlot() before applying the command and Enqueue(slot, ...)
// after: a reserved enqueue is never refused for capacity or state. The
// plain Enqueue(delta, done) reserves and enqueues in one call.
//
// Example (the service):
//   LW_ASSIGN_OR_RETURN(CommitPipeline::Slot slot, pipeline.ReserveSlot());
//   absl::MutexLock lock(&core_mu_);
//   Effects effects = core_.Apply(command, now);
//   pipeline.Enqueue(std::move(slot), effects.delta,
//                    [reply](absl::Status s) { reply(s); });
//
// Thread safety: all public methods may be called from any thread. The order
// of Enqueue() calls is the commit order, so callers that need an order
// (the service: the order the core applied commands) must enqueue under the
// same mutex they apply under. Callbacks run on the pipeline thread (or a
// Drive() caller), outside the pipeline's mutex, one at a time; they must
// not block for long and must not call Shutdown(), but may call Enqueue()
// and Drive() (which then leaves the work to the pipeline thread).
#ifndef LOCKWARDEN_SERVER_STORE_COMMIT_PIPELINE_H_
#define LOCKWARDEN_SERVER_STORE_COMMIT_PIPELINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <utility>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/mutation.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

// Deltas queued and reserved at once, beyond which admission is refused
// with RESOURCE_EXHAUSTED.
inline constexpr size_t kDefaultMaxQueuedDeltas = 16384;
// Commit latencies kept for the p50 estimate.
inline constexpr size_t kCommitLatencyWindow = 1024;

// The mutations of `deltas`, in order, keeping only the last mutation of
// each key (at the position of that last mutation). Applied atomically, the
// result leaves a store in the same state as all of `deltas` in order.
Delta CoalesceByKey(std::vector<Delta> deltas);

struct CommitPipelineOptions {
  size_t max_queued_deltas = kDefaultMaxQueuedDeltas;
};

struct CommitPipelineStats {
  uint64_t commits = 0;         // StateStore::Commit() calls that succeeded.
  uint64_t failed_commits = 0;  // ... and that failed (at most 1: it breaks).
  uint64_t deltas = 0;          // Deltas acknowledged OK.
  uint64_t failed_deltas = 0;   // Deltas completed with an error.
  uint64_t mutations = 0;       // Mutations in successful commits (coalesced).
  double mean_batch_deltas = 0;  // deltas / commits.
  uint64_t max_batch_deltas = 0;
  absl::Duration last_commit_latency = absl::ZeroDuration();
  // Median of the last kCommitLatencyWindow commits.
  absl::Duration p50_commit_latency = absl::ZeroDuration();
  absl::Duration max_commit_latency = absl::ZeroDuration();
  size_t queued = 0;  // Deltas waiting right now.
  uint64_t inline_groups = 0;  // Groups committed by Drive() callers.
};

class CommitPipeline {
 public:
  using Callback = std::function<void(absl::Status)>;

  // A reserved queue position. Move-only; releases the reservation when
  // destroyed unused. Shutdown() (and so the destructor) waits for every
  // outstanding slot, so a slot never outlives its pipeline; do not destroy
  // the pipeline on a thread that still holds one.
  class Slot {
   public:
    Slot(Slot&& other) noexcept : pipeline_(other.pipeline_) {
      other.pipeline_ = nullptr;
    }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();

   private:
    friend class CommitPipeline;
    explicit Slot(CommitPipeline* pipeline) : pipeline_(pipeline) {}
    CommitPipeline* pipeline_;
  };

  // `store` is not owned and must outlive the pipeline. Starts the thread.
  explicit CommitPipeline(StateStore* store,
                          CommitPipelineOptions options = CommitPipelineOptions());
  // Calls Shutdown().
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Reserves room for one delta. RESOURCE_EXHAUSTED when the queue is full,
  // UNAVAILABLE when broken or shut down.
  absl::StatusOr<Slot> ReserveSlot();

  // Queues `delta`; `done` runs exactly once, on the pipeline thread, after
  // the delta is durable (OK) or is known not to be acknowledged (error).
  // Returns INVALID_ARGUMENT (and never runs `done`) only if the delta alone
  // breaks the store's limits. If the pipeline broke after the slot was
  // reserved, `done` runs with UNAVAILABLE.
  absl::Status Enqueue(Slot slot, Delta delta, Callback done);

  // ReserveSlot() + Enqueue(). On a non-OK return `done` never runs.
  absl::Status Enqueue(Delta delta, Callback done);

  // Queues the deltas of a batch of requests applied together, back to back
  // and in order, on one reservation: consecutive deltas are packed into as
  // few queue entries as the store's limits allow (each entry is committed
  // whole, in one group). `done` runs once, after the last delta is durable,
  // or with the first error. An empty `deltas` is a barrier. Returns
  // INVALID_ARGUMENT (and never runs `done`) if one delta alone breaks the
  // store's limits. The queue may exceed max_queued_deltas by the entries
  // of one batch: the caller bounds its batch size.
  // With `will_drive` the caller promises to call Drive() once afterwards
  // if this returns OK, and the pipeline thread leaves the batch to it.
  absl::Status EnqueueAll(Slot slot, std::vector<Delta> deltas, Callback done,
                          bool will_drive = false);

  // Commits on the calling thread what is queued, if no commit is in
  // progress; otherwise returns at once and the commit in progress (or the
  // pipeline thread after it) takes the work. Saves two thread switches per
  // request when the pipeline is idle (sequential clients), and changes
  // nothing under load, where commits overlap with the arrival of the next
  // requests. Callbacks of that group run on the calling thread. Call it
  // exactly once after each successful EnqueueAll(..., will_drive=true),
  // with no lock held that a callback takes.
  void Drive();

  // Stops admitting work, waits for outstanding slots to be used or
  // released, commits everything queued, runs its callbacks, and joins the
  // thread. Idempotent. Must not be called from a callback.
  void Shutdown();

  // False once a commit has failed; never true again.
  bool Healthy() const;
  // OK while healthy; otherwise the store error that broke the pipeline.
  absl::Status BrokenStatus() const;

  CommitPipelineStats Stats() const;

 private:
  struct Pending {
    Delta delta;
    Callback done;
    size_t bytes = 0;  // Sum of MutationBytes() over delta.
  };

  void ReleaseSlot();
  absl::Status AdmissionStatus() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Validates `deltas` and packs them into queue entries (the last gets
  // `done`).
  absl::StatusOr<std::vector<Pending>> Pack(std::vector<Delta> deltas,
                                            Callback done) const;
  bool HasWorkOrDrained() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();
  // Moves the next group (the longest queue prefix fitting one batch) out of
  // the queue.
  std::vector<Pending> TakeGroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `group` (or fails it if `broken`), runs its callbacks, clears
  // committing_.
  void CommitGroup(std::vector<Pending>& group, const absl::Status& broken);
  void RecordCommit(const std::vector<Pending>& group, size_t mutations,
                    const absl::Status& status, absl::Duration latency);

  // Constant after construction.
  StateStore* const store_;
  const StoreLimits limits_;
  const CommitPipelineOptions options_;

  mutable absl::Mutex mu_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  // Slots handed out and not yet used or released.
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // A group is being committed or its callbacks run (by the thread or a
  // Drive() caller): at most one at a time, in queue order.
  bool committing_ ABSL_GUARDED_BY(mu_) = false;
  // EnqueueAll(will_drive) calls whose Drive() has not run yet.
  size_t drivers_pending_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<uint64_t> inline_groups_{0};
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  CommitPipelineStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> latencies_ ABSL_GUARDED_BY(mu_);  // Ring.
  size_t latency_next_ ABSL_GUARDED_BY(mu_) = 0;

  // Serialises Shutdown() callers around the join.
  absl::Mutex shutdown_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_COMMIT_PIPELINE_H_
