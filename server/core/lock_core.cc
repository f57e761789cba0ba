// LockCore: command dispatch, request dedup, and the NLM lock/share
// commands. Range algorithms, waiters and deadlock detection are in
// lock_core_locks.cc; NSM and grace in lock_core_nsm.cc; persistence in
// lock_core_persist.cc; views and invariants in lock_core_views.cc.
#include "server/core/lock_core.h"

#include <type_traits>

#include "absl/strings/str_cat.h"
#include "server/core/interval.h"

namespace lockwarden::core {
namespace {

Reply Status(LockStatus s, std::string message = "") {
  Reply r;
  r.status = s;
  r.message = std::move(message);
  return r;
}

Reply Invalid(std::string message) {
  return Status(LockStatus::kInvalid, std::move(message));
}

Reply NoLocks(absl::string_view limit) {
  return Status(LockStatus::kNoLocks, absl::StrCat(limit, " reached"));
}

const std::string* RequestIdOf(const Command& cmd) {
  return std::visit(
      [](const auto& c) -> const std::string* {
        if constexpr (std::is_same_v<std::decay_t<decltype(c)>, TickCmd>) {
          return nullptr;
        } else {
          return &c.request_id;
        }
      },
      cmd);
}

}  // namespace

const char* LockStatusName(LockStatus s) {
  switch (s) {
    case LockStatus::kGranted: return "GRANTED";
    case LockStatus::kDenied: return "DENIED";
    case LockStatus::kBlocked: return "BLOCKED";
    case LockStatus::kDeadlock: return "DEADLCK";
    case LockStatus::kGrace: return "GRACE";
    case LockStatus::kNoLocks: return "NOLOCKS";
    case LockStatus::kInvalid: return "INVALID";
    case LockStatus::kNotFound: return "NOT_FOUND";
  }
  return "?";
}

LockCore::LockCore(CoreOptions options)
    : options_(std::move(options)),
      dedup_ring_(std::make_unique<internal::DedupRing>()),
      dedup_index_(0, internal::DedupSlotHash{dedup_ring_.get()},
                   internal::DedupSlotEq{dedup_ring_.get()}) {}

// ---- Input validation: every field from the network is checked here so
// the algorithms below can assume well-formed values.

std::optional<Reply> LockCore::CheckName(absl::string_view field,
                                         absl::string_view v) const {
  if (v.empty()) return Invalid(absl::StrCat(field, " is empty"));
  if (v.size() > options_.name_bytes_max) {
    return Invalid(absl::StrCat(field, " longer than ",
                                options_.name_bytes_max, " bytes"));
  }
  return std::nullopt;
}

std::optional<Reply> LockCore::CheckOpaque(absl::string_view field,
                                           absl::string_view v) const {
  if (v.size() > options_.opaque_bytes_max) {
    return Invalid(absl::StrCat(field, " longer than ",
                                options_.opaque_bytes_max, " bytes"));
  }
  return std::nullopt;
}

std::optional<Reply> LockCore::CheckTarget(const std::string& gateway,
                                           const std::string& fh,
                                           const Owner* owner) const {
  if (auto r = CheckName("gateway", gateway)) return r;
  if (fh.empty() || fh.size() > options_.fh_bytes_max) {
    return Invalid(absl::StrCat("fh must be 1..", options_.fh_bytes_max,
                                " bytes"));
  }
  if (owner != nullptr) {
    if (auto r = CheckName("owner.client", owner->client)) return r;
    if (auto r = CheckOpaque("owner.oh", owner->oh)) return r;
  }
  return std::nullopt;
}

Effects LockCore::Apply(const Command& cmd, int64_t now_ms) {
  Effects fx;
  if (import_marker_.has_value()) {
    fx.reply = Invalid("the lock state is being replaced by a snapshot import");
    return fx;
  }
  fx.delta.reserve(4);
  fx_ = &fx;
  now_ms_ = now_ms;
  const internal::Counters before = counters_;
  const std::string* rid = RequestIdOf(cmd);
  const bool dedup = rid != nullptr && !rid->empty();
  const auto kind = static_cast<uint8_t>(cmd.index());
  if (dedup && rid->size() > options_.name_bytes_max) {
    fx.reply = Invalid(absl::StrCat("request_id longer than ",
                                    options_.name_bytes_max, " bytes"));
  } else if (const internal::DedupEntry* seen =
                 dedup ? FindRemembered(*rid) : nullptr) {
    // A retry: answer what the first attempt answered, change nothing.
    fx.reply = seen->command_kind == kind
                   ? seen->reply
                   : Invalid("request_id reused for a different command");
  } else {
    fx.reply = Dispatch(cmd);
    if (dedup) RememberReply(*rid, kind, fx.reply);
  }
  // Records of another dedup layout ride along with a commit that happens
  // anyway (lock_core_dedup.cc), so a retry or a no-op stays delta-free.
  if (!fx.delta.empty() && !dedup_stale_.empty()) MigrateDedupRecords();
  if (counters_ != before || (!counters_persisted_ && !fx.delta.empty())) {
    PutCounters();
  }
  fx_ = nullptr;
  return fx;
}

Reply LockCore::Dispatch(const Command& cmd) {
  return std::visit(
      [this](const auto& c) -> Reply {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, LockCmd>) return DoLock(c);
        if constexpr (std::is_same_v<T, UnlockCmd>) return DoUnlock(c);
        if constexpr (std::is_same_v<T, CancelCmd>) return DoCancel(c);
        if constexpr (std::is_same_v<T, ShareCmd>) return DoShare(c);
        if constexpr (std::is_same_v<T, UnshareCmd>) return DoUnshare(c);
        if constexpr (std::is_same_v<T, FreeAllCmd>) return DoFreeAll(c);
        if constexpr (std::is_same_v<T, MonCmd>) return DoMon(c);
        if constexpr (std::is_same_v<T, UnmonCmd>) return DoUnmon(c);
        if constexpr (std::is_same_v<T, UnmonAllCmd>) return DoUnmonAll(c);
        if constexpr (std::is_same_v<T, NotifyCmd>) return DoNotify(c);
        if constexpr (std::is_same_v<T, SimuCrashCmd>) {
          return DoBump(c.gateway);
        }
        if constexpr (std::is_same_v<T, ResetGatewayCmd>) {
          return DoBump(c.gateway);
        }
        if constexpr (std::is_same_v<T, AckEventCmd>) return DoAck(c);
        if constexpr (std::is_same_v<T, TickCmd>) return DoTick();
        if constexpr (std::is_same_v<T, ForceReleaseCmd>) {
          return DoForceRelease(c);
        }
        if constexpr (std::is_same_v<T, EndGraceCmd>) return DoEndGrace(c);
        if constexpr (std::is_same_v<T, DrainGatewayCmd>) {
          return DoDrainGateway(c);
        }
      },
      cmd);
}

