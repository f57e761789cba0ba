// LockCore: the records it persists (format in codec.h) and Snapshot().
// Request dedup records: lock_core_dedup.cc; Rebuild: lock_core_rebuild.cc.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {

using codec::IdKey;
using codec::Reader;
using codec::Writer;

// ---- Value encoders (shared by the deltas and Snapshot) -------------------

std::string LockCore::CountersValue() const {
  Writer w;
  w.U64(counters_.next_token);
  w.U64(counters_.next_event_sequence);
  w.U64(counters_.next_id);
  w.U64(counters_.events_dropped);
  return std::move(w).Finish();
}

std::string LockCore::LockValue(const std::string& fh,
                                const LockEntry& l) const {
  Writer w;
  w.Bytes(fh);
  w.OwnerFields(owners_.Get(l.owner));
  w.U64(l.start);
  w.U64(l.end);
  w.Bool(l.exclusive);
  w.Bytes(gateways_[l.gateway].name);
  w.I32(l.client_state);
  w.I64(l.granted_ms);
  w.Bool(l.unconfirmed);
  int64_t deadline = 0;
  uint64_t sequence = 0;
  if (l.unconfirmed) {
    const internal::UnconfirmedGrant& u = unconfirmed_.at(l.token);
    deadline = u.deadline_ms;
    sequence = u.event_sequence;
  }
  w.I64(deadline);
  w.U64(sequence);
  // Optional trailing field, written only for NM_LOCK locks so records of
  // monitored locks keep the format written before the field existed.
  if (!l.monitored) w.Bool(false);
  return std::move(w).Finish();
}

std::string LockCore::WaiterValue(const std::string& fh,
                                  const WaiterEntry& x) const {
  Writer w;
  w.Bytes(fh);
  w.OwnerFields(owners_.Get(x.owner));
  w.U64(x.start);
  w.U64(x.end);
  w.Bool(x.exclusive);
  w.Bool(x.reclaim);
  w.Bytes(gateways_[x.gateway].name);
  w.I32(x.client_state);
  w.I64(x.queued_ms);
  w.Bytes(x.callback);
  w.Bytes(x.cookie);
  if (!x.monitored) w.Bool(false);  // Optional trailing field, as for locks.
  return std::move(w).Finish();
}

std::string LockCore::ShareValue(const std::string& fh,
                                 const ShareEntry& s) const {
  Writer w;
  w.Bytes(fh);
  w.Bytes(s.client);
  w.Bytes(s.oh);
  w.U8(static_cast<uint8_t>(s.access));
  w.U8(static_cast<uint8_t>(s.deny));
  w.Bytes(gateways_[s.gateway].name);
  w.I32(s.client_state);
  w.I64(s.granted_ms);
  return std::move(w).Finish();
}

std::string LockCore::ClientValue(const std::string& name) const {
  Writer w;
  w.I32(client_states_.at(name));
  // Optional trailing address list (absent = none seen), so records written
  // before addresses were kept still read.
  auto seen = client_addresses_.find(name);
  if (seen != client_addresses_.end() && !seen->second.empty()) {
    w.U64(seen->second.size());
    for (const std::string& a : seen->second) w.Bytes(a);
  }
  return std::move(w).Finish();
}

std::string LockCore::GatewayValue(const GatewayState& g) const {
  Writer w;
  w.I32(g.nsm_state);
  w.I64(g.grace_until_ms);
  w.U64(g.ledger.size());
  for (const auto& [client, flags] : g.ledger) {
    w.Bytes(client);
    w.Bool(flags.reclaimed);
    w.Bool(flags.done);
  }
  // Optional trailing field, written only while draining so records of
  // identities that never drained keep the format written before it.
  if (g.draining) w.Bool(true);
  return std::move(w).Finish();
}

std::string LockCore::MonitorValue(const GatewayState& g,
                                   const internal::MonitorKey& k,
                                   const internal::MonitorEntry& e) const {
  Writer w;
  w.Bytes(g.name);
  w.Bytes(k.mon_name);
  w.Bytes(k.my_id.my_name);
  w.U64(k.my_id.my_prog);
  w.U64(k.my_id.my_vers);
  w.U64(k.my_id.my_proc);
  w.Bytes(e.priv);
  return std::move(w).Finish();
}

std::string LockCore::EventValue(const Event& e) const {
  Writer w;
  codec::WriteEvent(w, e);
  return std::move(w).Finish();
}

// ---- Delta emission (no-ops outside Apply, e.g. during Rebuild) -----------

