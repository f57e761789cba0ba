// Duplicate request cache (DRC) for RPC calls.
//
// UDP clients retransmit a call whose reply they did not see; NLM LOCK,
// UNLOCK and CANCEL are not idempotent (a retransmitted UNLOCK after a new
// LOCK by the same owner would drop it), so a retransmission must be
// answered with the reply already sent rather than executed again.
//
// Key: (client address, xid, prog, vers, proc, 64-bit digest of the
// argument bytes). The digest guards against xid reuse by a client that
// restarted with the same xid sequence: same xid, different arguments is a
// new call.
//
// States:
//   - in progress: the call is executing. A retransmission is absorbed
//     (dropped without reply): the original execution will answer, and the
//     client retransmits again if that answer is lost.
//   - completed: the reply bytes are kept (an empty reply means the
//     procedure sends none, e.g. the NLM _MSG procedures) and resent to a
//     retransmission without executing the call again.
//
// Bounds: at most `max_entries` entries and `max_reply_bytes` bytes of
// cached replies; the least recently used entries are evicted first.
// Entries older than `ttl` (measured from insertion) are dropped. Time is
// passed in by the caller, so tests control it.
//
// Thread safety: all methods are thread-safe (one internal mutex, never
// held while calling out).
#ifndef LOCKWARDEN_GATEWAY_RPC_DUPLICATE_REQUEST_CACHE_H_
#define LOCKWARDEN_GATEWAY_RPC_DUPLICATE_REQUEST_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lockwarden::gateway {

struct DrcKey {
  std::string client;  // normalised client IP address (see transport.h)
  uint32_t xid = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  uint64_t args_digest = 0;

  // Builds a key, hashing the argument bytes.
  static DrcKey Make(std::string client, uint32_t xid, uint32_t prog,
                     uint32_t vers, uint32_t proc, absl::string_view args);

  friend bool operator==(const DrcKey& a, const DrcKey& b) {
    return std::tie(a.client, a.xid, a.prog, a.vers, a.proc, a.args_digest) ==
           std::tie(b.client, b.xid, b.prog, b.vers, b.proc, b.args_digest);
  }
  template <typename H>
  friend H AbslHashValue(H h, const DrcKey& k) {
    return H::combine(std::move(h), k.client, k.xid, k.prog, k.vers, k.proc,
                      k.args_digest);
  }
};

struct DrcOptions {
  size_t max_entries = 8192;
  size_t max_reply_bytes = 8 * 1024 * 1024;
  // Longer than any client's retransmission window (Linux lockd gives up on
  // a UDP call after about 60 s).
  absl::Duration ttl = absl::Seconds(120);
};

struct DrcStats {
  uint64_t hits = 0;         // completed replies resent
  uint64_t in_progress = 0;  // retransmissions absorbed while executing
  uint64_t misses = 0;       // new calls
  uint64_t evictions = 0;    // LRU evictions due to the bounds
  uint64_t expirations = 0;  // entries dropped after their TTL
  size_t entries = 0;
  size_t reply_bytes = 0;
};

class DuplicateRequestCache {
 public:
  explicit DuplicateRequestCache(DrcOptions options = {});
  DuplicateRequestCache(const DuplicateRequestCache&) = delete;
  DuplicateRequestCache& operator=(const DuplicateRequestCache&) = delete;

  enum class State { kNew, kInProgress, kCompleted };
  struct Lookup {
    State state = State::kNew;
    std::string reply;  // for kCompleted; empty = "no reply"
  };

  // Looks the call up. A miss inserts an in-progress entry and returns kNew:
  // the caller executes the call and must then Complete or Abandon the key.
  Lookup Begin(const DrcKey& key, absl::Time now);

  // Records the reply of a call started with Begin (empty = no reply).
  // A reply larger than max_reply_bytes is not cached (the entry is
  // dropped, so a retransmission executes again).
  void Complete(const DrcKey& key, std::string reply, absl::Time now);

  // Forgets a call that produced no answer (e.g. the handler was dropped),
  // so that a retransmission is executed again.
  void Abandon(const DrcKey& key);

  DrcStats stats() const;

 private:
  // The LRU list carries the insertion time too, so the eviction check
  // needs no hash lookup unless it evicts.
  struct LruNode {
    DrcKey key;
    absl::Time inserted;
  };
  struct Entry {
    bool completed = false;
    std::string reply;
    absl::Time inserted;
    std::list<LruNode>::iterator lru;  // position in lru_
  };

  // Inserts a new in-progress entry at the LRU front.
  absl::flat_hash_map<DrcKey, Entry>::iterator InsertLocked(const DrcKey& key,
                                                            absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(absl::flat_hash_map<DrcKey, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DrcOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<DrcKey, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<LruNode> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  DrcStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_DUPLICATE_REQUEST_CACHE_H_
