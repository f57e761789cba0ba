// LockCore: the pure, deterministic lock state machine of lockwarden.
//
// Every mutation is a Command. Apply(command, now_ms) returns the reply, the
// Delta of persisted records to commit atomically before the reply is
// released, and the events (GRANTED callbacks, SM_NOTIFY, status callbacks)
// that the command produced. The core does no I/O, reads no clock (time is
// the `now_ms` argument), has no randomness and starts no threads: the same
// commands at the same times give the same effects, which is what makes the
// randomised model test and rebuild-from-storage possible.
//
// Rules (byte-range locks, shares, waiters, deadlock, NSM, grace, events,
// dedup) and the persisted key layout are documented in docs/core.md and at
// the top of server/core/codec.h.
//
// Example:
//   LockCore core(CoreOptions{});
//   LockCmd lock;
//   lock.request_id = "gw1/42";  // Unique across gateways: dedup key.
//   lock.gateway = "nfs-a";      // The gateway identity clients mount.
//   lock.fh = fh;
//   lock.owner = Owner{"client1", 17, "oh"};
//   lock.range = Range{0, 0};    // Whole file.
//   lock.exclusive = true;
//   Effects fx = core.Apply(lock, now_ms);
//   store.Commit(fx.delta);      // Then reply fx.reply, deliver fx.events.
//
// Thread-safety: a LockCore is not thread-safe. The service layer owns one
// and serialises every call (Apply and the const views) on one thread or
// under one mutex.
#ifndef LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_
#define LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/state.h"
#include "server/core/types.h"
#include "server/core/views.h"

namespace lockwarden::core {

// NSM state number order: RFC 1982 serial-number arithmetic on 32 bits, so
// "newer" survives wraparound while two numbers are < 2^31 apart.
bool NsmStateNewer(int32_t a, int32_t b);

class LockCore {
 public:
  explicit LockCore(CoreOptions options);

  LockCore(LockCore&&) = default;
  LockCore& operator=(LockCore&&) = default;
  LockCore(const LockCore&) = delete;
  LockCore& operator=(const LockCore&) = delete;

  // Applies one mutation at time `now_ms` (ms on the service's clock; must
  // not go backwards between calls).
  Effects Apply(const Command& cmd, int64_t now_ms);

  // NLM TEST: kGranted, kDenied with the first conflicting holder (by
  // offset), kGrace while the gateway identity is in grace, or kInvalid.
  Reply Test(const TestQuery& q, int64_t now_ms) const;

  // SM_STAT: the gateway identity's NSM state number (1 if never used:
  // the number it gets on first use).
  Reply Stat(absl::string_view gateway) const;

  // Builds a core from every persisted (key, value) pair (any order).
  // Malformed or inconsistent input is DataLoss naming the key.
  static absl::StatusOr<LockCore> Rebuild(
      CoreOptions options,
      const std::vector<std::pair<std::string, std::string>>& persisted);

  // Every record the live state would persist, keyed like the deltas. The
  // store built by applying all deltas in order equals this map.
  std::map<std::string, std::string> Snapshot() const;

  // ---- Warm standby (lock_core_replica.cc) ----
  // One persisted record as a standby watching the store sees it change.
  struct RecordChange {
    std::string key;
    std::optional<std::string> previous;  // nullopt: the key is new.
    std::optional<std::string> value;     // nullopt: the key was deleted.
  };
  // Applies the record changes of one durable commit (in any order), so a
  // standby's core stays equal to Rebuild() of the store (Snapshot()
  // equality) without reloading. DataLoss names the key of a change that
  // does not fit the state; the core is then unusable and the caller must
  // Rebuild. Run CheckInvariants() before serving from it.
  absl::Status ApplyRecords(const std::vector<RecordChange>& changes);

  // ---- Staged snapshot import (lock_core_import.cc) ----
  // A snapshot import writes the store in several commits (one cannot hold
  // a large state): the first puts the marker record (codec.h "m/import"),
  // the last deletes it; in between the store holds a mix of the old and
  // the new records. Rebuild() of such a store, and ApplyRecords() on a
  // replica that sees the marker appear, give an *interrupted* core: it
  // keeps every record verbatim (Snapshot() returns them), decodes only the
  // counters and the gateway identities (so an import can keep counters
  // and NSM state numbers from going backwards), holds no lock state, and
  // answers every Apply/Test with kInvalid. The service refuses to serve
  // from it until an import completes (the marker is deleted: the core is
  // rebuilt from the records) or is abandoned.
  const std::optional<ImportMarker>& interrupted_import() const {
    return import_marker_;
  }

