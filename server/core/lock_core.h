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
//   LockCmd lock{.request_id = "gw1/42", .gateway = "nfs-a", .fh = fh,
//                .owner = {"client1", 17, "oh"}, .range = {0, 0},
//                .exclusive = true};
//   Effects fx = core.Apply(lock, now_ms);
//   store.Commit(fx.delta);   // Then reply fx.reply, deliver fx.events.
//
// Thread-safety: a LockCore is not thread-safe. The service layer owns one
// and serialises every call (Apply and the const views) on one thread or
// under one mutex.
#ifndef LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_
#define LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/state.h"
#include "server/core/types.h"
#include "server/core/views.h"

namespace lockwarden::core {

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
  Reply Stat(std::string_view gateway) const;

  // Builds a core from every persisted (key, value) pair (any order).
  // Malformed or inconsistent input is DataLoss naming the key.
  static absl::StatusOr<LockCore> Rebuild(
      CoreOptions options,
      const std::vector<std::pair<std::string, std::string>>& persisted);

  // Every record the live state would persist, keyed like the deltas. The
  // store built by applying all deltas in order equals this map.
  std::map<std::string, std::string> Snapshot() const;

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
  std::vector<MonitorInfo> ListMonitors(std::string_view gateway) const;
  std::vector<GatewayInfo> ListGateways() const;
  // Events of `gateway` with sequence > after_sequence, oldest first.
  std::vector<Event> PendingEvents(std::string_view gateway,
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
  friend class CoreCodecAccess;

  // ---- Dispatch (lock_core.cc) ----
  Reply Dispatch(const Command& cmd);
  Reply DoLock(const LockCmd& c);
  Reply DoUnlock(const UnlockCmd& c);
  Reply DoCancel(const CancelCmd& c);
  Reply DoShare(const ShareCmd& c);
  Reply DoUnshare(const UnshareCmd& c);
  Reply DoAck(const AckEventCmd& c);
  Reply DoTick();
  Reply DoForceRelease(const ForceReleaseCmd& c);
  // ---- NSM (lock_core_nsm.cc) ----
  Reply DoFreeAll(const FreeAllCmd& c);
  Reply DoMon(const MonCmd& c);
  Reply DoUnmon(const UnmonCmd& c);
  Reply DoUnmonAll(const UnmonAllCmd& c);
  Reply DoNotify(const NotifyCmd& c);
  Reply DoBump(const std::string& gateway);

  // ---- Locks (lock_core_locks.cc) ----
  // Conflicting granted lock of another owner, or nullptr.
  const LockEntry* FindConflict(const FileState& f, OwnerId owner,
                                const Interval& iv, bool exclusive) const;
  bool WaiterMayOvertake(const FileState& f, size_t index) const;
  // Sets the owner's confirmed locks on `iv` to the mode (merging, splitting).
  // Returns the token covering iv, or nullopt if locks_max would be passed.
  std::optional<uint64_t> SetOwnerRange(const std::string& fh, FileState& f,
                                        const LockEntry& proto,
                                        uint64_t reuse_token);
  std::optional<uint32_t> ClearOwnerRange(const std::string& fh,
                                          FileState& f, OwnerId owner,
                                          const Interval& iv);
  void InsertLock(const std::string& fh, FileState& f, const LockEntry& l);
  void EraseLockAt(FileState& f, size_t index);
  void EraseWaiterAt(FileState& f, size_t index);
  void GrantWaiters(const std::string& fh, FileState& f);
  bool WouldDeadlock(OwnerId requester, const FileState& f,
                     const Interval& iv, bool exclusive) const;
  void BlockersOf(const FileState& f, OwnerId owner, const Interval& iv,
                  bool exclusive, size_t earlier_waiters,
                  std::vector<OwnerId>& out) const;
  // Releases every lock/share/waiter for which pred(owner, gateway,
  // client_state, share client) holds; re-grants waiters. Returns count.
  template <typename LockPred, typename SharePred>
  uint32_t ReleaseWhere(LockPred lock_pred, SharePred share_pred);
  void ReleaseUnconfirmed(uint64_t token, bool delete_event);
  void CollectFile(const std::string& fh);

  // ---- NSM/grace helpers (lock_core_nsm.cc) ----
  std::optional<GatewayId> GatewayFor(const std::string& name);
  bool InGrace(const GatewayState& g) const;
  // Grace bookkeeping for a request through `g` by `client`; returns true
  // when the request must be refused with kGrace.
  bool GraceRefuses(GatewayId g, const std::string& client, bool reclaim,
                    bool is_lock_or_share);
  void MaybeLiftGrace(GatewayState& g);
  void RecordClientState(const std::string& client, int32_t state);
  uint64_t EmitEvent(GatewayId g, decltype(Event::body) body);
  void DropEvent(GatewayState& g, uint64_t sequence);

  // ---- Persistence (lock_core_persist.cc) ----
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
  void RememberReply(const std::string& request_id, uint8_t kind,
                     const Reply& reply);
  absl::Status RebuildRecord(const std::string& key, const std::string& value);
  absl::Status FinishRebuild();

  uint64_t NewToken() { return counters_.next_token++; }
  uint64_t NewId() { return counters_.next_id++; }

  CoreOptions options_;
  internal::Counters counters_;
  absl::node_hash_map<std::string, FileState> files_;
  internal::OwnerTable owners_;
  std::vector<GatewayState> gateways_;
  absl::flat_hash_map<std::string, GatewayId> gateway_ids_;
  absl::flat_hash_map<std::string, int32_t> client_states_;
  absl::flat_hash_map<uint64_t, internal::UnconfirmedGrant> unconfirmed_;
  absl::btree_set<std::pair<int64_t, uint64_t>> grant_deadlines_;
  absl::flat_hash_map<std::string, internal::DedupEntry> dedup_;
  std::deque<std::pair<uint64_t, std::string>> dedup_order_;  // FIFO.
  absl::flat_hash_map<uint64_t, std::string> shares_by_id_;   // id -> fh.
  size_t lock_count_ = 0;
  size_t waiter_count_ = 0;
  size_t monitor_count_ = 0;
  size_t event_count_ = 0;

  // Scratch of the Apply in progress.
  int64_t now_ms_ = 0;
  Effects* fx_ = nullptr;
};

}  // namespace lockwarden::core

#endif  // LOCKWARDEN_SERVER_CORE_LOCK_CORE_H_
