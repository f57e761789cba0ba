// Internal in-memory tables of the lock core. Not part of the public API:
// only lock_core*.cc and codec.cc use these. Owners and gateway identities
// are interned to small integer ids so a held lock costs ~48 bytes.
//
// Thread-safety: none; owned by one LockCore, used by one thread at a time.
#ifndef LOCKWARDEN_SERVER_CORE_STATE_H_
#define LOCKWARDEN_SERVER_CORE_STATE_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "server/core/interval.h"
#include "server/core/types.h"

namespace lockwarden::core::internal {

using OwnerId = uint32_t;
using GatewayId = uint32_t;

// A granted byte-range lock. Kept in its file's vector sorted by
// (start, token). The fencing token is also the lock's id.
struct LockEntry {
  uint64_t start = 0;
  uint64_t end = 0;  // Inclusive.
  uint64_t token = 0;
  int64_t granted_ms = 0;
  OwnerId owner = 0;
  GatewayId gateway = 0;
  int32_t client_state = 0;
  bool exclusive = false;
  bool unconfirmed = false;  // Granted to a waiter, Granted event not acked.
  bool monitored = true;     // False for NM_LOCK: SM_NOTIFY leaves it alone.

  Interval interval() const { return Interval{start, end}; }
};

struct WaiterEntry {
  uint64_t id = 0;  // FIFO order: ids increase along a file's queue.
  uint64_t start = 0;
  uint64_t end = 0;
  OwnerId owner = 0;
  GatewayId gateway = 0;
  int32_t client_state = 0;
  bool exclusive = false;
  bool reclaim = false;
  bool monitored = true;  // As LockEntry::monitored, carried into the grant.
  int64_t queued_ms = 0;
  std::string callback;
  std::string cookie;

  Interval interval() const { return Interval{start, end}; }
};

struct ShareEntry {
  uint64_t id = 0;
  std::string client;
  std::string oh;
  ShareMode access = ShareMode::kNone;
  ShareMode deny = ShareMode::kNone;
  GatewayId gateway = 0;
  int32_t client_state = 0;
  int64_t granted_ms = 0;
};

struct FileState {
  const std::string* name = nullptr;  // The fh: its key in the files map.
  std::vector<LockEntry> locks;      // Sorted by (start, token).
  // An upper bound of (end - start) over `locks`: a lock overlapping
  // [s, e] starts at or after s - max_span, so searches need not scan the
  // file from its first lock.
  uint64_t max_span = 0;
  uint32_t unconfirmed = 0;          // Locks with unconfirmed == true.
  std::vector<WaiterEntry> waiters;  // FIFO.
  std::vector<ShareEntry> shares;
  bool empty() const {
    return locks.empty() && waiters.empty() && shares.empty();
  }
};

struct UnconfirmedGrant {
  std::string fh;
  int64_t deadline_ms = 0;
  uint64_t event_sequence = 0;  // 0 when the event was evicted.
};

struct MonitorKey {
  std::string mon_name;
  MonitorId my_id;

