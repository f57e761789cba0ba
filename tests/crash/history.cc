#include "tests/crash/history.h"

#include <algorithm>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/core/codec.h"
#include "server/service/convert.h"

namespace lockwarden::crash {
namespace {

// Rows per call when the canonical dump pages through the core's views.
constexpr size_t kViewPage = 1000;
// Events per gateway the canonical dump reads (the core's outbox limit).
constexpr size_t kEventsMax = 100000;
// Operations of L shown before a reply mismatch.
constexpr size_t kContextOps = 40;

std::string Esc(const std::string& s) { return absl::CEscape(s); }

std::string OwnerText(const core::Owner& o) {
  return absl::StrCat(Esc(o.client), "/", o.svid, "/", Esc(o.oh));
}

std::string RangeText(uint64_t offset, uint64_t length) {
  return absl::StrCat("[", offset, "+", length, "]");
}

std::string ProtoOwner(const v1::LockOwner& o) {
  return absl::StrCat(Esc(o.client_name()), "/", o.svid(), "/", Esc(o.oh()));
}

struct DedupRecord {
  uint64_t id = 0;
  core::Reply reply;
};

// The dedup records of `kvs` with a sequence >= first_sequence, by request
// id. Both key layouts (codec.h): the ring's d/<ring>/<slot> and d/<id>.
absl::StatusOr<absl::flat_hash_map<std::string, DedupRecord>> RoundDedup(
    const std::vector<std::pair<std::string, std::string>>& kvs,
    uint64_t first_sequence) {
  absl::flat_hash_map<std::string, DedupRecord> out;
  for (const auto& [key, value] : kvs) {
    if (key.rfind(core::codec::kDedupPrefix, 0) != 0) continue;
    core::codec::DedupRecord rec;
    if (!core::codec::DecodeDedupRecord(key, value, &rec)) {
      return absl::DataLossError(absl::StrCat("bad dedup record ", Esc(key)));
    }
    if (rec.sequence < first_sequence) continue;
    out[rec.request_id] = DedupRecord{rec.sequence, std::move(rec.reply)};
  }
  return out;
}

// One past the newest dedup sequence in `kvs` (the core's next one).
uint64_t NextDedupSequence(
    const std::vector<std::pair<std::string, std::string>>& kvs) {
  uint64_t next = 1;
  for (const auto& [key, value] : kvs) {
    core::codec::DedupRecord rec;
    if (key.rfind(core::codec::kDedupPrefix, 0) == 0 &&
        core::codec::DecodeDedupRecord(key, value, &rec)) {
      next = std::max(next, rec.sequence + 1);
    }
  }
  return next;
}

absl::StatusOr<core::Command> ToCoreCommand(const Request& request) {
  return std::visit(
      [](const auto& r) -> absl::StatusOr<core::Command> {
        auto c = service::ToCommand(r);
        if (!c.ok()) return c.status();
        return core::Command(*std::move(c));
      },
      request);
}

}  // namespace

const std::string& Op::request_id() const {
  return std::visit([](const auto& r) -> const std::string& { return r.request_id(); },
                    request);
}

std::string Op::Describe() const {
  std::string what = std::visit(
      [](const auto& r) -> std::string {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, v1::LockRequest>) {
          return absl::StrCat("LOCK", r.block() ? "(block)" : "", " ", Esc(r.file_handle()), " ",
                              ProtoOwner(r.owner()), " ", RangeText(r.range().offset(), r.range().length()),
                              r.exclusive() ? " X" : " S");
        } else if constexpr (std::is_same_v<T, v1::UnlockRequest>) {
          return absl::StrCat("UNLOCK ", Esc(r.file_handle()), " ", ProtoOwner(r.owner()), " ",
                              RangeText(r.range().offset(), r.range().length()));
        } else if constexpr (std::is_same_v<T, v1::CancelRequest>) {
          return absl::StrCat("CANCEL ", Esc(r.file_handle()), " ", ProtoOwner(r.owner()), " ",
                              RangeText(r.range().offset(), r.range().length()),
                              r.exclusive() ? " X" : " S");
        } else {
          return absl::StrCat("ACKGRANT seq=", r.sequence(), " outcome=", r.outcome());
        }
      },
      request);
  return absl::StrCat("lane ", lane, " ", request_id(), " ", what, " invoke=", invoke_ns,
                      " complete=", complete_ns == kNeverNs ? std::string("never")
                                                            : absl::StrCat(complete_ns),
                      acked ? absl::StrCat(" -> ", reply) : absl::StrCat(" -> ? (", error, ")"));
}