Reply LockCore::DoLock(const LockCmd& c) {
  if (auto r = CheckTarget(c.gateway, c.fh, &c.owner)) return *r;
  if (auto r = CheckOpaque("callback", c.callback)) return *r;
  if (auto r = CheckOpaque("cookie", c.cookie)) return *r;
  if (c.client_address.size() > kClientAddressMaxBytes) {
    return Invalid(absl::StrCat("client_address longer than ",
                                 kClientAddressMaxBytes, " bytes"));
  }
  std::optional<GatewayId> gw = GatewayFor(c.gateway);
  if (!gw) return NoLocks("gateways_max");
  if (c.block && gateways_[*gw].draining) {
    // A drained identity queues no new waiter: the LOCK is answered as a
    // non-blocking one (granted at once or DENIED naming the holder).
    LockCmd now = c;
    now.block = false;
    return DoLock(now);
  }
  if (GraceRefuses(*gw, c.owner.client, c.reclaim)) {
    return Status(LockStatus::kGrace, "grace period");
  }
  RecordClientState(c.owner.client, c.client_state, c.client_address);
  const Interval iv = ToInterval(c.range);
  std::optional<OwnerId> owner = owners_.Find(c.owner);
  if (!owner && !c.block) {
    // An owner not seen before holds nothing: a conflict is answered
    // without interning it (the common DENIED of a busy file).
    auto it = files_.find(c.fh);
    if (it != files_.end()) {
      if (const LockEntry* held =
              FindConflict(it->second, kNoOwner, iv, c.exclusive)) {
        return Denied(*held);
      }
    }
  }
  if (!owner) owner = owners_.Intern(c.owner, options_.owners_max);
  if (!owner) return NoLocks("owners_max");
  FileState& f = FileFor(c.fh);
  owners_.Ref(*owner);  // Pinned: merges may erase its last lock meanwhile.
  Reply reply = LockInFile(c, f, *owner, *gw, iv);
  owners_.Unref(*owner);
  owners_.Collect(*owner);
  if (f.empty()) CollectFile(c.fh);
  return reply;
}

