// StandbyReplica: a standby's warm copy of the whole lock state, kept by
// watching the store, so a takeover needs no reload.
//
//   load:    EtcdStore::ScanWithRevision -> records at revision R,
//            LockCore::Rebuild(records); the records are dropped
//   follow:  EtcdStore::WatchFrom(R + 1) with previous values (etcd's
//            prev_kv); the events of each revision (one leader commit = one
//            Txn = one revision) become LockCore::ApplyRecords on the same
//            core, each change's previous value taken from its event
//   takeover TakeCaughtUp(): puts the store's sync marker (every commit
//            acknowledged before is below its revision R') and waits until
//            the watch has delivered the marker, so everything up to R' has
//            been applied (not etcd's progress notifications: before 3.4.24
//            they can overtake queued events); the core's invariants are
//            checked and the core is handed to the new leader's LockServer.
//
// The replica holds the state once, in the core: the core needs a deleted
// record's old value to find it (a lock's file), and etcd sends it with the
// event. etcd omits it for a create, and for an update or delete whose
// older revision it has compacted. A put without one is a create when its
// create_revision equals its mod_revision; any other change without one
// cannot be applied (the core would not know what to take out), and the
// replica reloads in place from the store (a scan at the current revision;
// the watch goes on, events at or below that revision are skipped),
// counted in stats().reloads and logged as replica_reload.
//
// Compacted watch start: etcd drops tombstones at a compaction revision C
// but lets a watch start at C, so a watch (re)started at S just as etcd
// compacts at S would never deliver S's deletes. Each watch stream from S
// therefore checks, before its first delivery, that S - 1 is not compacted
// (EtcdWatchOptions::on_gap); if it is, or etcd cancels the watch as
// compacted, the replica reloads in place the same way (counted in
// stats().reloads) and the watch resumes after the reload's revision.
//
// Failure handling: any record change that does not fit the core
// (DataLoss), a watch that gave up, a failed
// reload, or more than kMaxReloadsInARow reloads without a revision applied
// in between marks the replica broken: TakeCaughtUp then fails and the
// caller falls back to a full recovery from the store (RecoverCore);
// HaLockServer replaces a broken replica. Correctness never depends on the
// replica, only takeover time does.
//
// ReplicaState is the pure part (no I/O): core + revision, fed with watch
// events. StandbyReplica adds the etcd scan, watch, reload and catch-up.
//
// Thread-safety: ReplicaState is not thread-safe. StandbyReplica's methods
// may be called from any thread; the watch thread applies events under
// its mutex, and reloads with the mutex released (only that thread changes
// the state; TakeCaughtUp joins it before taking the core).
#ifndef LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_
#define LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/lock_core.h"
#include "server/store/etcd_store.h"
#include "server/store/etcd_watch.h"

namespace lockwarden::replication {

// How long a takeover waits for the watch to catch up before it falls
// back to a full reload.
inline constexpr absl::Duration kDefaultCatchUpTimeout = absl::Seconds(2);
// Between looks at the watch's delivered revision while catching up.
inline constexpr absl::Duration kProgressPollInterval = absl::Milliseconds(5);
// Reloads (changes without their previous value) allowed in a row without
// a revision applied incrementally in between; one more marks the replica
// broken rather than scanning the store again and again.
inline constexpr int kMaxReloadsInARow = 3;

class ReplicaState {
 public:
  // Rebuilds the core from `records` (a consistent view at `revision`).
  // The records are not kept.
  static absl::StatusOr<ReplicaState> Load(
      core::CoreOptions options,
      const std::vector<std::pair<std::string, std::string>>& records,
      int64_t revision);

  // Applies watch events (of one or more whole revisions, in order) that
  // carry previous values. Events at or below the applied revision are
  // skipped (a resumed watch). Several events of one key in one revision
  // become one change (the first one's previous value, the last one's
  // value). Errors:
  //  - ABORTED: a change has no previous value and is not a create (etcd
  //    compacted it). The failing revision is not applied; earlier ones
  //    are (revision() says up to where). The core is intact but stale:
  //    reload it from the store.
  //  - anything else (DataLoss from the core): the core may be half
  //    updated and must be discarded.
  absl::Status Apply(const std::vector<store::WatchEvent>& events);

  int64_t revision() const { return revision_; }
  const core::LockCore& core() const { return *core_; }
  core::LockCore TakeCore() && { return *std::move(core_); }

