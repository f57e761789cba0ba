// LockCore: NSM (monitor registry, state numbers, SM_NOTIFY, SIMU_CRASH),
// FREE_ALL, grace periods and the per-gateway event outboxes. See
// docs/core.md for the rules and why they are so.
#include <algorithm>

#include "absl/container/btree_set.h"
#include "absl/strings/str_cat.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

Reply WithState(int32_t nsm_state) {
  Reply r;
  r.nsm_state = nsm_state;
  return r;
}

}  // namespace

bool NsmStateNewer(int32_t a, int32_t b) {
  // RFC 1982 serial-number order on 32 bits: survives wraparound as long as
  // the two numbers are less than 2^31 apart.
  return static_cast<int32_t>(static_cast<uint32_t>(a) -
                              static_cast<uint32_t>(b)) > 0;
}

std::optional<internal::GatewayId> LockCore::GatewayFor(
    const std::string& name) {
  auto it = gateway_ids_.find(name);
  if (it != gateway_ids_.end()) return it->second;
  if (gateways_.size() >= options_.gateways_max) return std::nullopt;
  const auto id = static_cast<GatewayId>(gateways_.size());
  GatewayState g;
  g.name = name;
  g.nsm_state = 1;  // Odd: up. Created on first use.
  gateways_.push_back(std::move(g));
  gateway_ids_[name] = id;
  PutGateway(gateways_.back());
  return id;
}

bool LockCore::InGrace(const GatewayState& g) const {
  return g.grace_until_ms > now_ms_;
}

bool LockCore::GraceRefuses(GatewayId gid, const std::string& client,
                            bool reclaim) {
  GatewayState& g = gateways_[gid];
  // Linux: a reclaim outside grace is DENIED_GRACE_PERIOD.
  if (!InGrace(g)) return reclaim;
  auto it = g.ledger.find(client);
  if (reclaim) {
    if (it != g.ledger.end() && !it->second.reclaimed) {
      it->second.reclaimed = true;
      PutGateway(g);
    }
    return false;
  }
  // A non-reclaim request after reclaiming ends the client's reclaim phase;
  // when it is the last client on the ledger, grace lifts and this request
  // goes through.
  if (it != g.ledger.end() && it->second.reclaimed && !it->second.done) {
    it->second.done = true;
    PutGateway(g);
    MaybeLiftGrace(g);
    if (!InGrace(g)) return false;
  }
  return true;
}

void LockCore::MaybeLiftGrace(GatewayState& g) {
  if (g.grace_until_ms == 0) return;
  for (const auto& [client, flags] : g.ledger) {
    if (!flags.done) return;
  }
  g.grace_until_ms = 0;
  g.ledger.clear();
  PutGateway(g);
}

void LockCore::MarkLedgerDone(const std::string& client) {
  for (GatewayState& g : gateways_) {
    if (g.grace_until_ms == 0) continue;
    auto it = g.ledger.find(client);
    if (it == g.ledger.end() || it->second.done) continue;
    it->second.done = true;
    PutGateway(g);
    MaybeLiftGrace(g);
  }
}

void LockCore::RecordClientState(const std::string& client, int32_t state,
                                 absl::string_view address) {
  bool changed = false;
  auto it = client_states_.find(client);
  if (it == client_states_.end()) {
    // 0 = not reported (clients without NSM): nothing to record them by.
    if (state == 0 || client_states_.size() >= options_.clients_max) return;
    client_states_.emplace(client, state);
    changed = true;
  } else if (state != 0 && NsmStateNewer(state, it->second)) {
    it->second = state;
    changed = true;
  }
  if (!address.empty() && address.size() <= kClientAddressMaxBytes) {
    std::vector<std::string>& seen = client_addresses_[client];
    if (seen.empty() || seen.front() != address) {
      seen.erase(std::remove(seen.begin(), seen.end(), address), seen.end());
      seen.insert(seen.begin(), std::string(address));
      if (seen.size() > kClientAddressesMax) seen.resize(kClientAddressesMax);
      changed = true;
    }
  }
  if (changed) PutClient(client);
}

