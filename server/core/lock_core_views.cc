// LockCore: read-only views for the admin API, CheckInvariants, DebugString,
// and the owner interning table.
#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace internal {

std::optional<OwnerId> OwnerTable::Intern(const Owner& owner, size_t max) {
  auto it = ids_.find(owner);
  if (it != ids_.end()) return it->second;
  if (ids_.size() >= max) return std::nullopt;
  OwnerId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<OwnerId>(slots_.size());
    slots_.emplace_back();
  }
  slots_[id] = Slot{owner, 0, true};
  ids_.emplace(owner, id);
  return id;
}

void OwnerTable::Collect(OwnerId id) {
  if (id >= slots_.size() || !slots_[id].live || slots_[id].refs != 0) return;
  ids_.erase(slots_[id].owner);
  slots_[id] = Slot{};
  free_.push_back(id);
}

std::optional<OwnerId> OwnerTable::Find(const Owner& owner) const {
  auto it = ids_.find(owner);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace internal

namespace {

bool Matches(const LockFilter& filter, const std::string& fh,
             const std::string& client, const std::string& gateway) {
  return (filter.fh.empty() || filter.fh == fh) &&
         (filter.client.empty() || filter.client == client) &&
         (filter.gateway.empty() || filter.gateway == gateway);
}

template <typename T, typename Key>
void Page(std::vector<T>& rows, uint64_t after, size_t limit, Key key) {
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [&](const T& t) { return key(t) <= after; }),
             rows.end());
  std::sort(rows.begin(), rows.end(),
            [&](const T& a, const T& b) { return key(a) < key(b); });
  if (rows.size() > limit) rows.resize(limit);
}

}  // namespace

std::vector<LockInfo> LockCore::ListLocks(const LockFilter& filter,
                                          uint64_t after, size_t limit) const {
  std::vector<LockInfo> rows;
  for (const auto& [fh, f] : files_) {
    if (!filter.fh.empty() && filter.fh != fh) continue;
    for (const LockEntry& l : f.locks) {
      const Owner& owner = owners_.Get(l.owner);
      const std::string& gateway = gateways_[l.gateway].name;
      if (l.token <= after || !Matches(filter, fh, owner.client, gateway)) {
        continue;
      }
      LockInfo info;
      info.fencing_token = l.token;
      info.fh = fh;
      info.owner = owner;
      info.range = ToRange(l.interval());
      info.exclusive = l.exclusive;
      info.gateway = gateway;
      info.client_state = l.client_state;
      info.monitored = l.monitored;
      info.granted_ms = l.granted_ms;
      info.unconfirmed = l.unconfirmed;
      if (l.unconfirmed) {
        const auto& u = unconfirmed_.at(l.token);
        info.grant_deadline_ms = u.deadline_ms;
        info.grant_event_sequence = u.event_sequence;
      }
      rows.push_back(std::move(info));
    }
  }
  Page(rows, after, limit, [](const LockInfo& i) { return i.fencing_token; });
  return rows;
}

std::vector<WaiterInfo> LockCore::ListWaiters(const LockFilter& filter,
                                              uint64_t after,
                                              size_t limit) const {
  std::vector<WaiterInfo> rows;
  for (const FileState* f : waiting_files_) {
    for (const WaiterEntry& w : f->waiters) {
      const Owner& owner = owners_.Get(w.owner);
      const std::string& gateway = gateways_[w.gateway].name;
      const std::string& fh = FileName(*f);
      if (w.id <= after || !Matches(filter, fh, owner.client, gateway)) {
        continue;
      }
      rows.push_back(WaiterInfo{w.id, fh, owner, ToRange(w.interval()),
                                w.exclusive, w.reclaim, gateway,
                                w.client_state, w.queued_ms, w.callback,
                                w.cookie, w.monitored});
    }
  }
  Page(rows, after, limit, [](const WaiterInfo& i) { return i.id; });
  return rows;
}

std::vector<ShareInfo> LockCore::ListShares(const LockFilter& filter,
                                            uint64_t after,
                                            size_t limit) const {
  std::vector<ShareInfo> rows;
  for (const auto& [id, fh] : shares_by_id_) {
    if (id <= after) continue;
    for (const ShareEntry& s : files_.at(fh).shares) {
      const std::string& gateway = gateways_[s.gateway].name;
      if (s.id != id || !Matches(filter, fh, s.client, gateway)) continue;
      rows.push_back(ShareInfo{s.id, fh, s.client, s.oh, s.access, s.deny,
                               gateway, s.client_state, s.granted_ms});
    }
  }
  Page(rows, after, limit, [](const ShareInfo& i) { return i.id; });
  return rows;
}

