#include "gateway/rpc/duplicate_request_cache.h"

#include <utility>

#include "absl/hash/hash.h"

namespace lockwarden::gateway {

DrcKey DrcKey::Make(std::string client, uint32_t xid, uint32_t prog,
                    uint32_t vers, uint32_t proc, absl::string_view args) {
  DrcKey k;
  k.client = std::move(client);
  k.xid = xid;
  k.prog = prog;
  k.vers = vers;
  k.proc = proc;
  // In-process only: absl::Hash is seeded per process, which is fine for a
  // cache that does not outlive it.
  k.args_digest = absl::HashOf(args, args.size());
  return k;
}

DuplicateRequestCache::DuplicateRequestCache(DrcOptions options)
    : options_(options) {}

void DuplicateRequestCache::EraseLocked(
    absl::flat_hash_map<DrcKey, Entry>::iterator it) {
  stats_.reply_bytes -= it->second.reply.size();
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void DuplicateRequestCache::EvictLocked(absl::Time now) {
  // Expired entries sit at the LRU tail more often than not; drop those
  // first, then enforce the bounds. Each step removes one entry, so the
  // loop runs at most entries_.size() times.
  while (!lru_.empty()) {
    const bool expired = now - lru_.back().inserted > options_.ttl;
    const bool over = entries_.size() > options_.max_entries ||
                      stats_.reply_bytes > options_.max_reply_bytes;
    if (!expired && !over) break;
    if (expired) {
      ++stats_.expirations;
    } else {
      ++stats_.evictions;
    }
    EraseLocked(entries_.find(lru_.back().key));
  }
}

absl::flat_hash_map<DrcKey, DuplicateRequestCache::Entry>::iterator
DuplicateRequestCache::InsertLocked(const DrcKey& key, absl::Time now) {
  lru_.push_front(LruNode{key, now});
  Entry e;
  e.inserted = now;
  e.lru = lru_.begin();
  return entries_.emplace(key, std::move(e)).first;
}

DuplicateRequestCache::Lookup DuplicateRequestCache::Begin(const DrcKey& key,
                                                           absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && now - it->second.inserted > options_.ttl) {
    ++stats_.expirations;
    EraseLocked(it);
    it = entries_.end();
  }
  if (it != entries_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    if (it->second.completed) {
      ++stats_.hits;
      return Lookup{State::kCompleted, it->second.reply};
    }
    ++stats_.in_progress;
    return Lookup{State::kInProgress, {}};
  }
  ++stats_.misses;
  InsertLocked(key, now);
  EvictLocked(now);
  return Lookup{State::kNew, {}};
}

void DuplicateRequestCache::Complete(const DrcKey& key, std::string reply,
                                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (reply.size() > options_.max_reply_bytes) {
    if (it != entries_.end()) EraseLocked(it);
    return;
  }
  if (it == entries_.end()) {
    // Evicted while executing: cache the reply anyway, it is the freshest.
    it = InsertLocked(key, now);
  }
  stats_.reply_bytes -= it->second.reply.size();
  it->second.completed = true;
  it->second.reply = std::move(reply);
  stats_.reply_bytes += it->second.reply.size();
  EvictLocked(now);
}

void DuplicateRequestCache::Abandon(const DrcKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && !it->second.completed) EraseLocked(it);
}

DrcStats DuplicateRequestCache::stats() const {
  absl::MutexLock lock(&mu_);
  DrcStats s = stats_;
  s.entries = entries_.size();
  return s;
}

}  // namespace lockwarden::gateway
