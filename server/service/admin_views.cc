// AdminService views beyond locks/shares/waiters: the wait-for graph,
// clients, monitors, gateways, grace status and pending events.
//
// Name-ordered listings (clients, monitors, gateways) page by position in
// the ordered, filtered list: the token is the number of rows already
// returned. Rows added or removed between pages can shift a row across a
// page boundary; a listing is a snapshot per page, not across pages.
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/service/admin_service.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace {

using admin_internal::Finish;
using admin_internal::UnknownGatewayError;
using admin_internal::ParsePage;

// Rows per ReadNow while counting holdings: the core's mutex is released
// between chunks so a count over a million locks does not stall the service
// for the whole scan. The core's List* views cost O(table) per call (they
// collect, sort and cut), so chunks are large: ~16 calls for a million rows.
constexpr size_t kCountChunk = 65536;

struct Holdings {
  uint64_t locks = 0;
  uint64_t shares = 0;
  uint64_t waiters = 0;
  absl::btree_set<std::string> gateways;
};

struct HoldingCounts {
  absl::btree_map<std::string, Holdings> by_client;
  absl::btree_map<std::string, uint64_t> locks_by_gateway;
  absl::btree_map<std::string, absl::btree_set<std::string>> clients_by_gateway;
};

// Counts every lock, share and waiter by client and gateway identity, in
// chunks. Not atomic across chunks: under concurrent traffic a count is
// approximate (each row is counted at most once).
absl::Status CountHoldings(CoreRunner* runner, HoldingCounts* out) {
  const core::LockFilter all;
  for (uint64_t after = 0;;) {
    std::vector<core::LockInfo> rows;
    LW_RETURN_IF_ERROR(runner->ReadNow(
        [&](const core::LockCore& c, int64_t) { rows = c.ListLocks(all, after, kCountChunk); }));
    for (const core::LockInfo& l : rows) {
      Holdings& h = out->by_client[l.owner.client];
      ++h.locks;
      h.gateways.insert(l.gateway);
      ++out->locks_by_gateway[l.gateway];
      out->clients_by_gateway[l.gateway].insert(l.owner.client);
      after = l.fencing_token;
    }
    if (rows.size() < kCountChunk) break;
  }
  for (uint64_t after = 0;;) {
    std::vector<core::ShareInfo> rows;
    LW_RETURN_IF_ERROR(runner->ReadNow(
        [&](const core::LockCore& c, int64_t) { rows = c.ListShares(all, after, kCountChunk); }));
    for (const core::ShareInfo& s : rows) {
      Holdings& h = out->by_client[s.client];
      ++h.shares;
      h.gateways.insert(s.gateway);
      out->clients_by_gateway[s.gateway].insert(s.client);
      after = s.id;
    }
    if (rows.size() < kCountChunk) break;
  }
  for (uint64_t after = 0;;) {
    std::vector<core::WaiterInfo> rows;
    LW_RETURN_IF_ERROR(runner->ReadNow(
        [&](const core::LockCore& c, int64_t) { rows = c.ListWaiters(all, after, kCountChunk); }));
    for (const core::WaiterInfo& w : rows) {
      Holdings& h = out->by_client[w.owner.client];
      ++h.waiters;
      h.gateways.insert(w.gateway);
      out->clients_by_gateway[w.gateway].insert(w.owner.client);
      after = w.id;
    }
    if (rows.size() < kCountChunk) break;
  }
  return absl::OkStatus();
}

// Appends rows [after, after + limit) of `rows` via `emit`; returns the next
// page token ("" when the end was reached).
template <typename Row, typename EmitFn>
std::string PageByOffset(const std::vector<Row>& rows, uint64_t after, size_t limit,
                         EmitFn emit) {
  size_t i = std::min<uint64_t>(after, rows.size());
  const size_t end = std::min(rows.size(), i + limit);
  for (; i < end; ++i) emit(rows[i]);
  return end < rows.size() ? absl::StrCat(end) : std::string();
}

bool EdgeMatches(const v1::LockFilter& f, const core::WaitForEdge& e) {
  if (!f.file_handle().empty() && f.file_handle() != e.fh) return false;
  auto owner_matches = [&f](const core::Owner& o) {
    if (!f.client_name().empty() && o.client != f.client_name()) return false;
    if (f.has_owner() && !(o.client == f.owner().client_name() &&
                           o.svid == f.owner().svid() && o.oh == f.owner().oh())) {
      return false;
    }
    return true;
  };
  return owner_matches(e.waiter) || owner_matches(e.holder);
}

// Cycles in the owner graph (Tarjan's strongly connected components of size
// > 1, or a self-loop). The server refuses deadlocks, so normally none.
std::vector<std::vector<core::Owner>> FindCycles(const std::vector<core::WaitForEdge>& edges) {
  std::vector<core::Owner> owners;
  absl::flat_hash_map<core::Owner, size_t> index;
  auto id_of = [&](const core::Owner& o) {
    auto [it, inserted] = index.try_emplace(o, owners.size());
    if (inserted) owners.push_back(o);
    return it->second;
  };
  std::vector<std::vector<size_t>> adj;
  std::vector<bool> self_loop;
  for (const core::WaitForEdge& e : edges) {
    const size_t a = id_of(e.waiter);
    const size_t b = id_of(e.holder);
    adj.resize(owners.size());
    self_loop.resize(owners.size());
    adj[a].push_back(b);
    if (a == b) self_loop[a] = true;
  }
  const size_t n = owners.size();
  std::vector<int> low(n, 0), num(n, -1);
  std::vector<bool> on_stack(n, false);
  std::vector<size_t> stack;
  std::vector<std::vector<core::Owner>> cycles;
  int counter = 0;
  // Iterative DFS (the graph may be deep): frames of (node, next edge).
  for (size_t root = 0; root < n; ++root) {
    if (num[root] != -1) continue;
    std::vector<std::pair<size_t, size_t>> frames{{root, 0}};
    num[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = true;
    while (!frames.empty()) {
      auto& [v, next] = frames.back();
      if (next < adj[v].size()) {
        const size_t w = adj[v][next++];
        if (num[w] == -1) {
          num[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack[w] = true;
          frames.push_back({w, 0});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], num[w]);
        }
        continue;
      }
      const size_t done = v;
      frames.pop_back();
      if (!frames.empty()) {
        low[frames.back().first] = std::min(low[frames.back().first], low[done]);
      }
      if (low[done] != num[done]) continue;
      std::vector<core::Owner> component;
      size_t w;
      do {
        w = stack.back();
        stack.pop_back();
        on_stack[w] = false;
        component.push_back(owners[w]);
      } while (w != done);
      if (component.size() > 1 || self_loop[done]) cycles.push_back(std::move(component));
    }
  }
  return cycles;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::GetWaitForGraph(
    grpc::CallbackServerContext* ctx, const v1::GetWaitForGraphRequest* request,
    v1::GetWaitForGraphResponse* response) {
  std::vector<core::WaitForEdge> edges;
  // Ranges are not part of core::WaitForEdge: look them up while the core is
  // locked (the waiter by id; the holder's first lock on the file).
  absl::flat_hash_map<uint64_t, core::Range> waiter_ranges;
  std::vector<core::Range> holder_ranges;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (core::WaitForEdge& e : core.WaitForEdges()) {
      if (!EdgeMatches(request->filter(), e)) continue;
      if (edges.size() == kWaitForEdgesMax) {
        response->set_truncated(true);
        break;
      }
      edges.push_back(std::move(e));
    }
    absl::flat_hash_map<std::string, std::vector<core::LockInfo>> locks_by_file;
    absl::flat_hash_map<std::string, std::vector<core::WaiterInfo>> waiters_by_file;
    for (const core::WaitForEdge& e : edges) {
      core::LockFilter only_file;
      only_file.fh = e.fh;
      if (!waiters_by_file.contains(e.fh)) {
        waiters_by_file[e.fh] =
            core.ListWaiters(only_file, 0, core.options().waiters_per_file_max);
        for (const core::WaiterInfo& w : waiters_by_file[e.fh]) waiter_ranges[w.id] = w.range;
      }
      core::Range holder_range;
      if (e.via_waiter) {
        for (const core::WaiterInfo& w : waiters_by_file[e.fh]) {
          if (w.owner == e.holder) {
            holder_range = w.range;
            break;
          }
        }
      } else {
        only_file.client = e.holder.client;
        for (const core::LockInfo& l : core.ListLocks(only_file, 0, 64)) {
          if (l.owner == e.holder) {
            holder_range = l.range;
            break;
          }
        }
      }
      holder_ranges.push_back(holder_range);
    }
  });
  if (!s.ok()) return Finish(ctx, s);
  for (size_t i = 0; i < edges.size(); ++i) {
    const core::WaitForEdge& e = edges[i];
    v1::WaitForEdge* out = response->add_edges();
    ToProto(e.waiter, out->mutable_waiter());
    ToProto(e.holder, out->mutable_holder());
    out->set_file_handle(e.fh);
    ToProto(waiter_ranges[e.waiter_id], out->mutable_waiter_range());
    ToProto(holder_ranges[i], out->mutable_holder_range());
  }
  for (const std::vector<core::Owner>& cycle : FindCycles(edges)) {
    v1::WaitForCycle* out = response->add_cycles();
    for (const core::Owner& o : cycle) ToProto(o, out->add_owners());
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListClients(
    grpc::CallbackServerContext* ctx, const v1::ListClientsRequest* request,
    v1::ListClientsResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Finish(ctx, s);
  }
  absl::btree_map<std::string, int32_t> states;
  absl::flat_hash_map<std::string, std::vector<std::string>> recorded_addresses;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (const core::ClientInfo& c : core.ListClients()) {
      states[c.name] = c.nsm_state;
      if (!c.addresses.empty()) recorded_addresses[c.name] = c.addresses;
    }
  });
  HoldingCounts counts;
  if (s.ok()) s = CountHoldings(runner_, &counts);
  if (!s.ok()) return Finish(ctx, s);
  // A client is known by its recorded NSM state or by what it holds.
  absl::btree_set<std::string> names;
  for (const auto& [name, state] : states) names.insert(name);
  for (const auto& [name, h] : counts.by_client) names.insert(name);
  std::vector<v1::Client> rows;
  for (const std::string& name : names) {
    if (!absl::StartsWith(name, request->client_name_prefix())) continue;
    const auto h = counts.by_client.find(name);
    if (!request->gateway_id().empty() &&
        (h == counts.by_client.end() || !h->second.gateways.contains(request->gateway_id()))) {
      continue;
    }
    v1::Client c;
    c.set_client_name(name);
    if (auto st = states.find(name); st != states.end()) c.set_nsm_state(st->second);
    if (h != counts.by_client.end()) {
      c.set_lock_count(h->second.locks);
      c.set_share_count(h->second.shares);
      c.set_waiter_count(h->second.waiters);
      for (const std::string& g : h->second.gateways) c.add_gateway_ids(g);
    }
    // Activity is what this leader has seen since it started serving.
    if (std::optional<int64_t> ms = activity_.ClientLastActivityMs(name)) {
      SetTimestampMs(*ms, c.mutable_last_activity_at());
    }
    // The durable addresses the core records from LOCK sources first, then
    // SM_NOTIFY sources this leader saw; distinct, at most 4 (as the core).
    std::vector<std::string> addresses;
    if (auto rec = recorded_addresses.find(name); rec != recorded_addresses.end()) {
      addresses = rec->second;
    }
    for (const std::string& a : activity_.ClientAddresses(name)) {
      if (std::find(addresses.begin(), addresses.end(), a) == addresses.end()) {
        addresses.push_back(a);
      }
    }
    if (addresses.size() > kClientAddressesMax) addresses.resize(kClientAddressesMax);
    for (const std::string& a : addresses) c.add_addresses(a);
    rows.push_back(std::move(c));
  }
  response->set_next_page_token(PageByOffset(
      rows, after, limit, [&](const v1::Client& c) { *response->add_clients() = c; }));
  response->set_total_size(rows.size());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListMonitors(
    grpc::CallbackServerContext* ctx, const v1::ListMonitorsRequest* request,
    v1::ListMonitorsResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Finish(ctx, s);
  }
  std::vector<core::MonitorInfo> rows;
  // Every registration the core keeps is an SM_MON one: NLM's "monitored"
  // locks register through the client's own statd (SM_MON), not implicitly.
  const bool kind_ok = request->kind() == v1::MONITOR_KIND_UNSPECIFIED ||
                       request->kind() == v1::MONITOR_KIND_SM_MON;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    if (!kind_ok) return;
    for (core::MonitorInfo& m : core.ListMonitors(request->gateway_id())) {
      if (!request->mon_name().empty() && m.mon_name != request->mon_name()) continue;
      rows.push_back(std::move(m));
    }
  });
  if (!s.ok()) return Finish(ctx, s);
  std::stable_sort(rows.begin(), rows.end(),
                   [](const core::MonitorInfo& a, const core::MonitorInfo& b) {
                     return std::tie(a.gateway, a.mon_name) < std::tie(b.gateway, b.mon_name);
                   });
  response->set_next_page_token(
      PageByOffset(rows, after, limit, [&](const core::MonitorInfo& m) {
        v1::Monitor* out = response->add_monitors();
        out->set_gateway_id(m.gateway);
        out->set_mon_name(m.mon_name);
        out->mutable_my_id()->set_my_name(m.my_id.my_name);
        out->mutable_my_id()->set_my_prog(m.my_id.my_prog);
        out->mutable_my_id()->set_my_vers(m.my_id.my_vers);
        out->mutable_my_id()->set_my_proc(m.my_id.my_proc);
        out->set_priv(m.priv);
        out->set_kind(v1::MONITOR_KIND_SM_MON);
      }));
  response->set_total_size(rows.size());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListGateways(
    grpc::CallbackServerContext* ctx, const v1::ListGatewaysRequest* request,
    v1::ListGatewaysResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Finish(ctx, s);
  }
  struct Row {
    core::GatewayInfo info;
    uint64_t grant_events = 0;
    uint64_t notification_events = 0;
    uint64_t monitored_clients = 0;
  };
  std::vector<Row> rows;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (core::GatewayInfo& g : core.ListGateways()) {
      if (!request->gateway_id().empty() && g.name != request->gateway_id()) continue;
      Row row;
      for (const core::Event& e :
           core.PendingEvents(g.name, 0, core.options().events_per_gateway_max)) {
        if (std::holds_alternative<core::GrantedEvent>(e.body)) {
          ++row.grant_events;
        } else {
          ++row.notification_events;
        }
      }
      absl::btree_set<std::string> monitored;
      for (const core::MonitorInfo& m : core.ListMonitors(g.name)) monitored.insert(m.mon_name);
      row.monitored_clients = monitored.size();
      row.info = std::move(g);
      rows.push_back(std::move(row));
    }
  });
  HoldingCounts counts;
  if (s.ok()) s = CountHoldings(runner_, &counts);
  if (!s.ok()) return Finish(ctx, s);
  response->set_next_page_token(PageByOffset(rows, after, limit, [&](const Row& r) {
    v1::Gateway* out = response->add_gateways();
    out->set_gateway_id(r.info.name);
    out->set_nsm_state(r.info.nsm_state);
    out->set_in_grace(r.info.grace_until_ms != 0);
    if (r.info.grace_until_ms != 0) {
      SetTimestampMs(r.info.grace_until_ms, out->mutable_grace_ends_at());
    }
    out->set_pending_grant_events(r.grant_events);
    out->set_pending_notification_events(r.notification_events);
    auto locks = counts.locks_by_gateway.find(r.info.name);
    out->set_lock_count(locks == counts.locks_by_gateway.end() ? 0 : locks->second);
    out->set_monitored_client_count(r.monitored_clients);
    out->set_draining(r.info.draining);
    if (std::optional<int64_t> ms = activity_.GatewayLastSeenMs(r.info.name)) {
      SetTimestampMs(*ms, out->mutable_last_seen_at());
    }
    for (const StreamInfo& st : activity_.Streams(r.info.name)) {
      v1::GatewayStream* gs = out->add_streams();
      switch (st.kind) {
        case StreamKind::kGrants: gs->set_kind(v1::STREAM_KIND_GRANTS); break;
        case StreamKind::kNotifications: gs->set_kind(v1::STREAM_KIND_NOTIFICATIONS); break;
        case StreamKind::kSession: gs->set_kind(v1::STREAM_KIND_SESSION); break;
      }
      gs->set_instance_name(st.instance_name);
      gs->set_peer_address(st.peer);
      SetTimestampMs(st.connected_ms, gs->mutable_connected_at());
    }
  }));
  response->set_total_size(rows.size());
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetGraceStatus(
    grpc::CallbackServerContext* ctx, const v1::GetGraceStatusRequest* request,
    v1::GetGraceStatusResponse* response) {
  bool found = false;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (const core::GatewayInfo& g : core.ListGateways()) {
      if (!request->gateway_id().empty()) {
        if (g.name != request->gateway_id()) continue;
      } else if (g.grace_until_ms == 0 && g.ledger.empty()) {
        continue;  // "All that are in grace or have a ledger."
      }
      found = true;
      v1::GraceStatus* out = response->add_gateways();
      out->set_gateway_id(g.name);
      out->set_in_grace(g.grace_until_ms != 0);
      if (g.grace_until_ms != 0) {
        SetTimestampMs(g.grace_until_ms, out->mutable_ends_at());
        SetTimestampMs(g.grace_until_ms - core.options().grace_period_ms,
                       out->mutable_started_at());
      }
      out->set_nsm_state(g.nsm_state);
      for (const core::LedgerEntry& l : g.ledger) {
        v1::ReclaimLedgerEntry* e = out->add_ledger();
        e->set_client_name(l.client);
        e->set_reclaimed(l.reclaimed);
        // "done" without a reclaim: the client rebooted or gave up; its old
        // state was freed.
        e->set_freed(l.done && !l.reclaimed);
      }
    }
  });
  if (!s.ok()) return Finish(ctx, s);
  if (!found && !request->gateway_id().empty()) {
    return Finish(ctx, UnknownGatewayError(request->gateway_id()));
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListPendingEvents(
    grpc::CallbackServerContext* ctx, const v1::ListPendingEventsRequest* request,
    v1::ListPendingEventsResponse* response) {
  size_t limit;
  uint64_t after;
  if (absl::Status s = ParsePage(request->page_size(), request->page_token(), &limit, &after);
      !s.ok()) {
    return Finish(ctx, s);
  }
  // Ordered by gateway identity, kind (grants first), then sequence.
  std::vector<v1::PendingEvent> rows;
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    for (const core::GatewayInfo& g : core.ListGateways()) {
      if (!request->gateway_id().empty() && g.name != request->gateway_id()) continue;
      std::vector<v1::PendingEvent> grants, notes;
      for (const core::Event& e :
           core.PendingEvents(g.name, 0, core.options().events_per_gateway_max)) {
        v1::PendingEvent p;
        p.set_gateway_id(e.gateway);
        SetTimestampMs(e.created_ms, p.mutable_created_at());
        if (ToGrantEvent(e, p.mutable_grant())) {
          if (request->kind() != v1::EVENT_KIND_NOTIFICATION) grants.push_back(std::move(p));
        } else if (ToNotificationEvent(e, p.mutable_notification())) {
          if (request->kind() != v1::EVENT_KIND_GRANT) notes.push_back(std::move(p));
        }
      }
      for (auto& p : grants) rows.push_back(std::move(p));
      for (auto& p : notes) rows.push_back(std::move(p));
    }
  });
  if (!s.ok()) return Finish(ctx, s);
  response->set_next_page_token(PageByOffset(
      rows, after, limit, [&](const v1::PendingEvent& p) { *response->add_events() = p; }));
  response->set_total_size(rows.size());
  return Finish(ctx, absl::OkStatus());
}

}  // namespace lockwarden::service