void LockCore::Put(std::string key, std::string value) {
  if (fx_ != nullptr) {
    fx_->delta.push_back(Mutation::Put(std::move(key), std::move(value)));
  }
}

void LockCore::Delete(std::string key) {
  if (fx_ != nullptr) fx_->delta.push_back(Mutation::Delete(std::move(key)));
}

void LockCore::PutCounters() {
  Put(std::string(codec::kCountersKey), CountersValue());
  if (fx_ != nullptr) counters_persisted_ = true;
}
void LockCore::PutLock(const std::string& fh, const LockEntry& l) {
  if (fx_ != nullptr) Put(IdKey(codec::kLockPrefix, l.token), LockValue(fh, l));
}
void LockCore::DeleteLock(uint64_t token) {
  Delete(IdKey(codec::kLockPrefix, token));
}
void LockCore::PutWaiter(const std::string& fh, const WaiterEntry& w) {
  if (fx_ != nullptr) Put(IdKey(codec::kWaiterPrefix, w.id), WaiterValue(fh, w));
}
void LockCore::DeleteWaiter(uint64_t id) {
  Delete(IdKey(codec::kWaiterPrefix, id));
}
void LockCore::PutShare(const std::string& fh, const ShareEntry& s) {
  if (fx_ != nullptr) Put(IdKey(codec::kSharePrefix, s.id), ShareValue(fh, s));
}
void LockCore::DeleteShare(uint64_t id) {
  Delete(IdKey(codec::kSharePrefix, id));
}
void LockCore::PutClient(const std::string& name) {
  Put(absl::StrCat(codec::kClientPrefix, name),
      ClientValue(name));
}
void LockCore::PutGateway(const GatewayState& g) {
  Put(absl::StrCat(codec::kGatewayPrefix, g.name), GatewayValue(g));
}
void LockCore::PutMonitor(const GatewayState& g, const internal::MonitorKey& k,
                          const internal::MonitorEntry& e) {
  Put(IdKey(codec::kMonitorPrefix, e.id), MonitorValue(g, k, e));
}
void LockCore::DeleteMonitor(uint64_t id) {
  Delete(IdKey(codec::kMonitorPrefix, id));
}
void LockCore::PutEvent(const Event& e) {
  Put(IdKey(codec::kEventPrefix, e.sequence), EventValue(e));
}
void LockCore::DeleteEvent(uint64_t sequence) {
  Delete(IdKey(codec::kEventPrefix, sequence));
}

// ---- Snapshot --------------------------------------------------------------

std::map<std::string, std::string> LockCore::Snapshot() const {
  if (import_marker_.has_value()) return import_records_;
  std::map<std::string, std::string> out;
  // A fresh core has persisted nothing, not even its counters.
  if (counters_persisted_) {
    out[std::string(codec::kCountersKey)] = CountersValue();
  }
  for (const auto& [fh, f] : files_) {
    for (const LockEntry& l : f.locks) {
      out[IdKey(codec::kLockPrefix, l.token)] = LockValue(fh, l);
    }
    for (const WaiterEntry& w : f.waiters) {
      out[IdKey(codec::kWaiterPrefix, w.id)] = WaiterValue(fh, w);
    }
    for (const ShareEntry& s : f.shares) {
      out[IdKey(codec::kSharePrefix, s.id)] = ShareValue(fh, s);
    }
  }
  for (const auto& [name, state] : client_states_) {
    out[absl::StrCat(codec::kClientPrefix, name)] = ClientValue(name);
  }
  for (const GatewayState& g : gateways_) {
    out[absl::StrCat(codec::kGatewayPrefix, g.name)] = GatewayValue(g);
    for (const auto& [k, e] : g.monitors) {
      out[IdKey(codec::kMonitorPrefix, e.id)] = MonitorValue(g, k, e);
    }
    for (const auto& [seq, e] : g.outbox) {
      out[IdKey(codec::kEventPrefix, seq)] = EventValue(e);
    }
  }
  const std::vector<internal::DedupEntry>& slots = dedup_ring_->slots;
  for (size_t slot = 0; slot < slots.size(); ++slot) {
    const internal::DedupEntry& e = slots[slot];
    if (e.sequence == 0 || !e.at_slot) continue;
    out[codec::DedupRingKey(DedupRingSize(), slot)] = DedupValue(e);
  }
  for (const auto& [key, stale] : dedup_stale_) out[key] = stale.value;
  return out;
}

}  // namespace lockwarden::core
