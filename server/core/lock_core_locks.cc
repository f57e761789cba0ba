// LockCore: byte-range algorithms (conflict, merge, split), the FIFO waiter
// queues and their fair grant order, unconfirmed grants, and deadlock
// detection on the owner wait-for graph. See docs/core.md for the rules.
#include <algorithm>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

bool LockLess(const internal::LockEntry& a, const internal::LockEntry& b) {
  return std::tie(a.start, a.token) < std::tie(b.start, b.token);
}

constexpr uint64_t kRecountSpan = uint64_t{1} << 20;

// True when a request/waiter of one owner and a lock/waiter of another
// owner cannot both be granted.
bool ModesConflict(bool a_exclusive, bool b_exclusive) {
  return a_exclusive || b_exclusive;
}

}  // namespace

internal::FileState& LockCore::FileFor(const std::string& fh) {
  auto [it, inserted] = files_.try_emplace(fh);
  if (inserted) it->second.name = &it->first;
  return it->second;
}

const internal::LockEntry* LockCore::FindConflict(const FileState& f,
                                                  OwnerId owner,
                                                  const Interval& iv,
                                                  bool exclusive) const {
  for (size_t i = FirstCandidate(f, iv.start); i < f.locks.size(); ++i) {
    const LockEntry& l = f.locks[i];
    if (l.start > iv.end) break;  // Sorted by start: nothing later overlaps.
    if (l.owner != owner && l.end >= iv.start &&
        ModesConflict(exclusive, l.exclusive)) {
      return &l;
    }
  }
  return nullptr;
}

void LockCore::BlockersOf(const FileState& f, OwnerId owner,
                          const Interval& iv, bool exclusive,
                          size_t earlier_waiters,
                          std::vector<OwnerId>& out) const {
  for (size_t i = FirstCandidate(f, iv.start); i < f.locks.size(); ++i) {
    const LockEntry& l = f.locks[i];
    if (l.start > iv.end) break;
    if (l.owner != owner && l.end >= iv.start &&
        ModesConflict(exclusive, l.exclusive)) {
      out.push_back(l.owner);
    }
  }
  for (size_t j = 0; j < earlier_waiters; ++j) {
    const WaiterEntry& w = f.waiters[j];
    if (w.owner != owner && Overlaps(w.interval(), iv) &&
        ModesConflict(exclusive, w.exclusive)) {
      out.push_back(w.owner);
    }
  }
}

bool LockCore::WaiterBlocked(const FileState& f, size_t index) const {
  const WaiterEntry& w = f.waiters[index];
  if (FindConflict(f, w.owner, w.interval(), w.exclusive) != nullptr) {
    return true;
  }
  // Never overtake an earlier waiter of another owner that conflicts.
  for (size_t j = 0; j < index; ++j) {
    const WaiterEntry& e = f.waiters[j];
    if (e.owner != w.owner && Overlaps(e.interval(), w.interval()) &&
        ModesConflict(e.exclusive, w.exclusive)) {
      return true;
    }
  }
  return false;
}

size_t LockCore::FirstCandidate(const FileState& f, uint64_t at) {
  const uint64_t lo = at > f.max_span ? at - f.max_span : 0;
  if (lo == 0) return 0;
  auto it = std::partition_point(
      f.locks.begin(), f.locks.end(),
      [lo](const LockEntry& l) { return l.start < lo; });
  return static_cast<size_t>(it - f.locks.begin());
}

void LockCore::InsertLock(const std::string& fh, FileState& f,
                          const LockEntry& l) {
  auto pos = std::lower_bound(f.locks.begin(), f.locks.end(), l, LockLess);
  f.locks.insert(pos, l);
  f.max_span = std::max(f.max_span, l.end - l.start);
  f.unconfirmed += l.unconfirmed;
  owners_.Ref(l.owner);
  ++lock_count_;
  PutLock(fh, l);
}

