// LockCore::ApplyRecords: a warm standby's core follows the store record by
// record, so a takeover needs no reload (server/replication/
// standby_replica.h feeds it from an etcd watch).
//
// One call gets every record change of one durable commit. Old records
// (deletes, and the old half of updates) are taken out first, referencing
// families before the ones they reference (dedup, shares, waiters, locks,
// events, monitors, clients); then new records are decoded by the same
// RebuildRecord that a full Rebuild uses, referenced families first
// (counters, gateways, clients, monitors, events, locks, ...), and put in
// the place FinishRebuild would give them. The result equals Rebuild() of
// the store after the commit (Snapshot() equality, tested in
// server/replication/standby_replica_test.cc).
//
// A change that does not fit (unknown key, missing record, malformed value)
// is DataLoss naming the key; the core may then be half-updated and the
// caller must Rebuild from the store.
#include <algorithm>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

absl::Status Unfit(absl::string_view key, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("replicated record '", absl::CEscape(key), "': ", why));
}

// The order in which Rebuild applies families: referenced ones first.
int Rank(absl::string_view key) {
  static constexpr absl::string_view kOrder[] = {"m/", "g/", "c/", "n/", "e/",
                                                "l/", "w/", "s/", "d/"};
  for (int i = 0; i < 9; ++i) {
    if (key.substr(0, 2) == kOrder[i]) return i;
  }
  return -1;
}

// Locks and waiters start with the file handle (codec.h).
bool FileOf(const std::string& value, std::string* fh) {
  codec::Reader r(value);
  return r.Version() && r.Bytes(fh);
}

}  // namespace