 private:
  ReplicaState(core::LockCore core, int64_t revision)
      : core_(std::move(core)), revision_(revision) {}
  absl::Status ApplyRevision(const std::vector<store::WatchEvent>& events, size_t begin,
                             size_t end);

  std::optional<core::LockCore> core_;  // Always set; optional for moves.
  int64_t revision_ = 0;
};

struct StandbyReplicaStats {
  // Applied up to here (last state commit); 0 while reloading.
  int64_t revision = 0;
  // Every revision up to here is applied (the watch's progress; above
  // `revision` when later revisions changed keys outside the state).
  int64_t caught_up_revision = 0;
  uint64_t revisions_applied = 0;
  size_t records_loaded = 0;  // Records scanned by the last (re)load.
  // Reloads from the store because a change came without the previous
  // value it needed (etcd had compacted it), or a watch stream started at a
  // compaction revision (its deletes there may be gone).
  uint64_t reloads = 0;
  absl::Status health;  // Not OK once broken.
};

class StandbyReplica {
 public:
  // Loads the state under `store`'s prefix and starts following it.
  // `store` is not owned and must outlive the replica.
  static absl::StatusOr<std::unique_ptr<StandbyReplica>> Start(
      const store::EtcdStore* store, core::CoreOptions options);
  // Start, running `after_load(loaded_revision)` between the load and the
  // watch's start (tests commit and compact there).
  static absl::StatusOr<std::unique_ptr<StandbyReplica>> StartForTesting(
      const store::EtcdStore* store, core::CoreOptions options,
      const std::function<void(int64_t loaded_revision)>& after_load);

  ~StandbyReplica();  // Cancels the watch.
  StandbyReplica(const StandbyReplica&) = delete;
  StandbyReplica& operator=(const StandbyReplica&) = delete;

  // Waits until every commit acknowledged before the call is applied (up to
  // `timeout`), stops following, checks the core's invariants and hands it
  // over. The replica is spent afterwards. Errors: the replica broke, the
  // catch-up timed out, or the core fails its invariants (DataLoss); the
  // caller then recovers from the store instead.
  absl::StatusOr<core::LockCore> TakeCaughtUp(absl::Duration timeout = kDefaultCatchUpTimeout);

  StandbyReplicaStats stats() const;
  // Asks etcd for a progress notification (non-blocking); afterwards
  // stats().caught_up_revision reaches the revision etcd was at.
  void RequestProgress();
  // The core's Snapshot() (tests compare it with the store).
  std::map<std::string, std::string> CoreSnapshotForTesting() const;

 private:
  StandbyReplica(const store::EtcdStore* store, core::CoreOptions options)
      : store_(store), options_(std::move(options)) {}
  // Scans the store and rebuilds a core; `records` gets the key count.
  static absl::StatusOr<ReplicaState> LoadFromStore(
      const store::EtcdStore* store, const core::CoreOptions& options,
      size_t* records);
  void OnEvents(const std::vector<store::WatchEvent>& events);
  // Applies `events` to the state; true if the state must be reloaded.
  bool ApplyLocked(const std::vector<store::WatchEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Replaces the state with a fresh load from the store; false if the
  // replica is (now) broken. On the watch thread, mu_ released during the
  // scan.
  bool Reload() ABSL_LOCKS_EXCLUDED(mu_);
  void OnEnd(absl::Status why);
  // The watch's on_gap: its stream from `start` may lack deletes at
  // `start` (etcd compacted there) or etcd cancelled it as compacted.
  // Reloads; returns the revision loaded (the watch resumes after it), or
  // the broken status.
  absl::StatusOr<int64_t> OnGap(int64_t start) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a reload due to `why`; false (and broken) past
  // kMaxReloadsInARow.
  bool CountReloadLocked(const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction (watch_ set once in Start()).
  const store::EtcdStore* const store_;
  const core::CoreOptions options_;
  std::unique_ptr<store::EtcdWatch> watch_;

  mutable absl::Mutex mu_;
  std::optional<ReplicaState> state_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t revisions_applied_ ABSL_GUARDED_BY(mu_) = 0;
  size_t records_loaded_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reloads_ ABSL_GUARDED_BY(mu_) = 0;
  int reloads_in_a_row_ ABSL_GUARDED_BY(mu_) = 0;
  // TakeCaughtUp handed the core over.
  bool taken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_