  // Deterministic human-readable dump of the whole state (no interned ids).
  std::string DebugString() const;

  // Internal consistency: no two granted locks of different owners conflict,
  // an owner's confirmed locks are disjoint and merged, no waiter at a
  // grantable position, counts and indexes agree. Internal on failure.
  absl::Status CheckInvariants() const;

  // When the next Tick is due (grant expiry or grace end), or INT64_MAX.
  int64_t NextDeadlineMs() const;

  // ---- Views (admin API). Pagination is by stable id: pass the last id
  // seen as `after` (0 = from the start); at most `limit` rows.
  std::vector<LockInfo> ListLocks(const LockFilter& filter, uint64_t after,
                                  size_t limit) const;
  std::vector<WaiterInfo> ListWaiters(const LockFilter& filter,
                                      uint64_t after, size_t limit) const;
  std::vector<ShareInfo> ListShares(const LockFilter& filter, uint64_t after,
                                    size_t limit) const;
  std::vector<WaitForEdge> WaitForEdges() const;
  std::vector<ClientInfo> ListClients() const;
  std::vector<MonitorInfo> ListMonitors(absl::string_view gateway) const;
  std::vector<GatewayInfo> ListGateways() const;
  // Events of `gateway` with sequence > after_sequence, oldest first.
  std::vector<Event> PendingEvents(absl::string_view gateway,
                                   uint64_t after_sequence,
                                   size_t limit) const;
  CoreCounters Counters() const;
  const CoreOptions& options() const { return options_; }

 private:
  using OwnerId = internal::OwnerId;
  using GatewayId = internal::GatewayId;
  using FileState = internal::FileState;
  using LockEntry = internal::LockEntry;
  using WaiterEntry = internal::WaiterEntry;
  using ShareEntry = internal::ShareEntry;
  using GatewayState = internal::GatewayState;
  using EventBody = decltype(Event::body);
  static constexpr OwnerId kNoOwner = std::numeric_limits<OwnerId>::max();

  // What the bulk-release predicates look at (shares have kNoOwner).
  struct HoldingRef {
    OwnerId owner;
    const std::string* client;
    GatewayId gateway;
    int32_t client_state;
    bool monitored;  // False only for NM_LOCK locks and their waiters.
  };

  // ---- Validation and dispatch (lock_core.cc) ----
  std::optional<Reply> CheckName(absl::string_view field,
                                 absl::string_view v) const;
  std::optional<Reply> CheckOpaque(absl::string_view field,
                                   absl::string_view v) const;
  std::optional<Reply> CheckTarget(const std::string& gateway,
                                   const std::string& fh,
                                   const Owner* owner) const;
  Reply Dispatch(const Command& cmd);
  Reply DoLock(const LockCmd& c);
  Reply LockInFile(const LockCmd& c, FileState& f, OwnerId owner,
                   GatewayId gw, const Interval& iv);
  Reply Denied(const LockEntry& held) const;  // kDenied naming the holder.
  Reply DoUnlock(const UnlockCmd& c);
  Reply DoCancel(const CancelCmd& c);
  Reply DoShare(const ShareCmd& c);
  Reply DoUnshare(const UnshareCmd& c);
  Reply DoAck(const AckEventCmd& c);
  Reply DoTick();
  Reply DoForceRelease(const ForceReleaseCmd& c);

