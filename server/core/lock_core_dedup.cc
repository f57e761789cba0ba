// LockCore request dedup: the ring of remembered replies, its persisted
// records (codec.h: d/<ring>/<slot>), and how records of another layout
// are moved into the ring.
//
// The ring. Every remembered reply gets the next dedup sequence s and lives
// in slot s % N (N = dedup_entries_max), persisted under d/<N>/<s % N>. The
// table is the window of the newest N sequences: a new entry overwrites the
// slot of the one leaving the window, so remembering is one put and no
// delete. The sequence is not a counter of its own: it is the highest
// persisted sequence + 1 (the newest entry is never deleted), so a mutation
// that only remembers its reply does not rewrite m/counters either.
//
// Other layouts. Rebuild accepts d/ records of any ring size and of the
// layout before the ring (d/<id>, FIFO, sequence = id) and gives the same
// table whatever wrote them: the newest record per request id among the
// window of the newest N sequences. Records of that table not at their ring
// key, and every other record (outside the window, an older duplicate), are
// kept verbatim in dedup_stale_ (so Snapshot() equals the store) and
// migrated a few per Apply, in the delta of a mutation that commits anyway:
// an entry's move is a put of its ring key and a delete of its old key in
// one delta, garbage is one delete. Why not all at once: the store refuses
// a delta bigger than one etcd Txn (128 operations by default) and a table
// holds up to 100,000 records; why not a delta at Rebuild for the caller to
// commit: it would have to be split into several commits before serving,
// and the service would need a second path. Spread over later commits,
// every intermediate store is one a Rebuild reads correctly:
//  - moves are atomic, so a record is never lost or duplicated by a crash;
//  - a write into the current ring never overwrites a record still to be
//    moved: the ring size is part of the key, so the only record that can
//    sit at a current ring key is one of the current ring with the same
//    residue, i.e. outside the window (garbage) or the entry itself;
//  - the window is computed from the records present, which always include
//    the newest entry, so it is the same before and after any prefix of
//    the migration.
// A crash between commits therefore loses no reply within the window.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

// Stale records moved or deleted per Apply: at most twice as many
// operations in its delta (a move is a put and a delete), well inside one
// etcd Txn next to the other requests of a group commit.
constexpr size_t kDedupMigrationRecordsPerApply = 8;

absl::Status Corrupt(absl::string_view key, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("persisted record '", absl::CEscape(key), "': ", why));
}

internal::DedupEntry EntryOf(codec::DedupRecord rec) {
  internal::DedupEntry e;
  e.sequence = rec.sequence;
  e.hash = internal::DedupHash(rec.request_id);
  e.request_id = std::move(rec.request_id);
  e.command_kind = rec.command_kind;
  e.reply = std::move(rec.reply);
  return e;
}

}  // namespace

uint64_t LockCore::DedupRingSize() const {
  return std::min<uint64_t>(options_.dedup_entries_max, codec::kDedupRingMax);
}

std::string LockCore::DedupValue(const internal::DedupEntry& d) const {
  codec::Writer w;
  w.Bytes(d.request_id);
  w.U8(d.command_kind);
  codec::WriteReply(w, d.reply);
  w.U64(d.sequence);
  return std::move(w).Finish();
}

const internal::DedupEntry* LockCore::FindRemembered(
    absl::string_view request_id) const {
  auto it = dedup_index_.find(request_id);
  if (it == dedup_index_.end()) return nullptr;
  return &dedup_ring_->slots[*it];
}

void LockCore::EvictDedupSlot(uint64_t slot) {
  std::vector<internal::DedupEntry>& slots = dedup_ring_->slots;
  if (slot >= slots.size() || slots[slot].sequence == 0) return;
  // Erase from the index first: it hashes through the entry.
  dedup_index_.erase(static_cast<uint32_t>(slot));
  slots[slot] = internal::DedupEntry{};
}

internal::DedupEntry& LockCore::PlaceDedupEntry(uint64_t slot,
                                                internal::DedupEntry e) {
  std::vector<internal::DedupEntry>& slots = dedup_ring_->slots;
  if (slot >= slots.size()) slots.resize(slot + 1);
  // The occupant leaves the index (which hashes through it) before the
  // move-assignment below replaces it.
  if (slots[slot].sequence != 0) {
    dedup_index_.erase(static_cast<uint32_t>(slot));
  }
  dedup_next_sequence_ = std::max(dedup_next_sequence_, e.sequence + 1);
  slots[slot] = std::move(e);
  dedup_index_.insert(static_cast<uint32_t>(slot));
  return slots[slot];
}