std::string CanonicalReply(const v1::LockResponse& r) {
  std::string out = absl::StrCat(v1::LockStatus_Name(r.status()), " token=", r.fencing_token());
  if (r.has_conflicting_holder()) {
    const v1::LockHolder& h = r.conflicting_holder();
    absl::StrAppend(&out, " holder=", ProtoOwner(h.owner()), " ",
                    RangeText(h.range().offset(), h.range().length()), h.exclusive() ? " X" : " S",
                    h.gateway_id().empty() ? "" : " gw=", h.gateway_id());
  }
  return out;
}

std::string CanonicalReply(const v1::UnlockResponse& r) {
  return v1::LockStatus_Name(r.status());
}

std::string CanonicalReply(const v1::CancelResponse& r) {
  return v1::LockStatus_Name(r.status());
}

std::string CanonicalReply(const v1::AckGrantResponse& r) {
  return absl::StrCat("applied=", r.applied(), " lock_held=", r.lock_held());
}

// Mirrors the response filling of server/service/lock_service.cc.
std::string CanonicalReplyOfCore(const Request& request, const core::Reply& r) {
  if (absl::Status s = service::ReplyError(r); !s.ok()) return s.ToString();
  return std::visit(
      [&r](const auto& req) -> std::string {
        using T = std::decay_t<decltype(req)>;
        if constexpr (std::is_same_v<T, v1::LockRequest>) {
          v1::LockResponse out;
          out.set_status(service::ToProto(r.status));
          if (r.holder) service::ToProto(*r.holder, out.mutable_conflicting_holder());
          out.set_fencing_token(r.fencing_token);
          return CanonicalReply(out);
        } else if constexpr (std::is_same_v<T, v1::UnlockRequest>) {
          v1::UnlockResponse out;
          out.set_status(service::ToProto(r.status));
          return CanonicalReply(out);
        } else if constexpr (std::is_same_v<T, v1::CancelRequest>) {
          v1::CancelResponse out;
          out.set_status(service::ToProto(r.status));
          return CanonicalReply(out);
        } else {
          v1::AckGrantResponse out;
          out.set_applied(r.status != core::LockStatus::kNotFound);
          out.set_lock_held(r.fencing_token != 0);
          return CanonicalReply(out);
        }
      },
      request);
}