Reply LockCore::LockInFile(const LockCmd& c, FileState& f, OwnerId owner,
                           GatewayId gw, const Interval& iv) {
  // A LOCK for a grant still awaiting its ack means the client wants it:
  // treat the grant as accepted (as Linux lockd does for b_granted).
  for (size_t i = f.unconfirmed == 0 ? f.locks.size() : 0;
       i < f.locks.size(); ++i) {
    const LockEntry& l = f.locks[i];
    if (l.unconfirmed && l.owner == owner && l.interval() == iv &&
        l.exclusive == c.exclusive) {
      Reply r;
      r.fencing_token = ConfirmGrant(c.fh, f, l.token);
      GrantWaiters(c.fh, f);  // Confirming may downgrade the owner's range.
      return r;
    }
  }
  // A repeated blocking LOCK while its waiter is queued: BLOCKED again,
  // never a second waiter (and never a barge past the waiters ahead).
  if (c.block) {
    for (const WaiterEntry& w : f.waiters) {
      if (w.owner == owner && w.interval() == iv &&
          w.exclusive == c.exclusive) {
        return Status(LockStatus::kBlocked);
      }
    }
  }
  if (const LockEntry* held = FindConflict(f, owner, iv, c.exclusive)) {
    if (!c.block) return Denied(*held);
    if (WouldDeadlock(owner, f, iv, c.exclusive)) {
      return Status(LockStatus::kDeadlock);
    }
    GatewayState& g = gateways_[gw];
    if (waiter_count_ >= options_.waiters_max) return NoLocks("waiters_max");
    if (f.waiters.size() >= options_.waiters_per_file_max) {
      return NoLocks("waiters_per_file_max");
    }
    // Each waiter reserves a slot in its gateway's outbox for its Granted
    // event, so grants never overflow it.
    if (g.outbox.size() + g.waiters >= options_.events_per_gateway_max) {
      return NoLocks("events_per_gateway_max");
    }
    WaiterEntry w;
    w.id = NewId();
    w.start = iv.start;
    w.end = iv.end;
    w.owner = owner;
    w.gateway = gw;
    w.client_state = c.client_state;
    w.exclusive = c.exclusive;
    w.reclaim = c.reclaim;
    w.monitored = c.monitored;
    w.queued_ms = now_ms_;
    w.callback = c.callback;
    w.cookie = c.cookie;
    PushWaiter(c.fh, f, std::move(w));
    return Status(LockStatus::kBlocked);
  }
  LockEntry proto;
  proto.start = iv.start;
  proto.end = iv.end;
  proto.owner = owner;
  proto.gateway = gw;
  proto.client_state = c.client_state;
  proto.monitored = c.monitored;
  proto.exclusive = c.exclusive;
  proto.granted_ms = now_ms_;
  std::optional<uint64_t> token =
      SetOwnerRange(c.fh, f, proto, /*reuse_token=*/0, /*enforce_limit=*/true);
  if (!token) return NoLocks("locks_max");
  GrantWaiters(c.fh, f);  // A downgrade may have unblocked waiters.
  Reply r;
  r.fencing_token = *token;
  return r;
}

Reply LockCore::DoUnlock(const UnlockCmd& c) {
  if (auto r = CheckTarget(c.gateway, c.fh, &c.owner)) return *r;
  std::optional<GatewayId> gw = GatewayFor(c.gateway);
  if (!gw) return NoLocks("gateways_max");
  if (GraceRefuses(*gw, c.owner.client, /*reclaim=*/false)) {
    return Status(LockStatus::kGrace, "grace period");
  }
  std::optional<OwnerId> owner = owners_.Find(c.owner);
  auto it = files_.find(c.fh);
  if (!owner || it == files_.end()) return Reply{};  // Nothing held: GRANTED.
  std::optional<uint32_t> removed =
      ClearOwnerRange(c.fh, it->second, *owner, ToInterval(c.range));
  if (!removed) return NoLocks("locks_max");
  Reply r;
  r.released = *removed;
  GrantWaiters(c.fh, it->second);
  owners_.Collect(*owner);
  if (it->second.empty()) files_.erase(it);
  return r;
}