std::vector<WaitForEdge> LockCore::WaitForEdges() const {
  std::vector<WaitForEdge> edges;
  for (const FileState* f : waiting_files_) {
    const std::string& fh = FileName(*f);
    for (size_t i = 0; i < f->waiters.size(); ++i) {
      const WaiterEntry& w = f->waiters[i];
      std::vector<OwnerId> held, queued;
      BlockersOf(*f, w.owner, w.interval(), w.exclusive, 0, held);
      for (OwnerId h : held) {
        edges.push_back({owners_.Get(w.owner), owners_.Get(h), fh, w.id,
                         false});
      }
      for (size_t j = 0; j < i; ++j) {
        const WaiterEntry& e = f->waiters[j];
        if (e.owner != w.owner && Overlaps(e.interval(), w.interval()) &&
            (e.exclusive || w.exclusive)) {
          edges.push_back({owners_.Get(w.owner), owners_.Get(e.owner), fh,
                           w.id, true});
        }
      }
    }
  }
  std::sort(edges.begin(), edges.end(),
            [](const WaitForEdge& a, const WaitForEdge& b) {
              return a.waiter_id < b.waiter_id;
            });
  return edges;
}

std::vector<ClientInfo> LockCore::ListClients() const {
  std::vector<ClientInfo> rows;
  for (const auto& [name, state] : client_states_) {
    auto seen = client_addresses_.find(name);
    rows.push_back({name, state,
                    seen == client_addresses_.end()
                        ? std::vector<std::string>{}
                        : seen->second});
  }
  std::sort(rows.begin(), rows.end(),
            [](const ClientInfo& a, const ClientInfo& b) {
              return a.name < b.name;
            });
  return rows;
}

std::vector<MonitorInfo> LockCore::ListMonitors(
    absl::string_view gateway) const {
  std::vector<MonitorInfo> rows;
  for (const GatewayState& g : gateways_) {
    if (!gateway.empty() && g.name != gateway) continue;
    for (const auto& [k, e] : g.monitors) {
      rows.push_back({g.name, k.mon_name, k.my_id, e.priv});
    }
  }
  std::stable_sort(rows.begin(), rows.end(),
                   [](const MonitorInfo& a, const MonitorInfo& b) {
                     return a.gateway < b.gateway;
                   });
  return rows;
}

std::vector<GatewayInfo> LockCore::ListGateways() const {
  std::vector<GatewayInfo> rows;
  for (const GatewayState& g : gateways_) {
    GatewayInfo info{g.name, g.nsm_state, g.grace_until_ms, {},
                     g.outbox.size(), g.draining};
    for (const auto& [client, flags] : g.ledger) {
      info.ledger.push_back({client, flags.reclaimed, flags.done});
    }
    rows.push_back(std::move(info));
  }
  std::sort(rows.begin(), rows.end(),
            [](const GatewayInfo& a, const GatewayInfo& b) {
              return a.name < b.name;
            });
  return rows;
}

std::vector<Event> LockCore::PendingEvents(absl::string_view gateway,
                                           uint64_t after_sequence,
                                           size_t limit) const {
  std::vector<Event> rows;
  auto it = gateway_ids_.find(std::string(gateway));
  if (it == gateway_ids_.end()) return rows;
  const auto& outbox = gateways_[it->second].outbox;
  for (auto e = outbox.upper_bound(after_sequence);
       e != outbox.end() && rows.size() < limit; ++e) {
    rows.push_back(e->second);
  }
  return rows;
}

CoreCounters LockCore::Counters() const {
  CoreCounters c;
  c.files = files_.size();
  c.locks = lock_count_;
  c.unconfirmed_grants = unconfirmed_.size();
  c.waiters = waiter_count_;
  c.shares = shares_by_id_.size();
  c.owners = owners_.size();
  c.clients = client_states_.size();
  c.gateways = gateways_.size();
  c.monitors = monitor_count_;
  c.events = event_count_;
  c.dedup_entries = dedup_index_.size();
  c.dedup_records_to_migrate = dedup_stale_.size();
  c.next_fencing_token = counters_.next_token;
  c.next_event_sequence = counters_.next_event_sequence;
  c.next_id = counters_.next_id;
  c.events_dropped = counters_.events_dropped;
  return c;
}

int64_t LockCore::NextDeadlineMs() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  if (!grant_deadlines_.empty()) next = grant_deadlines_.begin()->first;
  for (const GatewayState& g : gateways_) {
    if (g.grace_until_ms != 0) next = std::min(next, g.grace_until_ms);
  }
  return next;
}

}  // namespace lockwarden::core