std::string CanonicalState(const core::LockCore& core) {
  std::string out;
  const core::CoreCounters c = core.Counters();
  absl::StrAppend(&out, "counters next_token=", c.next_fencing_token,
                  " next_event_sequence=", c.next_event_sequence, " next_id=", c.next_id,
                  " events_dropped=", c.events_dropped, "\n");
  absl::StrAppend(&out, "counts files=", c.files, " locks=", c.locks,
                  " unconfirmed=", c.unconfirmed_grants, " waiters=", c.waiters,
                  " shares=", c.shares, " owners=", c.owners, " clients=", c.clients,
                  " gateways=", c.gateways, " monitors=", c.monitors, " events=", c.events,
                  "\n");
  for (uint64_t after = 0;;) {
    std::vector<core::LockInfo> page = core.ListLocks({}, after, kViewPage);
    for (const core::LockInfo& l : page) {
      absl::StrAppend(&out, "lock token=", l.fencing_token, " fh=", Esc(l.fh), " owner=",
                      OwnerText(l.owner), " ", RangeText(l.range.offset, l.range.length),
                      l.exclusive ? " X" : " S", " gw=", l.gateway, " cs=", l.client_state,
                      l.unconfirmed ? " unconfirmed" : "", " event=", l.grant_event_sequence,
                      "\n");
      after = l.fencing_token;
    }
    if (page.size() < kViewPage) break;
  }
  for (uint64_t after = 0;;) {
    std::vector<core::WaiterInfo> page = core.ListWaiters({}, after, kViewPage);
    for (const core::WaiterInfo& w : page) {
      absl::StrAppend(&out, "waiter id=", w.id, " fh=", Esc(w.fh), " owner=", OwnerText(w.owner),
                      " ", RangeText(w.range.offset, w.range.length), w.exclusive ? " X" : " S",
                      w.reclaim ? " reclaim" : "", " gw=", w.gateway, " cs=", w.client_state,
                      " callback=", Esc(w.callback), " cookie=", Esc(w.cookie), "\n");
      after = w.id;
    }
    if (page.size() < kViewPage) break;
  }
  for (uint64_t after = 0;;) {
    std::vector<core::ShareInfo> page = core.ListShares({}, after, kViewPage);
    for (const core::ShareInfo& s : page) {
      absl::StrAppend(&out, "share id=", s.id, " fh=", Esc(s.fh), " client=", Esc(s.client),
                      " oh=", Esc(s.oh), " access=", static_cast<int>(s.access),
                      " deny=", static_cast<int>(s.deny), " gw=", s.gateway,
                      " cs=", s.client_state, "\n");
      after = s.id;
    }
    if (page.size() < kViewPage) break;
  }
  std::vector<std::string> clients;
  for (const core::ClientInfo& ci : core.ListClients()) {
    clients.push_back(absl::StrCat("client ", Esc(ci.name), " state=", ci.nsm_state, "\n"));
  }
  std::sort(clients.begin(), clients.end());
  absl::StrAppend(&out, absl::StrJoin(clients, ""));
  std::vector<core::GatewayInfo> gateways = core.ListGateways();
  std::sort(gateways.begin(), gateways.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (const core::GatewayInfo& g : gateways) {
    absl::StrAppend(&out, "gateway ", g.name, " state=", g.nsm_state,
                    " grace_until=", g.grace_until_ms, " pending=", g.pending_events, "\n");
    for (const core::LedgerEntry& e : g.ledger) {
      absl::StrAppend(&out, "  ledger ", Esc(e.client), " reclaimed=", e.reclaimed,
                      " done=", e.done, "\n");
    }
    for (const core::MonitorInfo& m : core.ListMonitors(g.name)) {
      absl::StrAppend(&out, "  monitor ", Esc(m.mon_name), " ", Esc(m.my_id.my_name), "/",
                      m.my_id.my_prog, "/", m.my_id.my_vers, "/", m.my_id.my_proc,
                      " priv=", Esc(m.priv), "\n");
    }
    for (const core::Event& e : core.PendingEvents(g.name, 0, kEventsMax)) {
      absl::StrAppend(&out, "  event seq=", e.sequence, " gw=", e.gateway, " ");
      if (const auto* gr = std::get_if<core::GrantedEvent>(&e.body)) {
        absl::StrAppend(&out, "granted fh=", Esc(gr->fh), " owner=", OwnerText(gr->owner), " ",
                        RangeText(gr->range.offset, gr->range.length),
                        gr->exclusive ? " X" : " S", " token=", gr->fencing_token,
                        " cs=", gr->client_state, " callback=", Esc(gr->callback),
                        " cookie=", Esc(gr->cookie), "\n");
      } else if (const auto* n = std::get_if<core::SmNotifyEvent>(&e.body)) {
        absl::StrAppend(&out, "sm_notify target=", Esc(n->target), " mon=", Esc(n->mon_name),
                        " state=", n->state, "\n");
      } else if (const auto* s = std::get_if<core::StatusCallbackEvent>(&e.body)) {
        absl::StrAppend(&out, "status_callback mon=", Esc(s->mon_name), " state=", s->state,
                        " my_name=", Esc(s->my_id.my_name), " priv=", Esc(s->priv), "\n");
      }
    }
  }
  return out;
}

core::CoreOptions ModelOptions(int64_t grant_timeout_ms) {
  core::CoreOptions o;
  o.grant_timeout_ms = grant_timeout_ms;
  return o;
}

std::vector<std::pair<std::string, std::string>> WithoutDedup(
    const std::vector<std::pair<std::string, std::string>>& kvs) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(kvs.size());
  for (const auto& kv : kvs) {
    if (kv.first.rfind(core::codec::kDedupPrefix, 0) != 0) out.push_back(kv);
  }
  return out;
}

std::string LineDiff(const std::string& a, const std::string& b, size_t max_lines) {
  std::vector<std::string> la = absl::StrSplit(a, '\n', absl::SkipEmpty());
  std::vector<std::string> lb = absl::StrSplit(b, '\n', absl::SkipEmpty());
  std::multiset<std::string> sa(la.begin(), la.end()), sb(lb.begin(), lb.end());
  std::string out;
  size_t n = 0;
  for (const std::string& l : la) {
    auto it = sb.find(l);
    if (it != sb.end()) {
      sb.erase(it);
      continue;
    }
    if (n++ < max_lines) absl::StrAppend(&out, "- ", l, "\n");
  }
  for (const std::string& l : lb) {
    auto it = sa.find(l);
    if (it != sa.end()) {
      sa.erase(it);
      continue;
    }
    if (n++ < max_lines) absl::StrAppend(&out, "+ ", l, "\n");
  }
  if (n > max_lines) absl::StrAppend(&out, "... ", n - max_lines, " more lines\n");
  return out;
}

