// StandbyReplica: a standby's warm copy of the whole lock state, kept by
// watching the store, so a takeover needs no reload.
//
//   load:    EtcdStore::ScanWithRevision -> records at revision R,
//            LockCore::Rebuild(records)
//   follow:  EtcdStore::WatchFrom(R + 1); the events of each revision (one
//            leader commit = one Txn = one revision) become
//            LockCore::ApplyRecords on the same core
//   takeover TakeCaughtUp(): a linearizable read gives the revision R' the
//            store is at; the watch is asked for progress until everything
//            up to R' has been applied; the core's invariants are checked
//            and the core is handed to the new leader's LockServer.
//
// The replica keeps the persisted records too (a map key -> value): the
// core needs a deleted record's old value to find it (a lock's file), and
// the map is what Rebuild would be fed, so tests compare the two.
//
// Failure handling: any record change that does not fit the core
// (DataLoss), a compacted revision or a watch that gave up marks the
// replica broken: TakeCaughtUp then fails and the caller falls back to a
// full recovery from the store (RecoverCore); correctness never depends
// on the replica, only takeover time does.
//
// ReplicaState is the pure part (no I/O): records + core + revision, fed
// with watch events. StandbyReplica adds the etcd scan, watch and catch-up.
//
// Thread-safety: ReplicaState is not thread-safe. StandbyReplica's methods
// may be called from any thread; the watch thread applies events under
// its mutex.
#ifndef LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_
#define LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
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
// Between progress requests while catching up.
inline constexpr absl::Duration kProgressPollInterval = absl::Milliseconds(5);

class ReplicaState {
 public:
  // Rebuilds the core from `records` (a consistent view at `revision`).
  static absl::StatusOr<ReplicaState> Load(core::CoreOptions options,
                                           std::map<std::string, std::string> records,
                                           int64_t revision);

  // Applies watch events (of one or more whole revisions, in order).
  // Events at or below the applied revision are skipped (a resumed watch).
  absl::Status Apply(const std::vector<store::WatchEvent>& events);

  int64_t revision() const { return revision_; }
  const core::LockCore& core() const { return *core_; }
  core::LockCore TakeCore() && { return *std::move(core_); }
  const std::map<std::string, std::string>& records() const { return records_; }

 private:
  ReplicaState(core::LockCore core, std::map<std::string, std::string> records,
               int64_t revision)
      : core_(std::move(core)), records_(std::move(records)), revision_(revision) {}
  absl::Status ApplyRevision(const std::vector<store::WatchEvent>& events, size_t begin,
                             size_t end);

  std::optional<core::LockCore> core_;  // Always set; optional for moves.
  std::map<std::string, std::string> records_;
  int64_t revision_ = 0;
};

struct StandbyReplicaStats {
  int64_t revision = 0;  // Applied up to here (last state commit).
  // Every revision up to here is applied (the watch's progress; above
  // `revision` when later revisions changed keys outside the state).
  int64_t caught_up_revision = 0;
  uint64_t revisions_applied = 0;
  size_t records = 0;
  absl::Status health;         // Not OK once broken.
};

class StandbyReplica {
 public:
  // Loads the state under `store`'s prefix and starts following it.
  // `store` is not owned and must outlive the replica.
  static absl::StatusOr<std::unique_ptr<StandbyReplica>> Start(
      const store::EtcdStore* store, core::CoreOptions options);

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
  // The persisted records and the core's Snapshot() (tests compare them).
  std::map<std::string, std::string> RecordsForTesting() const;
  std::map<std::string, std::string> CoreSnapshotForTesting() const;

 private:
  explicit StandbyReplica(const store::EtcdStore* store) : store_(store) {}
  void OnEvents(const std::vector<store::WatchEvent>& events);
  void OnEnd(absl::Status why);

  const store::EtcdStore* const store_;
  std::unique_ptr<store::EtcdWatch> watch_;  // Set once in Start().

  mutable absl::Mutex mu_;
  std::optional<ReplicaState> state_ ABSL_GUARDED_BY(mu_);
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  uint64_t revisions_applied_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_STANDBY_REPLICA_H_
