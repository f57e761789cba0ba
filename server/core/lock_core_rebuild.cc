// LockCore::Rebuild: decodes every persisted record (format in codec.h),
// checks references between records and the invariants, and answers
// DataLoss naming the key for anything malformed or inconsistent.
#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {
namespace {

using codec::Reader;

absl::Status Corrupt(absl::string_view key, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("persisted record '", absl::CEscape(key), "': ", why));
}

// The optional trailing `monitored` field of lock and waiter records: absent
// means monitored (NLM LOCK). Writers add it only as `false` (NM_LOCK), so a
// trailing `true` is as corrupt as any other extra byte.
bool ReadOptionalMonitored(Reader& r, bool* monitored) {
  *monitored = true;
  if (r.Done()) return true;
  return r.Bool(monitored) && !*monitored && r.Done();
}

// Family order: referenced records (counters, gateways, events) first.
int FamilyRank(absl::string_view key) {
  static constexpr absl::string_view kOrder[] = {"m/", "g/", "c/", "n/", "e/",
                                                "l/", "w/", "s/", "d/"};
  for (int i = 0; i < 9; ++i) {
    if (key.substr(0, 2) == kOrder[i]) return i;
  }
  return -1;
}

bool ReadU32(Reader& r, uint32_t* v) {
  uint64_t w;
  if (!r.U64(&w) || w > std::numeric_limits<uint32_t>::max()) return false;
  *v = static_cast<uint32_t>(w);
  return true;
}

}  // namespace

absl::StatusOr<LockCore> LockCore::Rebuild(
    CoreOptions options,
    const std::vector<std::pair<std::string, std::string>>& persisted) {
  for (const auto& kv : persisted) {
    if (kv.first == codec::kImportMarkerKey) {
      return FromInterruptedImport(
          std::move(options),
          std::map<std::string, std::string>(persisted.begin(), persisted.end()));
    }
  }
  LockCore core(std::move(options));
  // Records are applied family by family (counters, gateways, clients, ...)
  // and in key order within a family. Bucketing by family keeps this linear;
  // a store scan already yields keys in order, so the per-family sort is
  // usually skipped. (A single sort on (family, key) spent seconds copying
  // keys at a million locks.)
  constexpr int kFamilies = 9;
  using Record = const std::pair<std::string, std::string>*;
  std::vector<Record> by_family[kFamilies];
  bool have_counters = false;
  for (const auto& kv : persisted) {
    const int rank = FamilyRank(kv.first);
    if (rank < 0) return Corrupt(kv.first, "unknown family");
    if (kv.first == codec::kCountersKey) have_counters = true;
    by_family[rank].push_back(&kv);
  }
  if (persisted.empty()) return core;
  if (!have_counters) return Corrupt(codec::kCountersKey, "missing");
  std::vector<Record> records;
  records.reserve(persisted.size());
  const auto key_less = [](Record a, Record b) { return a->first < b->first; };
  for (auto& family : by_family) {
    if (!std::is_sorted(family.begin(), family.end(), key_less)) {
      std::sort(family.begin(), family.end(), key_less);
    }
    records.insert(records.end(), family.begin(), family.end());
  }
  for (size_t i = 0; i + 1 < records.size(); ++i) {
    if (records[i]->first == records[i + 1]->first) {
      return Corrupt(records[i]->first, "duplicate key");
    }
  }
  for (const auto* kv : records) {
    LW_RETURN_IF_ERROR(core.RebuildRecord(kv->first, kv->second));
  }
  LW_RETURN_IF_ERROR(core.FinishRebuild());
  return core;
}