  // ---- Locks and waiters (lock_core_locks.cc) ----
  FileState& FileFor(const std::string& fh);
  static const std::string& FileName(const FileState& f) { return *f.name; }
  // The first (by offset) granted lock of another owner conflicting with
  // the request, or nullptr.
  const LockEntry* FindConflict(const FileState& f, OwnerId owner,
                                const Interval& iv, bool exclusive) const;
  // Owners whose granted locks, or whose first `earlier_waiters` waiters,
  // conflict with the request (the wait-for out-edges of a waiter).
  void BlockersOf(const FileState& f, OwnerId owner, const Interval& iv,
                  bool exclusive, size_t earlier_waiters,
                  std::vector<OwnerId>& out) const;
  bool WaiterBlocked(const FileState& f, size_t index) const;
  // Index of the first lock that can overlap or touch a range starting at
  // `at` (uses FileState::max_span).
  static size_t FirstCandidate(const FileState& f, uint64_t at);
  // Sets the owner's confirmed locks on proto's interval to proto's mode and
  // attributes (merging, splitting). Returns the token of the lock covering
  // the interval; nullopt (nothing changed) if locks_max would be passed.
  std::optional<uint64_t> SetOwnerRange(const std::string& fh, FileState& f,
                                        const LockEntry& proto,
                                        uint64_t reuse_token,
                                        bool enforce_limit);
  // Unlocks iv for the owner (splitting); returns the locks touched.
  std::optional<uint32_t> ClearOwnerRange(const std::string& fh,
                                          FileState& f, OwnerId owner,
                                          const Interval& iv);
  void InsertLock(const std::string& fh, FileState& f, const LockEntry& l);
  void EraseLockAt(FileState& f, size_t index);
  void PushWaiter(const std::string& fh, FileState& f, WaiterEntry w);
  void EraseWaiterAt(FileState& f, size_t index);
  void EraseShareAt(FileState& f, size_t index);
  // Grants, in FIFO order, every waiter no longer blocked (fair order).
  void GrantWaiters(const std::string& fh, FileState& f);
  uint64_t ConfirmGrant(const std::string& fh, FileState& f, uint64_t token);
  void ReleaseUnconfirmed(FileState& f, uint64_t token);
  bool WouldDeadlock(OwnerId requester, const FileState& f,
                     const Interval& iv, bool exclusive) const;
  // Releases every lock, waiter and share matching pred (on one file or
  // all), re-granting waiters. Returns how many were released.
  uint32_t ReleaseWhere(const std::string* only_fh,
                        absl::FunctionRef<bool(const HoldingRef&)> pred);
  bool AnyHolding(absl::FunctionRef<bool(const HoldingRef&)> pred) const;
  void CollectFile(const std::string& fh);

  // ---- NSM, grace, events (lock_core_nsm.cc) ----
  Reply DoFreeAll(const FreeAllCmd& c);
  Reply DoMon(const MonCmd& c);
  Reply DoUnmon(const UnmonCmd& c);
  Reply DoUnmonAll(const UnmonAllCmd& c);
  Reply DoNotify(const NotifyCmd& c);
  Reply DoBump(const std::string& gateway);
  // kNotFound (unknown identity), kGrace (not in grace) or lifts grace.
  Reply DoEndGrace(const EndGraceCmd& c);
  // kNotFound (unknown identity) or sets the drain flag (written only when
  // it changes).
  Reply DoDrainGateway(const DrainGatewayCmd& c);
  std::optional<GatewayId> GatewayFor(const std::string& name);
  // The named identity, or nullptr with `r` set to NOT_FOUND (admin
  // commands on an identity never create it).
  GatewayState* KnownGateway(const std::string& name, Reply& r);
  bool InGrace(const GatewayState& g) const;
  // Grace bookkeeping for a request through `gid`; true = refuse (kGrace).
  bool GraceRefuses(GatewayId gid, const std::string& client, bool reclaim);
  void MaybeLiftGrace(GatewayState& g);
  void MarkLedgerDone(const std::string& client);
  // Records a newer NSM state number and/or a newly seen source address
  // (empty = none) for `client`; writes the record only on a change.
  void RecordClientState(const std::string& client, int32_t state,
                         absl::string_view address = {});
  uint64_t EmitEvent(GatewayId gid, EventBody body);
  void DropEvent(GatewayState& g, uint64_t sequence);

  // ---- Persistence (lock_core_persist.cc, lock_core_rebuild.cc) ----
  std::string CountersValue() const;
  std::string LockValue(const std::string& fh, const LockEntry& l) const;
  std::string WaiterValue(const std::string& fh, const WaiterEntry& w) const;
  std::string ShareValue(const std::string& fh, const ShareEntry& s) const;
  std::string ClientValue(const std::string& name) const;
  std::string GatewayValue(const GatewayState& g) const;
  std::string MonitorValue(const GatewayState& g,
                           const internal::MonitorKey& k,
                           const internal::MonitorEntry& e) const;
  std::string EventValue(const Event& e) const;
  std::string DedupValue(const internal::DedupEntry& d) const;
  void Put(std::string key, std::string value);
  void Delete(std::string key);
  void PutCounters();
  void PutLock(const std::string& fh, const LockEntry& l);
  void DeleteLock(uint64_t token);
  void PutWaiter(const std::string& fh, const WaiterEntry& w);
  void DeleteWaiter(uint64_t id);
  void PutShare(const std::string& fh, const ShareEntry& s);
  void DeleteShare(uint64_t id);
  void PutClient(const std::string& name);
  void PutGateway(const GatewayState& g);
  void PutMonitor(const GatewayState& g, const internal::MonitorKey& k,
                  const internal::MonitorEntry& e);
  void DeleteMonitor(uint64_t id);
  void PutEvent(const Event& e);
  void DeleteEvent(uint64_t sequence);