void LockCore::EraseLockAt(FileState& f, size_t index) {
  const LockEntry l = f.locks[index];
  f.locks.erase(f.locks.begin() + static_cast<ptrdiff_t>(index));
  f.unconfirmed -= l.unconfirmed;
  // Tighten the bound when a large lock (e.g. to EOF) goes away; a small
  // stale bound costs a few extra comparisons, a recount costs O(n).
  if (f.locks.empty()) {
    f.max_span = 0;
  } else if (f.max_span > kRecountSpan && l.end - l.start == f.max_span) {
    f.max_span = 0;
    for (const LockEntry& x : f.locks) {
      f.max_span = std::max(f.max_span, x.end - x.start);
    }
  }
  --lock_count_;
  DeleteLock(l.token);
  owners_.Unref(l.owner);
  owners_.Collect(l.owner);
}

void LockCore::PushWaiter(const std::string& fh, FileState& f,
                          WaiterEntry w) {
  owners_.Ref(w.owner);
  ++gateways_[w.gateway].waiters;
  ++waiter_count_;
  PutWaiter(fh, w);
  waits_by_owner_[w.owner].push_back({&f, w.id});
  f.waiters.push_back(std::move(w));
  waiting_files_.insert(&f);
}

void LockCore::EraseWaiterAt(FileState& f, size_t index) {
  const OwnerId owner = f.waiters[index].owner;
  --gateways_[f.waiters[index].gateway].waiters;
  --waiter_count_;
  DeleteWaiter(f.waiters[index].id);
  auto by_owner = waits_by_owner_.find(owner);
  auto& list = by_owner->second;
  list.erase(std::find(list.begin(), list.end(),
                       std::make_pair(static_cast<const FileState*>(&f),
                                      f.waiters[index].id)));
  if (list.empty()) waits_by_owner_.erase(by_owner);
  f.waiters.erase(f.waiters.begin() + static_cast<ptrdiff_t>(index));
  if (f.waiters.empty()) waiting_files_.erase(&f);
  owners_.Unref(owner);
  owners_.Collect(owner);
}

void LockCore::EraseShareAt(FileState& f, size_t index) {
  shares_by_id_.erase(f.shares[index].id);
  DeleteShare(f.shares[index].id);
  f.shares.erase(f.shares.begin() + static_cast<ptrdiff_t>(index));
}

std::optional<uint64_t> LockCore::SetOwnerRange(const std::string& fh,
                                                FileState& f,
                                                const LockEntry& proto,
                                                uint64_t reuse_token,
                                                bool enforce_limit) {
  const Interval iv = proto.interval();
  // Locks merge only when every attribute the release rules look at agrees:
  // mode, gateway identity (SimuCrash), client NSM state and monitoring
  // (SM_NOTIFY).
  auto same = [&proto](const LockEntry& l) {
    return l.exclusive == proto.exclusive && l.gateway == proto.gateway &&
           l.client_state == proto.client_state &&
           l.monitored == proto.monitored;
  };
  // Plan first, so a refusal (limit) leaves everything untouched.
  absl::InlinedVector<size_t, 4> remove;
  absl::InlinedVector<LockEntry, 2> pieces;
  Interval merged = iv;
  // Touching locks may end at iv.start - 1.
  const uint64_t from = iv.start == 0 ? 0 : iv.start - 1;
  for (size_t i = FirstCandidate(f, from); i < f.locks.size(); ++i) {
    const LockEntry& l = f.locks[i];
    if (iv.end != kLastByte && l.start > iv.end + 1) break;
    if (l.owner != proto.owner || l.unconfirmed || !Touches(l.interval(), iv)) {
      continue;
    }
    if (same(l)) {
      if (Contains(l.interval(), iv)) return l.token;  // Already held so.
      merged.start = std::min(merged.start, l.start);
      merged.end = std::max(merged.end, l.end);
      remove.push_back(i);
    } else if (Overlaps(l.interval(), iv)) {
      // Different mode or attributes: the new request wins on iv, the
      // parts of l outside iv stay (as new locks with fresh tokens).
      remove.push_back(i);
      if (l.start < iv.start) {
        LockEntry left = l;
        left.end = iv.start - 1;
        pieces.push_back(left);
      }
      if (l.end > iv.end) {
        LockEntry right = l;
        right.start = iv.end + 1;
        pieces.push_back(right);
      }
    }
  }
  const size_t after = lock_count_ - remove.size() + pieces.size() + 1;
  if (enforce_limit && after > lock_count_ && after > options_.locks_max) {
    return std::nullopt;
  }
  owners_.Ref(proto.owner);  // Keep the id alive across the erases.
  for (auto it = remove.rbegin(); it != remove.rend(); ++it) {
    EraseLockAt(f, *it);
  }
  for (LockEntry& piece : pieces) {
    piece.token = NewToken();
    InsertLock(fh, f, piece);
  }
  LockEntry m = proto;
  m.start = merged.start;
  m.end = merged.end;
  m.unconfirmed = false;
  m.token = (reuse_token != 0 && merged == iv) ? reuse_token : NewToken();
  InsertLock(fh, f, m);
  owners_.Unref(proto.owner);
  return m.token;
}