absl::Status LockCore::RebuildRecord(const std::string& key,
                                     const std::string& value) {
  Reader r(value);
  if (!r.Version()) return Corrupt(key, "bad version");
  const absl::string_view family = absl::string_view(key).substr(0, 2);
  const std::string name = key.substr(2);
  uint64_t id = 0;
  const bool id_key = codec::ParseIdKey(key, &id);
  constexpr size_t kAny = std::numeric_limits<size_t>::max();
  auto gateway_id = [this](const std::string& g) -> std::optional<GatewayId> {
    auto it = gateway_ids_.find(g);
    if (it == gateway_ids_.end()) return std::nullopt;
    return it->second;
  };

  if (key == codec::kCountersKey) {
    if (!r.U64(&counters_.next_token) ||
        !r.U64(&counters_.next_event_sequence) || !r.U64(&counters_.next_id) ||
        !r.U64(&counters_.events_dropped) || !r.Done()) {
      return Corrupt(key, "malformed counters");
    }
    counters_persisted_ = true;
    return absl::OkStatus();
  }
  if (family == "m/") return Corrupt(key, "unknown meta record");
  if (family == "g/") {
    GatewayState g;
    g.name = name;
    uint64_t n;
    if (name.empty() || !r.I32(&g.nsm_state) || !r.I64(&g.grace_until_ms) ||
        !r.U64(&n) || n > value.size()) {
      return Corrupt(key, "malformed gateway");
    }
    for (uint64_t i = 0; i < n; ++i) {
      std::string client;
      internal::LedgerFlags flags;
      if (!r.Bytes(&client) || !r.Bool(&flags.reclaimed) ||
          !r.Bool(&flags.done)) {
        return Corrupt(key, "malformed ledger");
      }
      g.ledger[client] = flags;
    }
    // Optional trailing `draining`: absent means false; writers add it only
    // as `true`, so a trailing `false` is as corrupt as any extra byte.
    if (!r.Done() && (!r.Bool(&g.draining) || !g.draining)) {
      return Corrupt(key, "malformed drain flag");
    }
    if (!r.Done()) return Corrupt(key, "trailing bytes");
    if ((g.nsm_state & 1) == 0) return Corrupt(key, "even NSM state");
    gateway_ids_[name] = static_cast<GatewayId>(gateways_.size());
    gateways_.push_back(std::move(g));
    return absl::OkStatus();
  }
  if (family == "c/") {
    int32_t state;
    if (name.empty() || !r.I32(&state)) return Corrupt(key, "malformed client");
    if (!r.Done()) {
      uint64_t n;
      if (!r.U64(&n) || n == 0 || n > kClientAddressesMax) {
        return Corrupt(key, "malformed client addresses");
      }
      std::vector<std::string>& seen = client_addresses_[name];
      seen.resize(n);
      for (std::string& a : seen) {
        if (!r.Bytes(&a) || a.empty() || a.size() > kClientAddressMaxBytes) {
          return Corrupt(key, "malformed client address");
        }
      }
      if (!r.Done()) return Corrupt(key, "trailing bytes");
    }
    client_states_[name] = state;
    return absl::OkStatus();
  }
  if (family == "d/") {
    // Two key layouts (codec.h), decoded and sorted into the ring once all
    // are read: which records are live depends on the newest one
    // (lock_core_dedup.cc).
    rebuild_dedup_.emplace_back(key, value);
    return absl::OkStatus();
  }
  if (!id_key) return Corrupt(key, "malformed id");
  if (family == "n/") {
    std::string gateway, priv;
    internal::MonitorKey k;
    if (!r.Bytes(&gateway) || !r.Bytes(&k.mon_name) ||
        !r.Bytes(&k.my_id.my_name) || !ReadU32(r, &k.my_id.my_prog) ||
        !ReadU32(r, &k.my_id.my_vers) || !ReadU32(r, &k.my_id.my_proc) ||
        !r.Bytes(&priv) || !r.Done() || priv.size() != 16) {
      return Corrupt(key, "malformed monitor");
    }
    auto g = gateway_id(gateway);
    if (!g) return Corrupt(key, "unknown gateway");
    if (id >= counters_.next_id) return Corrupt(key, "id past counter");
    if (!gateways_[*g]
             .monitors.emplace(std::move(k), internal::MonitorEntry{id, priv})
             .second) {
      return Corrupt(key, "duplicate registration");
    }
    ++monitor_count_;
    return absl::OkStatus();
  }
  if (family == "e/") {
    Event e;
    e.sequence = id;
    if (!codec::ReadEvent(r, &e) || !r.Done()) {
      return Corrupt(key, "malformed event");
    }
    auto g = gateway_id(e.gateway);
    if (!g) return Corrupt(key, "unknown gateway");
    if (id == 0 || id >= counters_.next_event_sequence) {
      return Corrupt(key, "sequence past counter");
    }
    gateways_[*g].outbox.emplace(id, std::move(e));
    ++event_count_;
    return absl::OkStatus();
  }
  if (family == "l/" || family == "w/") {
    std::string fh, gateway;
    Owner owner;
    uint64_t start, end;
    bool exclusive;
    if (!r.Bytes(&fh) || !r.OwnerFields(&owner) || !r.U64(&start) ||
        !r.U64(&end) || !r.Bool(&exclusive) || start > end || fh.empty()) {
      return Corrupt(key, "malformed lock or waiter");
    }
    if (family == "l/") {
      LockEntry l;
      internal::UnconfirmedGrant u;
      if (!r.Bytes(&gateway) || !r.I32(&l.client_state) ||
          !r.I64(&l.granted_ms) || !r.Bool(&l.unconfirmed) ||
          !r.I64(&u.deadline_ms) || !r.U64(&u.event_sequence) ||
          !ReadOptionalMonitored(r, &l.monitored)) {
        return Corrupt(key, "malformed lock");
      }
      auto g = gateway_id(gateway);
      if (!g) return Corrupt(key, "unknown gateway");
      if (id == 0 || id >= counters_.next_token) {
        return Corrupt(key, "token past counter");
      }
      l.start = start;
      l.end = end;
      l.token = id;
      l.exclusive = exclusive;
      l.gateway = *g;
      l.owner = *owners_.Intern(owner, kAny);
      if (l.unconfirmed) {
        if (u.event_sequence != 0) {
          const auto& outbox = gateways_[*g].outbox;
          auto ev = outbox.find(u.event_sequence);
          const GrantedEvent* ge =
              ev == outbox.end() ? nullptr
                                 : std::get_if<GrantedEvent>(&ev->second.body);
          if (ge == nullptr || ge->fencing_token != id) {
            return Corrupt(key, "grant without its Granted event");
          }
        }
        u.fh = fh;
        grant_deadlines_.insert({u.deadline_ms, id});
        unconfirmed_.emplace(id, std::move(u));
      }
      owners_.Ref(l.owner);
      ++lock_count_;
      FileFor(fh).locks.push_back(l);
      return absl::OkStatus();
    }
    WaiterEntry w;
    if (!r.Bool(&w.reclaim) || !r.Bytes(&gateway) || !r.I32(&w.client_state) ||
        !r.I64(&w.queued_ms) || !r.Bytes(&w.callback) || !r.Bytes(&w.cookie) ||
        !ReadOptionalMonitored(r, &w.monitored)) {
      return Corrupt(key, "malformed waiter");
    }
    auto g = gateway_id(gateway);
    if (!g) return Corrupt(key, "unknown gateway");
    if (id == 0 || id >= counters_.next_id) return Corrupt(key, "id past counter");
    w.id = id;
    w.start = start;
    w.end = end;
    w.exclusive = exclusive;
    w.gateway = *g;
    w.owner = *owners_.Intern(owner, kAny);
    owners_.Ref(w.owner);
    ++gateways_[*g].waiters;
    ++waiter_count_;
    FileState& f = FileFor(fh);
    f.waiters.push_back(std::move(w));
    waiting_files_.insert(&f);
    return absl::OkStatus();
  }
  if (family == "s/") {
    std::string fh, gateway;
    ShareEntry s;
    uint8_t access, deny;
    if (!r.Bytes(&fh) || !r.Bytes(&s.client) || !r.Bytes(&s.oh) ||
        !r.U8(&access) || !r.U8(&deny) || !r.Bytes(&gateway) ||
        !r.I32(&s.client_state) || !r.I64(&s.granted_ms) || !r.Done() ||
        access > 3 || deny > 3 || fh.empty()) {
      return Corrupt(key, "malformed share");
    }
    auto g = gateway_id(gateway);
    if (!g) return Corrupt(key, "unknown gateway");
    if (id == 0 || id >= counters_.next_id) return Corrupt(key, "id past counter");
    s.id = id;
    s.access = static_cast<ShareMode>(access);
    s.deny = static_cast<ShareMode>(deny);
    s.gateway = *g;
    shares_by_id_[id] = fh;
    FileFor(fh).shares.push_back(std::move(s));
    return absl::OkStatus();
  }
  return Corrupt(key, "unknown family");
}

absl::Status LockCore::FinishRebuild() {
  for (auto& [fh, f] : files_) {
    std::sort(f.locks.begin(), f.locks.end(),
              [](const LockEntry& a, const LockEntry& b) {
                return std::tie(a.start, a.token) < std::tie(b.start, b.token);
              });
    for (const LockEntry& l : f.locks) {
      f.max_span = std::max(f.max_span, l.end - l.start);
      f.unconfirmed += l.unconfirmed;
    }
    std::sort(f.waiters.begin(), f.waiters.end(),
              [](const WaiterEntry& a, const WaiterEntry& b) {
                return a.id < b.id;
              });
    for (const WaiterEntry& w : f.waiters) {
      waits_by_owner_[w.owner].push_back({&f, w.id});
    }
    std::sort(f.shares.begin(), f.shares.end(),
              [](const ShareEntry& a, const ShareEntry& b) {
                return a.id < b.id;
              });
  }
  LW_RETURN_IF_ERROR(FinishDedupRebuild());
  absl::Status s = CheckInvariants();
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("persisted state is inconsistent: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace lockwarden::core