CheckResult CheckRound(const std::vector<std::pair<std::string, std::string>>& s0,
                       const std::vector<std::pair<std::string, std::string>>& recovered,
                       const History& history, const core::CoreOptions& options) {
  CheckResult res;
  auto fail = [&res](std::string why) {
    res.ok = false;
    res.failure = std::move(why);
    return res;
  };
  auto model = core::LockCore::Rebuild(options, WithoutDedup(s0));
  if (!model.ok()) return fail(absl::StrCat("rebuilding S0: ", model.status().ToString()));
  auto final_core = core::LockCore::Rebuild(options, WithoutDedup(recovered));
  if (!final_core.ok()) {
    return fail(absl::StrCat("rebuilding the recovered store: ", final_core.status().ToString()));
  }
  auto dedup = RoundDedup(recovered, NextDedupSequence(s0));
  if (!dedup.ok()) return fail(dedup.status().ToString());

  absl::flat_hash_map<std::string, size_t> by_id;
  for (size_t i = 0; i < history.size(); ++i) {
    if (!by_id.emplace(history[i].request_id(), i).second) {
      return fail(absl::StrCat("test bug: request id used twice: ", history[i].request_id()));
    }
    if (history[i].acked) ++res.acked;
  }
  // 1. Membership: the recovered state holds every acknowledged op, and
  // nothing nobody asked for.
  std::vector<std::pair<uint64_t, size_t>> order;  // (dedup id, op index)
  for (const auto& [rid, rec] : *dedup) {
    auto it = by_id.find(rid);
    if (it == by_id.end()) {
      return fail(absl::StrCat("recovered state applied request ", rid,
                               " (dedup id ", rec.id, ") that no client of this round issued"));
    }
    order.emplace_back(rec.id, it->second);
  }
  for (const Op& op : history) {
    if (op.acked && !dedup->contains(op.request_id())) {
      return fail(absl::StrCat("acknowledged operation lost by the crash: ", op.Describe()));
    }
    if (!op.acked) {
      (dedup->contains(op.request_id()) ? res.unknown_applied : res.unknown_lost)++;
    }
  }
  std::sort(order.begin(), order.end());
  res.applied = order.size();

  // 2. Real time: nothing applied after an op that was invoked after it
  // completed.
  int64_t max_invoke = std::numeric_limits<int64_t>::min();
  size_t max_invoke_op = 0;
  for (const auto& [id, i] : order) {
    const Op& op = history[i];
    if (op.complete_ns < max_invoke) {
      return fail(absl::StrCat("apply order contradicts real time: ",
                               history[max_invoke_op].Describe(), "\n  was applied before\n  ",
                               op.Describe(), "\n  which completed before the former was invoked"));
    }
    if (op.invoke_ns > max_invoke) {
      max_invoke = op.invoke_ns;
      max_invoke_op = i;
    }
  }

  // 3. Replies: replay L on the reference core. One constant `now` for the
  // whole replay: the server's clock only feeds timestamps and deadlines
  // (grant timeout far beyond the round), which the comparison leaves out.
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const Op& op = history[order[pos].second];
    const DedupRecord& rec = dedup->at(op.request_id());
    const std::string recorded = CanonicalReplyOfCore(op.request, rec.reply);
    if (op.acked && recorded != op.reply) {
      return fail(absl::StrCat("server recorded reply '", recorded, "' but sent '", op.reply,
                               "' for ", op.Describe()));
    }
    auto cmd = ToCoreCommand(op.request);
    if (!cmd.ok()) return fail(absl::StrCat("test bug: ", cmd.status().ToString()));
    core::Effects fx = model->Apply(*cmd, now_ms);
    const std::string got = CanonicalReplyOfCore(op.request, fx.reply);
    const std::string& want = op.acked ? op.reply : recorded;
    if (got != want) {
      std::string context;
      for (size_t k = pos > kContextOps ? pos - kContextOps : 0; k < pos; ++k) {
        absl::StrAppend(&context, "  ", history[order[k].second].Describe(), "\n");
      }
      return fail(absl::StrCat("reply mismatch at position ", pos, " of ", order.size(),
                               ": reference core answers '", got, "', server answered '", want,
                               "' for\n  ", op.Describe(), "\npreceding operations:\n", context,
                               "reference state after applying it:\n",
                               CanonicalState(*model)));
    }
  }
  if (absl::Status s = model->CheckInvariants(); !s.ok()) {
    return fail(absl::StrCat("reference core invariant: ", s.ToString()));
  }
  // 4. The recovered state is the state after L.
  const std::string want_state = CanonicalState(*model);
  const std::string got_state = CanonicalState(*final_core);
  if (want_state != got_state) {
    return fail(absl::StrCat("recovered state differs from the replay of the ", order.size(),
                             " applied operations (- replay, + recovered):\n",
                             LineDiff(want_state, got_state)));
  }
  res.ok = true;
  return res;
}

}  // namespace lockwarden::crash