void LockCore::RememberReply(const std::string& request_id, uint8_t kind,
                             const Reply& reply) {
  const uint64_t ring = DedupRingSize();
  if (ring == 0) return;
  internal::DedupEntry e;
  e.sequence = dedup_next_sequence_;
  e.hash = internal::DedupHash(request_id);
  e.request_id = request_id;
  e.command_kind = kind;
  e.reply = reply;
  const uint64_t slot = e.sequence % ring;
  // The entry leaving the window goes; if its record was still at an old
  // key, that record is garbage now and the migration deletes it.
  const internal::DedupEntry& placed = PlaceDedupEntry(slot, std::move(e));
  std::string key = codec::DedupRingKey(ring, slot);
  if (!dedup_stale_.empty()) dedup_stale_.erase(key);  // Overwritten.
  Put(std::move(key), DedupValue(placed));
}

void LockCore::MigrateDedupRecords() {
  const uint64_t ring = DedupRingSize();
  std::vector<std::string> keys;
  for (auto it = dedup_stale_.begin();
       it != dedup_stale_.end() && keys.size() < kDedupMigrationRecordsPerApply;
       ++it) {
    keys.push_back(it->first);
  }
  for (std::string& key : keys) {
    auto it = dedup_stale_.find(key);
    if (it == dedup_stale_.end()) continue;  // Overwritten by a move below.
    const uint64_t sequence = it->second.sequence;
    dedup_stale_.erase(it);
    Delete(key);
    if (ring == 0) continue;
    const uint64_t slot = sequence % ring;
    if (slot >= dedup_ring_->slots.size()) continue;
    internal::DedupEntry& e = dedup_ring_->slots[slot];
    if (e.sequence != sequence || e.at_slot) continue;  // Garbage.
    // The live entry's record: move it (same delta as the delete).
    e.at_slot = true;
    std::string ring_key = codec::DedupRingKey(ring, slot);
    dedup_stale_.erase(ring_key);
    Put(std::move(ring_key), DedupValue(e));
  }
}

absl::Status LockCore::FinishDedupRebuild() {
  struct Decoded {
    const std::pair<std::string, std::string>* kv;
    codec::DedupRecord rec;
  };
  std::vector<Decoded> records;
  records.reserve(rebuild_dedup_.size());
  for (const auto& kv : rebuild_dedup_) {
    Decoded d{&kv, {}};
    if (!codec::DecodeDedupRecord(kv.first, kv.second, &d.rec) ||
        d.rec.command_kind >= std::variant_size_v<Command>) {
      return Corrupt(kv.first, "malformed dedup entry");
    }
    uint64_t id = 0;
    if (codec::ParseIdKey(kv.first, &id) && id >= counters_.next_id) {
      return Corrupt(kv.first, "id past counter");  // Old layout: an id.
    }
    records.push_back(std::move(d));
  }
  // Newest first: the first record of a request id in the window wins.
  std::sort(records.begin(), records.end(),
            [](const Decoded& a, const Decoded& b) {
              return a.rec.sequence > b.rec.sequence;
            });
  const uint64_t ring = DedupRingSize();
  const uint64_t newest = records.empty() ? 0 : records.front().rec.sequence;
  const uint64_t window_start = newest > ring ? newest - ring + 1 : 1;
  for (size_t i = 0; i < records.size(); ++i) {
    Decoded& d = records[i];
    const std::string& key = d.kv->first;
    if (i > 0 && records[i - 1].rec.sequence == d.rec.sequence) {
      return Corrupt(key, "duplicate dedup sequence");
    }
    const bool live = ring > 0 && d.rec.sequence >= window_start &&
                      FindRemembered(d.rec.request_id) == nullptr;
    if (!live) {
      dedup_stale_[key] = {d.kv->second, d.rec.sequence};
      continue;
    }
    const uint64_t slot = d.rec.sequence % ring;
    internal::DedupEntry& e = PlaceDedupEntry(slot, EntryOf(std::move(d.rec)));
    // At its ring key and written as this core writes it: nothing to do.
    e.at_slot =
        key == codec::DedupRingKey(ring, slot) && d.kv->second == DedupValue(e);
    if (!e.at_slot) dedup_stale_[key] = {d.kv->second, e.sequence};
  }
  // With no ring, nothing is live and the garbage decides nothing.
  dedup_next_sequence_ = ring > 0 ? newest + 1 : 1;
  rebuild_dedup_.clear();
  rebuild_dedup_.shrink_to_fit();
  return absl::OkStatus();
}