  friend bool operator<(const MonitorKey& a, const MonitorKey& b) {
    return std::tie(a.mon_name, a.my_id.my_name, a.my_id.my_prog,
                    a.my_id.my_vers, a.my_id.my_proc) <
           std::tie(b.mon_name, b.my_id.my_name, b.my_id.my_prog,
                    b.my_id.my_vers, b.my_id.my_proc);
  }
};

struct MonitorEntry {
  uint64_t id = 0;
  std::string priv;
};

struct LedgerFlags {
  bool reclaimed = false;
  bool done = false;
};

struct GatewayState {
  std::string name;
  int32_t nsm_state = 1;
  int64_t grace_until_ms = 0;  // 0 = no grace.
  absl::btree_map<std::string, LedgerFlags> ledger;
  bool draining = false;  // Persisted (optional trailing field).
  absl::btree_map<MonitorKey, MonitorEntry> monitors;
  absl::btree_map<uint64_t, Event> outbox;
  size_t waiters = 0;  // Derived: waiters queued through this identity.
};

// Request dedup (lock_core_dedup.cc): a ring of dedup_entries_max slots;
// the entry with sequence s lives in slot s % size, so the ring holds the
// window of the newest `size` sequences and a new entry replaces the one
// leaving the window.
struct DedupEntry {
  uint64_t sequence = 0;  // 0: a free slot.
  size_t hash = 0;        // DedupHash(request_id), so rehashing the index
                          // need not touch the string.
  std::string request_id;
  uint8_t command_kind = 0;  // Command::index() of the original.
  // False while the entry's record still sits at another key (old d/<id>
  // layout, or a ring of another size): it is in LockCore::dedup_stale_
  // until the migration moves it to its ring key.
  bool at_slot = true;
  Reply reply;
};

struct DedupRing {
  std::vector<DedupEntry> slots;  // Grown up to the ring size on demand.
};

inline size_t DedupHash(absl::string_view request_id) {
  return absl::Hash<absl::string_view>{}(request_id);
}

// The lookup index: a set of slot numbers, hashed and compared through the
// ring (heterogeneous lookup by request id). 4 bytes per entry and no second
// copy of the id; a lookup compares the stored id, so two ids with the same
// hash never answer for each other. The ring must outlive the index and
// stay at one address (LockCore holds it in a unique_ptr).
struct DedupSlotHash {
  using is_transparent = void;
  const DedupRing* ring = nullptr;
  size_t operator()(uint32_t slot) const { return ring->slots[slot].hash; }
  size_t operator()(absl::string_view id) const { return DedupHash(id); }
};
struct DedupSlotEq {
  using is_transparent = void;
  const DedupRing* ring = nullptr;
  bool operator()(uint32_t a, uint32_t b) const { return a == b; }
  bool operator()(uint32_t a, absl::string_view id) const {
    return ring->slots[a].request_id == id;
  }
  bool operator()(absl::string_view id, uint32_t a) const {
    return ring->slots[a].request_id == id;
  }
};
using DedupIndex = absl::flat_hash_set<uint32_t, DedupSlotHash, DedupSlotEq>;

// A persisted dedup record not at the ring key of a live entry: an entry
// still to be moved, or garbage to delete (lock_core_dedup.cc).
struct StaleDedupRecord {
  std::string value;  // Verbatim, so Snapshot() equals the store.
  uint64_t sequence = 0;
};

// The durable counters (key "m/counters"). Never go backwards.
struct Counters {
  uint64_t next_token = 1;
  uint64_t next_event_sequence = 1;
  uint64_t next_id = 1;  // Waiters, shares, monitors.
  uint64_t events_dropped = 0;

  friend bool operator==(const Counters& a, const Counters& b) {
    return a.next_token == b.next_token &&
           a.next_event_sequence == b.next_event_sequence &&
           a.next_id == b.next_id && a.events_dropped == b.events_dropped;
  }
  friend bool operator!=(const Counters& a, const Counters& b) {
    return !(a == b);
  }
};

// Interns owners to ids with reference counts (locks + waiters); an id with
// no references is freed by Collect() and may be reused.
class OwnerTable {
 public:
  // Returns the id of `owner`, interning it if new; nullopt when the table
  // is at `max` owners.
  std::optional<OwnerId> Intern(const Owner& owner, size_t max);
  const Owner& Get(OwnerId id) const { return slots_[id].owner; }
  void Ref(OwnerId id) { ++slots_[id].refs; }
  void Unref(OwnerId id) { --slots_[id].refs; }
  uint32_t refs(OwnerId id) const { return slots_[id].refs; }
  // Frees `id` when nothing references it any more.
  void Collect(OwnerId id);
  std::optional<OwnerId> Find(const Owner& owner) const;
  size_t size() const { return ids_.size(); }
  bool live(OwnerId id) const { return id < slots_.size() && slots_[id].live; }

 private:
  struct Slot {
    Owner owner;
    uint32_t refs = 0;
    bool live = false;
  };
  std::vector<Slot> slots_;
  std::vector<OwnerId> free_;
  absl::flat_hash_map<Owner, OwnerId> ids_;
};

}  // namespace lockwarden::core::internal

#endif  // LOCKWARDEN_SERVER_CORE_STATE_H_