uint64_t LockCore::EmitEvent(GatewayId gid, EventBody body) {
  GatewayState& g = gateways_[gid];
  while (!g.outbox.empty() &&
         g.outbox.size() >= options_.events_per_gateway_max) {
    // Backstop only (waiters reserve their slot): evict the oldest. A
    // Granted grant whose event is gone simply expires and passes on.
    const Event& oldest = g.outbox.begin()->second;
    if (const auto* ge = std::get_if<GrantedEvent>(&oldest.body)) {
      auto u = unconfirmed_.find(ge->fencing_token);
      if (u != unconfirmed_.end()) {
        u->second.event_sequence = 0;
        const FileState& f = files_.at(u->second.fh);
        for (const LockEntry& l : f.locks) {
          if (l.token == ge->fencing_token) PutLock(u->second.fh, l);
        }
      }
    }
    DropEvent(g, g.outbox.begin()->first);
    ++counters_.events_dropped;
  }
  Event e;
  e.sequence = counters_.next_event_sequence++;
  e.gateway = g.name;
  e.created_ms = now_ms_;
  e.body = std::move(body);
  PutEvent(e);
  fx_->events.push_back(e);
  const uint64_t sequence = e.sequence;
  g.outbox.emplace(sequence, std::move(e));
  ++event_count_;
  return sequence;
}

void LockCore::DropEvent(GatewayState& g, uint64_t sequence) {
  if (g.outbox.erase(sequence) == 0) return;
  --event_count_;
  DeleteEvent(sequence);
}

bool LockCore::AnyHolding(
    absl::FunctionRef<bool(const HoldingRef&)> pred) const {
  for (const auto& [fh, f] : files_) {
    for (const LockEntry& l : f.locks) {
      if (pred({l.owner, &owners_.Get(l.owner).client, l.gateway,
                l.client_state, l.monitored})) {
        return true;
      }
    }
    for (const WaiterEntry& w : f.waiters) {
      if (pred({w.owner, &owners_.Get(w.owner).client, w.gateway,
                w.client_state, w.monitored})) {
        return true;
      }
    }
    for (const ShareEntry& s : f.shares) {
      if (pred({kNoOwner, &s.client, s.gateway, s.client_state, true})) return true;
    }
  }
  return false;
}

Reply LockCore::DoFreeAll(const FreeAllCmd& c) {
  if (auto r = CheckName("client", c.client)) return *r;
  Reply r;
  r.released = ReleaseWhere(
      nullptr, [&c](const HoldingRef& h) { return *h.client == c.client; });
  RecordClientState(c.client, c.state);
  MarkLedgerDone(c.client);
  return r;
}

Reply LockCore::DoMon(const MonCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  if (auto r = CheckName("mon_name", c.mon_name)) return *r;
  if (auto r = CheckName("my_id.my_name", c.my_id.my_name)) return *r;
  if (c.priv.size() != 16) {
    Reply r;
    r.status = LockStatus::kInvalid;
    r.message = "priv must be 16 bytes";
    return r;
  }
  std::optional<GatewayId> gid = GatewayFor(c.gateway);
  if (!gid) {
    Reply r;
    r.status = LockStatus::kNoLocks;
    r.message = "gateways_max reached";
    return r;
  }
  GatewayState& g = gateways_[*gid];
  internal::MonitorKey key{c.mon_name, c.my_id};
  auto it = g.monitors.find(key);
  if (it != g.monitors.end()) {
    if (it->second.priv != c.priv) {
      it->second.priv = c.priv;
      PutMonitor(g, it->first, it->second);
    }
    return WithState(g.nsm_state);
  }
  if (monitor_count_ >= options_.monitors_max) {
    Reply r;
    r.status = LockStatus::kNoLocks;
    r.message = "monitors_max reached";
    return r;
  }
  internal::MonitorEntry e{NewId(), c.priv};
  PutMonitor(g, key, e);
  g.monitors.emplace(std::move(key), std::move(e));
  ++monitor_count_;
  return WithState(g.nsm_state);
}