  // ---- Request dedup (lock_core_dedup.cc) ----
  // The slots of the dedup ring: dedup_entries_max, capped at the key's
  // 8 hex digits.
  uint64_t DedupRingSize() const;
  const internal::DedupEntry* FindRemembered(
      absl::string_view request_id) const;
  void RememberReply(const std::string& request_id, uint8_t kind,
                     const Reply& reply);
  // Puts a new entry into its slot (evicting the one there) without a
  // delta: Rebuild and ApplyRecords.
  internal::DedupEntry& PlaceDedupEntry(uint64_t slot, internal::DedupEntry e);
  void EvictDedupSlot(uint64_t slot);
  // Moves or deletes up to kDedupMigrationRecordsPerApply stale records
  // (dedup_stale_), in the delta of the Apply in progress.
  void MigrateDedupRecords();
  // Rebuild: sorts the decoded records into the ring and dedup_stale_.
  absl::Status FinishDedupRebuild();
  // ApplyRecords of one d/ record (value nullopt: deleted).
  absl::Status ApplyDedupRecord(const std::string& key,
                                const std::optional<std::string>& value);
  absl::Status CheckDedup() const;
  absl::Status RebuildRecord(const std::string& key, const std::string& value);
  // An interrupted-import core over `records` (which hold the marker).
  static absl::StatusOr<LockCore> FromInterruptedImport(
      CoreOptions options, std::map<std::string, std::string> records);
  // ApplyRecords for a commit that writes the marker, or any commit while
  // interrupted: applies it to the verbatim records and rebuilds. nullopt
  // for an ordinary commit.
  std::optional<absl::Status> ApplyImportRecords(
      const std::vector<RecordChange>& changes);
  absl::Status FinishRebuild();

  // ---- Checks (lock_core_check.cc) ----
  absl::Status CheckFile(const std::string& fh, const FileState& f,
                         absl::flat_hash_map<OwnerId, uint32_t>& refs,
                         size_t& unconfirmed) const;

  uint64_t NewToken() { return counters_.next_token++; }
  uint64_t NewId() { return counters_.next_id++; }

  CoreOptions options_;
  internal::Counters counters_;
  absl::node_hash_map<std::string, FileState> files_;
  internal::OwnerTable owners_;
  std::vector<GatewayState> gateways_;
  absl::flat_hash_map<std::string, GatewayId> gateway_ids_;
  absl::flat_hash_map<std::string, int32_t> client_states_;
  // Last-seen source addresses of clients that have a client_states_
  // record (same bound), most recent first; persisted in the same record.
  absl::flat_hash_map<std::string, std::vector<std::string>> client_addresses_;
  absl::flat_hash_map<uint64_t, internal::UnconfirmedGrant> unconfirmed_;
  absl::btree_set<std::pair<int64_t, uint64_t>> grant_deadlines_;
  // Request dedup: the ring (its address is stable: the index hashes
  // through it), the index by request id, the next sequence (max persisted
  // sequence + 1: derived, so remembering a reply writes no counters), and
  // the persisted d/ records that are not at the ring key of a live entry.
  std::unique_ptr<internal::DedupRing> dedup_ring_;
  internal::DedupIndex dedup_index_;
  uint64_t dedup_next_sequence_ = 1;
  std::map<std::string, internal::StaleDedupRecord> dedup_stale_;
  // Rebuild only: the decoded d/ records, sorted out by FinishDedupRebuild.
  std::vector<std::pair<std::string, std::string>> rebuild_dedup_;
  // Whether m/counters is in the store: the first delta writes it even when
  // no counter moved, so a store is never without it.
  bool counters_persisted_ = false;
  absl::flat_hash_map<uint64_t, std::string> shares_by_id_;   // id -> fh.
  absl::flat_hash_set<const FileState*> waiting_files_;  // Have waiters.
  // Owner -> its waiters (file, waiter id): the out-edges of the wait-for
  // graph, so deadlock search visits only the owners it reaches.
  absl::flat_hash_map<OwnerId,
                      std::vector<std::pair<const FileState*, uint64_t>>>
      waits_by_owner_;
  size_t lock_count_ = 0;
  size_t waiter_count_ = 0;
  size_t monitor_count_ = 0;
  size_t event_count_ = 0;

  // Set only in an interrupted-import core; then import_records_ holds
  // every persisted record (marker included) and the state above is empty
  // but for counters_ and gateways_.
  std::optional<ImportMarker> import_marker_;
  std::map<std::string, std::string> import_records_;

  // Scratch of the Apply in progress.
  int64_t now_ms_ = 0;
  Effects* fx_ = nullptr;
};

}  // namespace lockwarden::core

#endif  // LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_