Reply LockCore::DoCancel(const CancelCmd& c) {
  if (auto r = CheckTarget(c.gateway, c.fh, &c.owner)) return *r;
  std::optional<GatewayId> gw = GatewayFor(c.gateway);
  if (!gw) return NoLocks("gateways_max");
  if (GraceRefuses(*gw, c.owner.client, /*reclaim=*/false)) {
    return Status(LockStatus::kGrace, "grace period");
  }
  std::optional<OwnerId> owner = owners_.Find(c.owner);
  auto it = files_.find(c.fh);
  if (!owner || it == files_.end()) return Status(LockStatus::kDenied);
  FileState& f = it->second;
  const Interval iv = ToInterval(c.range);
  Reply r = Status(LockStatus::kDenied);
  for (size_t i = 0; i < f.waiters.size(); ++i) {
    const WaiterEntry& w = f.waiters[i];
    if (w.owner == *owner && w.interval() == iv &&
        w.exclusive == c.exclusive) {
      EraseWaiterAt(f, i);
      r = Status(LockStatus::kGranted);
      r.released = 1;
      break;
    }
  }
  if (r.status != LockStatus::kGranted) {
    // The waiter may already be an unconfirmed grant: cancelling it
    // releases the grant (the client stopped waiting).
    for (const LockEntry& l : f.locks) {
      if (l.unconfirmed && l.owner == *owner && l.interval() == iv &&
          l.exclusive == c.exclusive) {
        ReleaseUnconfirmed(f, l.token);
        r = Status(LockStatus::kGranted);
        r.released = 1;
        break;
      }
    }
  }
  if (r.status == LockStatus::kGranted) GrantWaiters(c.fh, f);
  owners_.Collect(*owner);
  CollectFile(c.fh);
  return r;
}

Reply LockCore::Test(const TestQuery& q, int64_t now_ms) const {
  if (import_marker_.has_value()) {
    return Invalid("the lock state is being replaced by a snapshot import");
  }
  if (auto r = CheckTarget(q.gateway, q.fh, &q.owner)) return *r;
  auto g = gateway_ids_.find(q.gateway);
  if (g != gateway_ids_.end() &&
      gateways_[g->second].grace_until_ms > now_ms) {
    return Status(LockStatus::kGrace, "grace period");
  }
  auto it = files_.find(q.fh);
  if (it == files_.end()) return Reply{};
  // An owner not yet interned holds nothing, so any lock conflicts by mode.
  const OwnerId owner = owners_.Find(q.owner).value_or(kNoOwner);
  const LockEntry* held =
      FindConflict(it->second, owner, ToInterval(q.range), q.exclusive);
  if (held == nullptr) return Reply{};
  return Denied(*held);
}

Reply LockCore::Denied(const LockEntry& held) const {
  Reply r = Status(LockStatus::kDenied);
  r.holder = Holder{owners_.Get(held.owner), ToRange(held.interval()),
                    held.exclusive};
  return r;
}

Reply LockCore::DoShare(const ShareCmd& c) {
  if (auto r = CheckTarget(c.gateway, c.fh, nullptr)) return *r;
  if (auto r = CheckName("client", c.client)) return *r;
  if (auto r = CheckOpaque("oh", c.oh)) return *r;
  std::optional<GatewayId> gw = GatewayFor(c.gateway);
  if (!gw) return NoLocks("gateways_max");
  if (GraceRefuses(*gw, c.client, c.reclaim)) {
    return Status(LockStatus::kGrace, "grace period");
  }
  RecordClientState(c.client, c.client_state);
  FileState& f = FileFor(c.fh);
  const auto access = static_cast<uint8_t>(c.access);
  const auto deny = static_cast<uint8_t>(c.deny);
  ShareEntry* mine = nullptr;
  Reply r;
  for (ShareEntry& s : f.shares) {
    if (s.client == c.client && s.oh == c.oh) {
      mine = &s;
    } else if ((access & static_cast<uint8_t>(s.deny)) != 0 ||
               (deny & static_cast<uint8_t>(s.access)) != 0) {
      r = Status(LockStatus::kDenied);
    }
  }
  if (r.status == LockStatus::kGranted) {
    if (mine != nullptr) {  // Same owner: the new modes replace the old.
      mine->access = c.access;
      mine->deny = c.deny;
      mine->gateway = *gw;
      mine->client_state = c.client_state;
      mine->granted_ms = now_ms_;
      PutShare(c.fh, *mine);
    } else if (shares_by_id_.size() >= options_.shares_max) {
      r = NoLocks("shares_max");
    } else {
      ShareEntry s;
      s.id = NewId();
      s.client = c.client;
      s.oh = c.oh;
      s.access = c.access;
      s.deny = c.deny;
      s.gateway = *gw;
      s.client_state = c.client_state;
      s.granted_ms = now_ms_;
      shares_by_id_[s.id] = c.fh;
      PutShare(c.fh, s);
      f.shares.push_back(std::move(s));
    }
  }
  CollectFile(c.fh);
  return r;
}