Reply LockCore::DoUnmon(const UnmonCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  if (auto r = CheckName("mon_name", c.mon_name)) return *r;
  auto gid = gateway_ids_.find(c.gateway);
  if (gid == gateway_ids_.end()) return WithState(1);
  GatewayState& g = gateways_[gid->second];
  auto it = g.monitors.find(internal::MonitorKey{c.mon_name, c.my_id});
  if (it != g.monitors.end()) {
    DeleteMonitor(it->second.id);
    g.monitors.erase(it);
    --monitor_count_;
  }
  return WithState(g.nsm_state);
}

Reply LockCore::DoUnmonAll(const UnmonAllCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  auto gid = gateway_ids_.find(c.gateway);
  if (gid == gateway_ids_.end()) return WithState(1);
  GatewayState& g = gateways_[gid->second];
  for (auto it = g.monitors.begin(); it != g.monitors.end();) {
    if (it->first.my_id == c.my_id) {
      DeleteMonitor(it->second.id);
      it = g.monitors.erase(it);
      --monitor_count_;
    } else {
      ++it;
    }
  }
  return WithState(g.nsm_state);
}

Reply LockCore::DoNotify(const NotifyCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  if (auto r = CheckName("mon_name", c.mon_name)) return *r;
  std::optional<GatewayId> gid = GatewayFor(c.gateway);
  if (!gid) {
    Reply r;
    r.status = LockStatus::kNoLocks;
    r.message = "gateways_max reached";
    return r;
  }
  const int32_t gateway_state = gateways_[*gid].nsm_state;
  // Monitored holdings of this client acquired under an older NSM state
  // (NM_LOCK locks are for clients without statd: only FREE_ALL ends them).
  auto older = [&c](const HoldingRef& h) {
    return h.monitored && *h.client == c.mon_name &&
           NsmStateNewer(c.state, h.client_state);
  };
  auto rec = client_states_.find(c.mon_name);
  const bool fresh =
      rec == client_states_.end() || NsmStateNewer(c.state, rec->second);
  // Equal to the record (learnt from a LOCK of the new incarnation that
  // overtook the SM_NOTIFY) still ends the older holdings; anything else
  // not newer is stale and changes nothing.
  if (!fresh && !(rec->second == c.state && AnyHolding(older))) {
    Reply r = WithState(gateway_state);
    r.stale = true;
    return r;
  }
  RecordClientState(c.mon_name, c.state);
  Reply r = WithState(gateway_state);
  r.released = ReleaseWhere(nullptr, older);
  MarkLedgerDone(c.mon_name);  // A rebooted client has nothing to reclaim.
  // One statd -> lockd callback per registration for this host, gateways in
  // name order so event sequences are deterministic.
  std::vector<GatewayId> order;
  for (GatewayId id = 0; id < gateways_.size(); ++id) order.push_back(id);
  std::sort(order.begin(), order.end(), [this](GatewayId a, GatewayId b) {
    return gateways_[a].name < gateways_[b].name;
  });
  for (GatewayId id : order) {
    std::vector<StatusCallbackEvent> callbacks;
    const GatewayState& g = gateways_[id];
    for (auto it = g.monitors.lower_bound(internal::MonitorKey{c.mon_name, {}});
         it != g.monitors.end() && it->first.mon_name == c.mon_name; ++it) {
      callbacks.push_back(StatusCallbackEvent{c.mon_name, c.state,
                                              it->first.my_id,
                                              it->second.priv});
    }
    for (StatusCallbackEvent& cb : callbacks) EmitEvent(id, std::move(cb));
  }
  return r;
}

