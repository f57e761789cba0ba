// LockCore::CheckInvariants and DebugString: the checks the randomised test
// runs after every step and Rebuild runs on what it loaded.
#include <algorithm>
#include <map>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

absl::Status Broken(absl::string_view fh, absl::string_view what) {
  return absl::InternalError(absl::StrCat("invariant broken on fh '",
                                          absl::CEscape(fh), "': ", what));
}

}  // namespace

absl::Status LockCore::CheckFile(const std::string& fh, const FileState& f,
                                 absl::flat_hash_map<OwnerId, uint32_t>& refs,
                                 size_t& unconfirmed) const {
  if (f.empty()) return Broken(fh, "empty file entry kept");
  if (f.name == nullptr || *f.name != fh) return Broken(fh, "file name");
  if ((waiting_files_.count(&f) != 0) != !f.waiters.empty()) {
    return Broken(fh, "waiting_files_ index");
  }
  const size_t n = f.locks.size();
  uint32_t unconfirmed_here = 0;
  for (size_t i = 0; i < n; ++i) {
    const LockEntry& a = f.locks[i];
    if (a.start > a.end) return Broken(fh, "start > end");
    if (a.token == 0 || a.token >= counters_.next_token) {
      return Broken(fh, "token outside counter");
    }
    if (i > 0 && std::tie(f.locks[i - 1].start, f.locks[i - 1].token) >=
                     std::tie(a.start, a.token)) {
      return Broken(fh, "locks not sorted");
    }
    if (a.gateway >= gateways_.size()) return Broken(fh, "gateway id");
    if (a.end - a.start > f.max_span) return Broken(fh, "max_span too low");
    ++refs[a.owner];
    auto u = unconfirmed_.find(a.token);
    if (a.unconfirmed != (u != unconfirmed_.end())) {
      return Broken(fh, "unconfirmed index");
    }
    if (a.unconfirmed) {
      ++unconfirmed;
      ++unconfirmed_here;
      if (u->second.fh != fh ||
          grant_deadlines_.count({u->second.deadline_ms, a.token}) == 0) {
        return Broken(fh, "unconfirmed grant bookkeeping");
      }
      if (u->second.event_sequence != 0) {
        const auto& outbox = gateways_[a.gateway].outbox;
        auto ev = outbox.find(u->second.event_sequence);
        if (ev == outbox.end()) return Broken(fh, "grant event missing");
      }
    }
    for (size_t j = i + 1; j < n; ++j) {
      const LockEntry& b = f.locks[j];
      if (a.end != kLastByte && b.start > a.end + 1) break;
      const bool overlap = Overlaps(a.interval(), b.interval());
      if (a.owner != b.owner) {
        if (overlap && (a.exclusive || b.exclusive)) {
          return Broken(fh, absl::StrCat("conflicting locks ", a.token, " and ",
                                         b.token));
        }
      } else if (!a.unconfirmed && !b.unconfirmed) {
        if (overlap) return Broken(fh, "one owner's locks overlap");
        if (a.exclusive == b.exclusive && a.gateway == b.gateway &&
            a.client_state == b.client_state && a.monitored == b.monitored) {
          return Broken(fh, absl::StrCat("unmerged adjacent locks ", a.token,
                                         " and ", b.token));
        }
      }
    }
  }
  if (unconfirmed_here != f.unconfirmed) {
    return Broken(fh, "unconfirmed count");
  }
  for (size_t i = 0; i < f.waiters.size(); ++i) {
    const WaiterEntry& w = f.waiters[i];
    if (w.start > w.end || w.id == 0 || w.id >= counters_.next_id ||
        (i > 0 && f.waiters[i - 1].id >= w.id)) {
      return Broken(fh, "waiter order or range");
    }
    if (w.gateway >= gateways_.size()) return Broken(fh, "waiter gateway");
    ++refs[w.owner];
    auto by_owner = waits_by_owner_.find(w.owner);
    if (by_owner == waits_by_owner_.end() ||
        std::find(by_owner->second.begin(), by_owner->second.end(),
                  std::make_pair(&f, w.id)) == by_owner->second.end()) {
      return Broken(fh, "waits_by_owner_ index");
    }
    if (!WaiterBlocked(f, i)) {
      return Broken(fh, absl::StrCat("grantable waiter ", w.id));
    }
  }
  for (size_t i = 0; i < f.shares.size(); ++i) {
    const ShareEntry& s = f.shares[i];
    auto it = shares_by_id_.find(s.id);
    if (it == shares_by_id_.end() || it->second != fh ||
        (i > 0 && f.shares[i - 1].id >= s.id) || s.id >= counters_.next_id) {
      return Broken(fh, "share index");
    }
    for (size_t j = 0; j < i; ++j) {
      const ShareEntry& t = f.shares[j];
      if (s.client == t.client && s.oh == t.oh) {
        return Broken(fh, "two shares of one owner");
      }
      const auto sa = static_cast<uint8_t>(s.access);
      const auto sd = static_cast<uint8_t>(s.deny);
      if ((sa & static_cast<uint8_t>(t.deny)) ||
          (sd & static_cast<uint8_t>(t.access))) {
        return Broken(fh, "conflicting shares");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LockCore::CheckInvariants() const {
  absl::flat_hash_map<OwnerId, uint32_t> refs;
  size_t locks = 0, waiters = 0, shares = 0, unconfirmed = 0;
  for (const auto& [fh, f] : files_) {
    absl::Status s = CheckFile(fh, f, refs, unconfirmed);
    if (!s.ok()) return s;
    locks += f.locks.size();
    waiters += f.waiters.size();
    shares += f.shares.size();
  }
  if (locks != lock_count_ || waiters != waiter_count_ ||
      shares != shares_by_id_.size()) {
    return absl::InternalError("invariant broken: table counts");
  }
  if (unconfirmed != unconfirmed_.size() ||
      unconfirmed != grant_deadlines_.size()) {
    return absl::InternalError("invariant broken: unconfirmed grant count");
  }
  if (refs.size() != owners_.size()) {
    return absl::InternalError("invariant broken: unreferenced owner kept");
  }
  for (const auto& [id, n] : refs) {
    if (owners_.refs(id) != n) {
      return absl::InternalError("invariant broken: owner reference count");
    }
  }
  size_t monitors = 0, events = 0;
  for (GatewayId id = 0; id < gateways_.size(); ++id) {
    const GatewayState& g = gateways_[id];
    auto it = gateway_ids_.find(g.name);
    if (it == gateway_ids_.end() || it->second != id) {
      return absl::InternalError("invariant broken: gateway index");
    }
    if ((g.nsm_state & 1) == 0) {
      return absl::InternalError("invariant broken: even NSM state");
    }
    if (g.grace_until_ms == 0 && !g.ledger.empty()) {
      return absl::InternalError("invariant broken: ledger outside grace");
    }
    size_t gw_waiters = 0;
    for (const FileState* f : waiting_files_) {
      for (const WaiterEntry& w : f->waiters) gw_waiters += w.gateway == id;
    }
    if (gw_waiters != g.waiters) {
      return absl::InternalError("invariant broken: gateway waiter count");
    }
    monitors += g.monitors.size();
    events += g.outbox.size();
    for (const auto& [seq, e] : g.outbox) {
      if (seq == 0 || seq >= counters_.next_event_sequence ||
          e.sequence != seq || e.gateway != g.name) {
        return absl::InternalError("invariant broken: event sequence");
      }
      if (const auto* ge = std::get_if<GrantedEvent>(&e.body)) {
        auto u = unconfirmed_.find(ge->fencing_token);
        if (u == unconfirmed_.end() || u->second.event_sequence != seq) {
          return absl::InternalError(
              "invariant broken: Granted event without its grant");
        }
      }
    }
  }
  size_t indexed_waiters = 0;
  for (const auto& [owner, list] : waits_by_owner_) {
    indexed_waiters += list.size();
  }
  if (indexed_waiters != waiter_count_) {
    return absl::InternalError("invariant broken: waits_by_owner_ size");
  }
  if (monitors != monitor_count_ || events != event_count_) {
    return absl::InternalError("invariant broken: monitor or event count");
  }
  return CheckDedup();
}

std::string LockCore::DebugString() const {
  std::string out;
  if (import_marker_.has_value()) {
    absl::StrAppend(&out, "interrupted import keys=", import_marker_->key_count,
                    " started=", import_marker_->started_ms, " source=",
                    absl::CEscape(import_marker_->source), " records=",
                    import_records_.size(), "\n");
  }
  absl::StrAppend(&out, 
      "counters token=", counters_.next_token,
      " event=", counters_.next_event_sequence, " id=", counters_.next_id,
      " dropped=", counters_.events_dropped, "\n");
  auto owner = [](const Owner& o) {
    return absl::StrCat(absl::CEscape(o.client), "/", o.svid, "/",
                        absl::BytesToHexString(o.oh));
  };
  for (const GatewayInfo& g : ListGateways()) {
    absl::StrAppend(&out, "gateway ", absl::CEscape(g.name), " state=",
                    g.nsm_state, " grace_until=", g.grace_until_ms,
                    g.draining ? " draining" : "", " ledger=");
    for (const LedgerEntry& e : g.ledger) {
      absl::StrAppend(&out, absl::CEscape(e.client), "(", e.reclaimed, e.done,
                      ")");
    }
    absl::StrAppend(&out, "\n");
  }
  constexpr size_t kAll = std::numeric_limits<size_t>::max();
  for (const LockInfo& l : ListLocks({}, 0, kAll)) {
    absl::StrAppend(&out, "lock ", l.fencing_token, " fh=",
                    absl::BytesToHexString(l.fh), " ", owner(l.owner), " [",
                    l.range.offset, "+", l.range.length, "] ",
                    l.exclusive ? "X" : "S", " gw=", l.gateway,
                    " st=", l.client_state, l.monitored ? "" : " nm",
                    " at=", l.granted_ms,
                    l.unconfirmed ? absl::StrCat(" unconfirmed until ",
                                                 l.grant_deadline_ms, " ev ",
                                                 l.grant_event_sequence)
                                  : "",
                    "\n");
  }
  for (const WaiterInfo& w : ListWaiters({}, 0, kAll)) {
    absl::StrAppend(&out, "waiter ", w.id, " fh=",
                    absl::BytesToHexString(w.fh), " ", owner(w.owner), " [",
                    w.range.offset, "+", w.range.length, "] ",
                    w.exclusive ? "X" : "S", w.reclaim ? " reclaim" : "",
                    " gw=", w.gateway, " st=", w.client_state,
                    w.monitored ? "" : " nm", "\n");
  }
  for (const ShareInfo& s : ListShares({}, 0, kAll)) {
    absl::StrAppend(&out, "share ", s.id, " fh=",
                    absl::BytesToHexString(s.fh), " ", absl::CEscape(s.client),
                    "/", absl::BytesToHexString(s.oh), " access=",
                    static_cast<int>(s.access), " deny=",
                    static_cast<int>(s.deny), " gw=", s.gateway, "\n");
  }
  for (const ClientInfo& c : ListClients()) {
    absl::StrAppend(&out, "client ", absl::CEscape(c.name), " state=",
                    c.nsm_state, "\n");
  }
  for (const MonitorInfo& m : ListMonitors("")) {
    absl::StrAppend(&out, "monitor gw=", m.gateway, " ", m.mon_name, " -> ",
                    m.my_id.my_name, " ", m.my_id.my_prog, "/",
                    m.my_id.my_vers, "/", m.my_id.my_proc, "\n");
  }
  std::map<uint64_t, std::string> events;  // By sequence, not gateway id.
  for (const GatewayState& g : gateways_) {
    for (const auto& [seq, e] : g.outbox) {
      events[seq] = absl::StrCat("event ", seq, " gw=", g.name, " kind=",
                                 e.body.index(), "\n");
    }
  }
  for (const auto& [seq, line] : events) absl::StrAppend(&out, line);
  // The next sequence only means something while there is a ring (with
  // none, Rebuild derives it from garbage that is being deleted).
  absl::StrAppend(&out, "dedup ", dedup_index_.size(), " next ",
                  DedupRingSize() > 0 ? dedup_next_sequence_ : 0, " stale ",
                  dedup_stale_.size(), "\n");
  return out;
}

}  // namespace lockwarden::core