absl::Status LockCore::ApplyRecords(const std::vector<RecordChange>& changes) {
  // A staged snapshot import (lock_core_import.cc).
  if (std::optional<absl::Status> s = ApplyImportRecords(changes)) return *s;
  std::vector<const RecordChange*> order;
  order.reserve(changes.size());
  for (const RecordChange& c : changes) {
    if (Rank(c.key) < 0) return Unfit(c.key, "unknown family");
    order.push_back(&c);
  }
  std::vector<std::string> touched;  // Files to drop if left empty.

  // Removals, referencing records first.
  std::stable_sort(order.begin(), order.end(), [](const RecordChange* a, const RecordChange* b) {
    return Rank(a->key) > Rank(b->key);
  });
  for (const RecordChange* c : order) {
    if (!c->previous.has_value()) continue;
    const std::string& key = c->key;
    const absl::string_view family = absl::string_view(key).substr(0, 2);
    if (family == "d/") {
      // A dedup put over a record replaces it in place (below); only
      // deletes are taken out here.
      if (!c->value.has_value()) LW_RETURN_IF_ERROR(ApplyDedupRecord(key, {}));
      continue;
    }
    if (family == "m/" || family == "g/") {
      // Counters and gateway identities are never deleted, only rewritten
      // (in place, below).
      if (!c->value.has_value()) return Unfit(key, "deleted, but never is");
      continue;
    }
    if (family == "c/") {
      if (client_states_.erase(key.substr(2)) == 0) return Unfit(key, "no such client");
      client_addresses_.erase(key.substr(2));  // Re-read with the new value.
      continue;
    }
    uint64_t id = 0;
    if (!codec::ParseIdKey(key, &id)) return Unfit(key, "malformed id");
    if (family == "n/") {
      bool found = false;
      for (GatewayState& g : gateways_) {
        for (auto it = g.monitors.begin(); it != g.monitors.end(); ++it) {
          if (it->second.id != id) continue;
          g.monitors.erase(it);
          --monitor_count_;
          found = true;
          break;
        }
        if (found) break;
      }
      if (!found) return Unfit(key, "no such monitor");
      continue;
    }
    if (family == "e/") {
      bool found = false;
      for (GatewayState& g : gateways_) {
        if (g.outbox.erase(id) == 0) continue;
        --event_count_;
        found = true;
        break;
      }
      if (!found) return Unfit(key, "no such event");
      continue;
    }
    if (family == "l/" || family == "w/") {
      std::string fh;
      if (!FileOf(*c->previous, &fh)) return Unfit(key, "malformed previous value");
      auto file = files_.find(fh);
      if (file == files_.end()) return Unfit(key, "no such file");
      FileState& f = file->second;
      if (family == "l/") {
        auto l = std::find_if(f.locks.begin(), f.locks.end(),
                              [id](const LockEntry& e) { return e.token == id; });
        if (l == f.locks.end()) return Unfit(key, "no such lock");
        if (auto u = unconfirmed_.find(id); u != unconfirmed_.end()) {
          grant_deadlines_.erase({u->second.deadline_ms, id});
          unconfirmed_.erase(u);
        }
        EraseLockAt(f, static_cast<size_t>(l - f.locks.begin()));
      } else {
        auto w = std::find_if(f.waiters.begin(), f.waiters.end(),
                              [id](const WaiterEntry& e) { return e.id == id; });
        if (w == f.waiters.end()) return Unfit(key, "no such waiter");
        EraseWaiterAt(f, static_cast<size_t>(w - f.waiters.begin()));
      }
      touched.push_back(std::move(fh));
      continue;
    }
    if (family == "s/") {
      auto by_id = shares_by_id_.find(id);
      if (by_id == shares_by_id_.end()) return Unfit(key, "no such share");
      const std::string fh = by_id->second;
      FileState& f = files_.at(fh);
      auto s = std::find_if(f.shares.begin(), f.shares.end(),
                            [id](const ShareEntry& e) { return e.id == id; });
      if (s == f.shares.end()) return Unfit(key, "share index out of step");
      EraseShareAt(f, static_cast<size_t>(s - f.shares.begin()));
      touched.push_back(fh);
      continue;
    }
    return Unfit(key, "unknown family");
  }

  // Additions, referenced records first.
  std::stable_sort(order.begin(), order.end(), [](const RecordChange* a, const RecordChange* b) {
    return Rank(a->key) < Rank(b->key);
  });
  for (const RecordChange* c : order) {
    if (!c->value.has_value()) continue;
    const std::string& key = c->key;
    const absl::string_view family = absl::string_view(key).substr(0, 2);
    if (family == "d/") {
      // A new entry, possibly over the slot of the one leaving the window,
      // or the move of a record of another layout (lock_core_dedup.cc).
      LW_RETURN_IF_ERROR(ApplyDedupRecord(key, c->value));
      continue;
    }
    auto old_gateway = family == "g/" ? gateway_ids_.find(key.substr(2)) : gateway_ids_.end();
    const bool gateway_update = old_gateway != gateway_ids_.end();
    const GatewayId old_id = gateway_update ? old_gateway->second : 0;
    LW_RETURN_IF_ERROR(RebuildRecord(key, *c->value));
    if (gateway_update) {
      // RebuildRecord appended a fresh identity; keep the old slot (locks
      // refer to it by id) with the new persisted fields and the derived
      // ones (monitors, outbox, waiter count) it already had.
      GatewayState fresh = std::move(gateways_.back());
      gateways_.pop_back();
      GatewayState& slot = gateways_[old_id];
      fresh.monitors = std::move(slot.monitors);
      fresh.outbox = std::move(slot.outbox);
      fresh.waiters = slot.waiters;
      slot = std::move(fresh);
      gateway_ids_[slot.name] = old_id;
      continue;
    }
    if (family == "l/") {
      // RebuildRecord appended it; Rebuild sorts once at the end, a
      // replica puts each new lock in its place.
      std::string fh;
      if (!FileOf(*c->value, &fh)) return Unfit(key, "malformed value");
      FileState& f = files_.at(fh);
      const LockEntry l = f.locks.back();
      f.locks.pop_back();
      auto pos = std::lower_bound(f.locks.begin(), f.locks.end(), l,
                                  [](const LockEntry& a, const LockEntry& b) {
                                    return std::tie(a.start, a.token) < std::tie(b.start, b.token);
                                  });
      f.locks.insert(pos, l);
      f.max_span = std::max(f.max_span, l.end - l.start);
      f.unconfirmed += l.unconfirmed;
    } else if (family == "w/") {
      std::string fh;
      if (!FileOf(*c->value, &fh)) return Unfit(key, "malformed value");
      FileState& f = files_.at(fh);
      WaiterEntry w = std::move(f.waiters.back());
      f.waiters.pop_back();
      waits_by_owner_[w.owner].push_back({&f, w.id});
      auto pos = std::upper_bound(
          f.waiters.begin(), f.waiters.end(), w.id,
          [](uint64_t id, const WaiterEntry& e) { return id < e.id; });
      f.waiters.insert(pos, std::move(w));
    } else if (family == "s/") {
      uint64_t id = 0;
      (void)codec::ParseIdKey(key, &id);  // RebuildRecord checked it.
      FileState& f = files_.at(shares_by_id_.at(id));
      ShareEntry s = std::move(f.shares.back());
      f.shares.pop_back();
      auto pos = std::upper_bound(
          f.shares.begin(), f.shares.end(), s.id,
          [](uint64_t id, const ShareEntry& e) { return id < e.id; });
      f.shares.insert(pos, std::move(s));
    }
  }
  for (const std::string& fh : touched) CollectFile(fh);
  return absl::OkStatus();
}

}  // namespace lockwarden::core