Reply LockCore::DoBump(const std::string& gateway) {
  if (auto r = CheckName("gateway", gateway)) return *r;
  std::optional<GatewayId> gid = GatewayFor(gateway);
  if (!gid) {
    Reply r;
    r.status = LockStatus::kNoLocks;
    r.message = "gateways_max reached";
    return r;
  }
  const GatewayId id = *gid;
  // The ledger: every client that held locks or shares through the
  // identity, i.e. everyone who may come back to reclaim.
  absl::btree_set<std::string> holders;
  for (const auto& [fh, f] : files_) {
    for (const LockEntry& l : f.locks) {
      if (l.gateway == id) holders.insert(owners_.Get(l.owner).client);
    }
    for (const ShareEntry& s : f.shares) {
      if (s.gateway == id) holders.insert(s.client);
    }
  }
  Reply r;
  r.released = ReleaseWhere(
      nullptr, [id](const HoldingRef& h) { return h.gateway == id; });
  GatewayState& g = gateways_[id];
  g.nsm_state = static_cast<int32_t>(static_cast<uint32_t>(g.nsm_state) + 2);
  g.ledger.clear();
  for (const std::string& client : holders) g.ledger[client] = {};
  g.grace_until_ms = (holders.empty() || options_.grace_period_ms <= 0)
                         ? 0
                         : now_ms_ + options_.grace_period_ms;
  PutGateway(g);
  // One SM_NOTIFY per monitored host. Registrations stay: a client that
  // reclaims is still monitored; lockd's UNMON removes them.
  std::vector<std::string> targets;
  for (const auto& [key, entry] : g.monitors) {
    if (targets.empty() || targets.back() != key.mon_name) {
      targets.push_back(key.mon_name);
    }
  }
  for (std::string& target : targets) {
    auto seen = client_addresses_.find(target);
    std::vector<std::string> addresses =
        seen == client_addresses_.end() ? std::vector<std::string>{}
                                        : seen->second;
    EmitEvent(id, SmNotifyEvent{std::move(target), gateway,
                                gateways_[id].nsm_state,
                                std::move(addresses)});
  }
  r.nsm_state = gateways_[id].nsm_state;
  return r;
}

LockCore::GatewayState* LockCore::KnownGateway(const std::string& name, Reply& r) {
  auto it = gateway_ids_.find(name);
  if (it == gateway_ids_.end()) {
    r.status = LockStatus::kNotFound;
    r.message = "unknown gateway identity";
    return nullptr;
  }
  GatewayState& g = gateways_[it->second];
  r.nsm_state = g.nsm_state;
  return &g;
}

Reply LockCore::DoEndGrace(const EndGraceCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  Reply r;
  GatewayState* known = KnownGateway(c.gateway, r);
  if (known == nullptr) return r;
  GatewayState& g = *known;
  if (!InGrace(g)) {
    r.status = LockStatus::kGrace;
    r.message = "not in a grace period";
    return r;
  }
  // The state lost at the bump was released then (DoBump); ending grace
  // only lets non-reclaim requests through again.
  g.grace_until_ms = 0;
  g.ledger.clear();
  PutGateway(g);
  return r;
}

Reply LockCore::DoDrainGateway(const DrainGatewayCmd& c) {
  if (auto r = CheckName("gateway", c.gateway)) return *r;
  Reply r;
  GatewayState* known = KnownGateway(c.gateway, r);
  if (known == nullptr) return r;
  GatewayState& g = *known;
  if (g.draining != c.drain) {
    g.draining = c.drain;
    PutGateway(g);
  }
  return r;
}

Reply LockCore::Stat(absl::string_view gateway) const {
  auto it = gateway_ids_.find(std::string(gateway));
  return WithState(it == gateway_ids_.end() ? 1
                                            : gateways_[it->second].nsm_state);
}

}  // namespace lockwarden::core