std::optional<uint32_t> LockCore::ClearOwnerRange(const std::string& fh,
                                                  FileState& f, OwnerId owner,
                                                  const Interval& iv) {
  absl::InlinedVector<size_t, 4> remove;
  absl::InlinedVector<LockEntry, 2> pieces;
  for (size_t i = FirstCandidate(f, iv.start); i < f.locks.size(); ++i) {
    const LockEntry& l = f.locks[i];
    if (l.start > iv.end) break;
    if (l.owner != owner || l.unconfirmed || !Overlaps(l.interval(), iv)) {
      continue;
    }
    remove.push_back(i);
    if (l.start < iv.start) {
      LockEntry left = l;
      left.end = iv.start - 1;
      pieces.push_back(left);
    }
    if (l.end > iv.end) {
      LockEntry right = l;
      right.start = iv.end + 1;
      pieces.push_back(right);
    }
  }
  const size_t after = lock_count_ - remove.size() + pieces.size();
  if (after > lock_count_ && after > options_.locks_max) return std::nullopt;
  owners_.Ref(owner);
  for (auto it = remove.rbegin(); it != remove.rend(); ++it) {
    EraseLockAt(f, *it);
  }
  for (LockEntry& piece : pieces) {
    piece.token = NewToken();
    InsertLock(fh, f, piece);
  }
  owners_.Unref(owner);
  owners_.Collect(owner);
  return static_cast<uint32_t>(remove.size());
}

void LockCore::GrantWaiters(const std::string& fh, FileState& f) {
  size_t i = 0;
  while (i < f.waiters.size()) {
    if (WaiterBlocked(f, i)) {
      ++i;
      continue;
    }
    // Admitted waiters are always granted (locks_max bounds new requests;
    // waiters_max bounds what can still arrive this way).
    const WaiterEntry& w = f.waiters[i];
    LockEntry l;
    l.start = w.start;
    l.end = w.end;
    l.token = NewToken();
    l.granted_ms = now_ms_;
    l.owner = w.owner;
    l.gateway = w.gateway;
    l.client_state = w.client_state;
    l.monitored = w.monitored;
    l.exclusive = w.exclusive;
    l.unconfirmed = true;
    GrantedEvent ev;
    ev.fh = fh;
    ev.owner = owners_.Get(w.owner);
    ev.range = ToRange(w.interval());
    ev.exclusive = w.exclusive;
    ev.fencing_token = l.token;
    ev.client_state = w.client_state;
    ev.callback = w.callback;
    ev.cookie = w.cookie;
    internal::UnconfirmedGrant& u = unconfirmed_[l.token];
    u.fh = fh;
    u.deadline_ms = now_ms_ + options_.grant_timeout_ms;
    grant_deadlines_.insert({u.deadline_ms, l.token});
    u.event_sequence = EmitEvent(w.gateway, std::move(ev));
    InsertLock(fh, f, l);  // Before the erase: keeps the owner id alive.
    EraseWaiterAt(f, i);
  }
}