Reply LockCore::DoUnshare(const UnshareCmd& c) {
  if (auto r = CheckTarget(c.gateway, c.fh, nullptr)) return *r;
  if (auto r = CheckName("client", c.client)) return *r;
  if (auto r = CheckOpaque("oh", c.oh)) return *r;
  std::optional<GatewayId> gw = GatewayFor(c.gateway);
  if (!gw) return NoLocks("gateways_max");
  if (GraceRefuses(*gw, c.client, /*reclaim=*/false)) {
    return Status(LockStatus::kGrace, "grace period");
  }
  auto it = files_.find(c.fh);
  if (it == files_.end()) return Reply{};
  Reply r;
  auto& shares = it->second.shares;
  for (size_t i = 0; i < shares.size(); ++i) {
    if (shares[i].client == c.client && shares[i].oh == c.oh) {
      EraseShareAt(it->second, i);
      r.released = 1;
      break;
    }
  }
  CollectFile(c.fh);
  return r;
}

Reply LockCore::DoAck(const AckEventCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  auto gid = gateway_ids_.find(c.gateway);
  if (gid == gateway_ids_.end()) return Status(LockStatus::kNotFound);
  GatewayState& g = gateways_[gid->second];
  auto ev = g.outbox.find(c.sequence);
  if (ev == g.outbox.end()) return Status(LockStatus::kNotFound);
  Reply r;
  if (const auto* granted = std::get_if<GrantedEvent>(&ev->second.body)) {
    const uint64_t token = granted->fencing_token;
    auto u = unconfirmed_.find(token);
    if (u != unconfirmed_.end()) {
      const std::string fh = u->second.fh;
      FileState& f = files_.at(fh);
      if (c.outcome == AckOutcome::kDelivered) {
        r.fencing_token = ConfirmGrant(fh, f, token);
      } else {  // Refused or undeliverable: pass the range on.
        ReleaseUnconfirmed(f, token);
        r.released = 1;
      }
      GrantWaiters(fh, f);
      CollectFile(fh);
    }
  }
  DropEvent(g, c.sequence);  // ConfirmGrant may already have dropped it.
  return r;
}

Reply LockCore::DoTick() {
  Reply r;
  while (!grant_deadlines_.empty() &&
         grant_deadlines_.begin()->first <= now_ms_) {
    const uint64_t token = grant_deadlines_.begin()->second;
    const std::string fh = unconfirmed_.at(token).fh;
    FileState& f = files_.at(fh);
    ReleaseUnconfirmed(f, token);
    ++r.released;
    GrantWaiters(fh, f);
    CollectFile(fh);
  }
  for (GatewayState& g : gateways_) {
    if (g.grace_until_ms != 0 && g.grace_until_ms <= now_ms_) {
      g.grace_until_ms = 0;
      g.ledger.clear();
      PutGateway(g);
    }
  }
  return r;
}

Reply LockCore::DoForceRelease(const ForceReleaseCmd& c) {
  using Target = ForceReleaseCmd::Target;
  Reply r;
  switch (c.target) {
    case Target::kLock: {
      for (auto& [fh, f] : files_) {
        for (size_t i = 0; i < f.locks.size(); ++i) {
          if (f.locks[i].token != c.fencing_token) continue;
          if (f.locks[i].unconfirmed) {
            ReleaseUnconfirmed(f, c.fencing_token);
          } else {
            EraseLockAt(f, i);
          }
          const std::string name = fh;  // CollectFile may erase `fh`.
          GrantWaiters(name, f);
          CollectFile(name);
          r.released = 1;
          return r;
        }
      }
      return Status(LockStatus::kNotFound);
    }
    case Target::kOwner: {
      std::optional<OwnerId> owner = owners_.Find(c.owner);
      if (!owner) return r;
      const OwnerId id = *owner;
      r.released = ReleaseWhere(
          nullptr,
          [id](const HoldingRef& h) { return h.owner == id; });
      return r;
    }
    case Target::kClient: {
      if (auto bad = CheckName("client", c.client)) return *bad;
      r.released = ReleaseWhere(nullptr, [&](const HoldingRef& h) {
        return *h.client == c.client;
      });
      return r;
    }
    case Target::kFile: {
      if (files_.find(c.fh) == files_.end()) return r;
      r.released =
          ReleaseWhere(&c.fh, [](const HoldingRef&) { return true; });
      return r;
    }
  }
  return Invalid("unknown force-release target");
}

}  // namespace lockwarden::core