absl::Status LockCore::ApplyDedupRecord(
    const std::string& key, const std::optional<std::string>& value) {
  const uint64_t ring = DedupRingSize();
  uint64_t key_ring = 0, slot = 0;
  const bool ring_key = codec::ParseDedupRingKey(key, &key_ring, &slot);
  if (!value.has_value()) {
    if (dedup_stale_.erase(key) != 0) return absl::OkStatus();
    // A leader never deletes a live entry's record; follow it anyway.
    if (ring_key && key_ring == ring && slot < dedup_ring_->slots.size() &&
        dedup_ring_->slots[slot].sequence != 0 &&
        dedup_ring_->slots[slot].at_slot) {
      EvictDedupSlot(slot);
      return absl::OkStatus();
    }
    return absl::DataLossError(absl::StrCat(
        "replicated record '", absl::CEscape(key), "': no such dedup record"));
  }
  codec::DedupRecord rec;
  if (!codec::DecodeDedupRecord(key, *value, &rec) ||
      rec.command_kind >= std::variant_size_v<Command>) {
    return absl::DataLossError(absl::StrCat(
        "replicated record '", absl::CEscape(key), "': malformed dedup entry"));
  }
  // A leader writes only ring keys of its ring, with the next sequence or a
  // move; anything else means its dedup_entries_max differs from ours.
  if (!ring_key || key_ring != ring) {
    return absl::DataLossError(absl::StrCat(
        "replicated record '", absl::CEscape(key),
        "': not a key of this replica's dedup ring (dedup_entries_max ", ring,
        ", as on the leader?)"));
  }
  dedup_stale_.erase(key);  // Overwritten (garbage, or nothing).
  if (slot < dedup_ring_->slots.size()) {
    internal::DedupEntry& e = dedup_ring_->slots[slot];
    if (e.sequence == rec.sequence && !e.at_slot) {
      e.at_slot = true;  // A move: the same delta deleted its old key.
      return absl::OkStatus();
    }
  }
  if (rec.sequence < dedup_next_sequence_) {
    return absl::DataLossError(
        absl::StrCat("replicated record '", absl::CEscape(key),
                     "': dedup sequence ", rec.sequence, " is not new"));
  }
  if (FindRemembered(rec.request_id) != nullptr) {
    return absl::DataLossError(
        absl::StrCat("replicated record '", absl::CEscape(key),
                     "': request id already remembered"));
  }
  PlaceDedupEntry(slot, EntryOf(std::move(rec)));
  return absl::OkStatus();
}

absl::Status LockCore::CheckDedup() const {
  const uint64_t ring = DedupRingSize();
  const std::vector<internal::DedupEntry>& slots = dedup_ring_->slots;
  size_t live = 0;
  for (size_t slot = 0; slot < slots.size(); ++slot) {
    const internal::DedupEntry& e = slots[slot];
    if (e.sequence == 0) continue;
    ++live;
    if (ring == 0 || e.sequence % ring != slot ||
        e.sequence >= dedup_next_sequence_ ||
        e.sequence + ring < dedup_next_sequence_) {
      return absl::InternalError("invariant broken: dedup ring slot");
    }
    const internal::DedupEntry* found = FindRemembered(e.request_id);
    if (found != &e || e.hash != internal::DedupHash(e.request_id)) {
      return absl::InternalError("invariant broken: dedup index");
    }
    if (!e.at_slot && dedup_stale_.empty()) {
      return absl::InternalError("invariant broken: dedup entry not stored");
    }
  }
  if (live != dedup_index_.size() || slots.size() > ring) {
    return absl::InternalError("invariant broken: dedup index size");
  }
  return absl::OkStatus();
}

}  // namespace lockwarden::core