uint64_t LockCore::ConfirmGrant(const std::string& fh, FileState& f,
                                uint64_t token) {
  size_t index = 0;
  while (f.locks[index].token != token) ++index;
  LockEntry proto = f.locks[index];
  proto.unconfirmed = false;
  auto u = unconfirmed_.find(token);
  const uint64_t sequence = u->second.event_sequence;
  grant_deadlines_.erase({u->second.deadline_ms, token});
  unconfirmed_.erase(u);
  owners_.Ref(proto.owner);
  EraseLockAt(f, index);
  // Never refused: the range was already reserved by the unconfirmed grant.
  const uint64_t result =
      *SetOwnerRange(fh, f, proto, token, /*enforce_limit=*/false);
  owners_.Unref(proto.owner);
  if (sequence != 0) DropEvent(gateways_[proto.gateway], sequence);
  return result;
}

void LockCore::ReleaseUnconfirmed(FileState& f, uint64_t token) {
  size_t index = 0;
  while (f.locks[index].token != token) ++index;
  auto u = unconfirmed_.find(token);
  grant_deadlines_.erase({u->second.deadline_ms, token});
  if (u->second.event_sequence != 0) {
    DropEvent(gateways_[f.locks[index].gateway], u->second.event_sequence);
  }
  unconfirmed_.erase(u);
  EraseLockAt(f, index);
}

bool LockCore::WouldDeadlock(OwnerId requester, const FileState& f,
                             const Interval& iv, bool exclusive) const {
  std::vector<OwnerId> stack;
  BlockersOf(f, requester, iv, exclusive, f.waiters.size(), stack);
  if (stack.empty()) return false;
  absl::flat_hash_set<OwnerId> visited;
  while (!stack.empty()) {
    const OwnerId x = stack.back();
    stack.pop_back();
    if (x == requester) return true;
    if (!visited.insert(x).second) continue;
    auto it = waits_by_owner_.find(x);
    if (it == waits_by_owner_.end()) continue;
    for (const auto& [wf, id] : it->second) {
      // Waiter ids increase along a file's queue.
      auto pos = std::lower_bound(
          wf->waiters.begin(), wf->waiters.end(), id,
          [](const WaiterEntry& w, uint64_t v) { return w.id < v; });
      const size_t i = static_cast<size_t>(pos - wf->waiters.begin());
      BlockersOf(*wf, x, pos->interval(), pos->exclusive, i, stack);
    }
  }
  return false;
}

uint32_t LockCore::ReleaseWhere(
    const std::string* only_fh,
    absl::FunctionRef<bool(const HoldingRef&)> pred) {
  // Files in name order, so tokens and event sequences of the grants that
  // follow do not depend on hash-table iteration order.
  std::vector<std::string> names;
  if (only_fh != nullptr) {
    names.push_back(*only_fh);
  } else {
    names.reserve(files_.size());
    for (const auto& [fh, f] : files_) names.push_back(fh);
    std::sort(names.begin(), names.end());
  }
  uint32_t released = 0;
  for (const std::string& name : names) {
    FileState& f = files_.at(name);
    const uint32_t before = released;
    for (size_t i = f.waiters.size(); i-- > 0;) {
      const WaiterEntry& w = f.waiters[i];
      if (pred({w.owner, &owners_.Get(w.owner).client, w.gateway,
                w.client_state, w.monitored})) {
        EraseWaiterAt(f, i);
        ++released;
      }
    }
    for (size_t i = f.locks.size(); i-- > 0;) {
      const LockEntry& l = f.locks[i];
      if (pred({l.owner, &owners_.Get(l.owner).client, l.gateway,
                l.client_state, l.monitored})) {
        if (l.unconfirmed) {
          ReleaseUnconfirmed(f, l.token);
        } else {
          EraseLockAt(f, i);
        }
        ++released;
      }
    }
    for (size_t i = f.shares.size(); i-- > 0;) {
      const ShareEntry& s = f.shares[i];
      if (pred({kNoOwner, &s.client, s.gateway, s.client_state, true})) {
        EraseShareAt(f, i);
        ++released;
      }
    }
    if (released != before) GrantWaiters(name, f);
    CollectFile(name);
  }
  return released;
}

void LockCore::CollectFile(const std::string& fh) {
  auto it = files_.find(fh);
  if (it != files_.end() && it->second.empty()) files_.erase(it);
}

}  // namespace lockwarden::core
