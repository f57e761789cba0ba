// Randomised test of the lock core against the brute-force ReferenceModel:
// every reply, every Granted event and the whole lock/waiter state are
// compared after every step, invariants are checked after every step, and
// the store built from the deltas is rebuilt (and the test carries on with
// the rebuilt core) periodically and at the end.
//
// Seed: --seed=N or LW_SEED=N replays a run; otherwise derived from the
// clock. The seed is printed at the start and on failure.
#include <chrono>
#include <iostream>
#include <tuple>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/lock_core.h"
#include "server/core/reference_model.h"

namespace lockwarden::core::testing {
namespace {

uint64_t g_seed = 0;
const MonitorId kLockd{"gateway-host", 100021, 4, 16};
constexpr int kSteps = 200'000;

CoreOptions RandomOptions() {
  CoreOptions o;
  o.grant_timeout_ms = 40;
  o.grace_period_ms = 150;
  o.dedup_entries_max = 300;
  o.waiters_per_file_max = 5;
  return o;
}

class RandomRun {
 public:
  RandomRun(uint64_t seed, bool nsm)
      : rng_(seed), nsm_(nsm), options_(RandomOptions()),
        core_(options_), model_(options_) {
    for (int c = 0; c < kOwners / 2; ++c) client_state_[c] = 1;
    if (nsm_) {  // Every gateway monitors every client.
      for (int g = 0; g < kGateways; ++g) {
        for (int c = 0; c < kOwners / 2; ++c) {
          Apply(MonCmd{"", GatewayName(g), ClientName(c), kLockd,
                       std::string(16, 'p')});
        }
      }
    }
  }

  // Runs `steps` operations; returns "" or the first discrepancy.
  std::string Run(int steps) {
    for (step_ = 0; step_ < steps; ++step_) {
      model_.now = now_;
      std::string err = Step();
      if (err.empty()) {
        absl::Status inv = core_.CheckInvariants();
        if (!inv.ok()) err = std::string(inv.message());
      }
      // The full state comparison is the expensive part: every 3rd step
      // (replies and events are compared on every step).
      if (err.empty() && step_ % 3 == 0) err = CompareState();
      if (err.empty() && step_ % 97 == 0 && core_.Snapshot() != store_) {
        err = "store built from deltas differs from the snapshot";
      }
      if (err.empty() && step_ % 5000 == 4999) err = RebuildAndSwap();
      if (!err.empty()) {
        return absl::StrCat("step ", step_, " (", last_op_, "): ", err,
                            "\nstate:\n", core_.DebugString());
      }
      now_ += Uniform(0, 2);
    }
    const CoreCounters c = core_.Counters();
    std::cout << "final: locks " << c.locks << " waiters " << c.waiters
              << " grants " << c.unconfirmed_grants << " events " << c.events
              << " dedup " << c.dedup_entries << "\noutcomes:";
    for (const auto& [status, n] : outcomes_) {
      std::cout << " " << LockStatusName(static_cast<LockStatus>(status))
                << "=" << n;
    }
    std::cout << " stale-notifies=" << stale_ << std::endl;
    return RebuildAndSwap();
  }

 private:
  int Uniform(int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng_);
  }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }

  Range RangeOf(int i, int j) {
    const uint64_t start = SegStart(i), end = SegEnd(j);
    if (end != kModelMax) return Range{start, end - start + 1};
    switch (Uniform(0, 2)) {
      case 0: return Range{start, 0};
      case 1: return Range{start, start == 0 ? 0 : kModelMax};  // Clamped.
      default: return Range{start, start == 0 ? 0 : kModelMax - start + 1};
    }
  }

  ModelReq RandomReq() {
    ModelReq r;
    r.owner = Uniform(0, kOwners - 1);
    r.file = Uniform(0, kFiles - 1);
    r.i = Uniform(0, kSegs - 1);
    r.j = Uniform(r.i, std::min(kSegs - 1, r.i + Uniform(0, 3)));
    r.excl = Chance(50);
    r.gw = Uniform(0, kGateways - 1);
    r.state = nsm_ ? client_state_[ClientOf(r.owner)] : (Chance(80) ? 1 : 3);
    r.reclaim = nsm_ && Chance(15);
    r.mon = !Chance(15);  // Some NM_LOCK requests: SM_NOTIFY must spare them.
    return r;
  }

  // An existing waiter or grant, so cancels and repeats hit something.
  ModelReq ExistingReq() {
    std::vector<ModelReq> pool = model_.grants;
    for (const auto& q : model_.waiters) pool.insert(pool.end(), q.begin(), q.end());
    if (pool.empty()) return RandomReq();
    return pool[Uniform(0, static_cast<int>(pool.size()) - 1)];
  }

  Effects Apply(const Command& cmd) {
    Effects fx = core_.Apply(cmd, now_);
    for (const Mutation& m : fx.delta) {
      if (m.op == Mutation::Op::kPut) {
        store_[m.key] = m.value;
      } else {
        store_.erase(m.key);
      }
    }
    return fx;
  }

  std::string NextRequestId(Command& cmd) {
    std::string id = Chance(30) && !std::holds_alternative<TickCmd>(cmd)
                         ? absl::StrCat("r", step_)
                         : "";
    std::visit(
        [&id](auto& c) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(c)>, TickCmd>) {
            c.request_id = id;
          }
        },
        cmd);
    return id;
  }

  // Applies cmd, checks status and events against the model's answer.
  std::string Check(Command cmd, LockStatus expected, const ModelReq* req) {
    const std::string id = NextRequestId(cmd);
    Effects fx = Apply(cmd);
    ++outcomes_[static_cast<int>(fx.reply.status)];
    if (fx.reply.status != expected) {
      return absl::StrCat("status ", LockStatusName(fx.reply.status),
                          ", model says ", LockStatusName(expected));
    }
    if (!id.empty()) {
      remembered_.push_back({id, cmd, fx.reply});
      if (remembered_.size() > 100) remembered_.pop_front();
    }
    if (req != nullptr && expected == LockStatus::kDenied &&
        std::holds_alternative<LockCmd>(cmd)) {
      std::string err = CheckHolder(fx.reply, *req);
      if (!err.empty()) return err;
    }
    if (req != nullptr && expected == LockStatus::kGranted &&
        std::holds_alternative<LockCmd>(cmd)) {
      std::string err = CheckToken(fx.reply.fencing_token, *req);
      if (!err.empty()) return err;
    }
    return CheckEvents(fx.events);
  }

  std::string CheckHolder(const Reply& r, const ModelReq& req) {
    if (!r.holder) return "DENIED without holder";
    const Interval iv = ToInterval(r.holder->range);
    int i = -1, j = -1;
    for (int k = 0; k < kSegs; ++k) {
      if (SegStart(k) == iv.start) i = k;
      if (SegEnd(k) == iv.end) j = k;
    }
    const int owner = ModelOwnerIndex(r.holder->owner);
    if (i < 0 || j < 0 || owner < 0 || owner == req.owner || j < req.i ||
        i > req.j || !(r.holder->exclusive || req.excl) ||
        !model_.Holds(owner, req.file, i, j, r.holder->exclusive)) {
      return "holder is not a conflicting lock";
    }
    return "";
  }

  std::string CheckToken(uint64_t token, const ModelReq& req) {
    const Interval want{SegStart(req.i), SegEnd(req.j)};
    for (const LockInfo& l : core_.ListLocks({FileName(req.file), "", ""}, 0,
                                             1 << 20)) {
      if (l.fencing_token == token) {
        return (l.owner == ModelOwner(req.owner) && !l.unconfirmed &&
                Contains(ToInterval(l.range), want))
                   ? ""
                   : "GRANTED token names another lock";
      }
    }
    return "GRANTED token names no lock";
  }

  std::string CheckEvents(const std::vector<Event>& events) {
    std::vector<ModelReq>& want = model_.expected_grants;
    size_t n = 0;
    for (const Event& e : events) {
      const auto* g = std::get_if<GrantedEvent>(&e.body);
      if (g == nullptr) continue;  // NSM events: no monitors registered.
      if (n >= want.size()) return "unexpected Granted event";
      const ModelReq& w = want[n++];
      if (g->owner != ModelOwner(w.owner) || g->fh != FileName(w.file) ||
          g->exclusive != w.excl ||
          ToInterval(g->range) != Interval{SegStart(w.i), SegEnd(w.j)} ||
          e.gateway != GatewayName(w.gw)) {
        return "Granted event differs from the model's grant";
      }
      for (ModelReq& grant : model_.grants) {  // First unnumbered grant.
        if (grant.token == 0) {
          grant.token = g->fencing_token;
          grant.sequence = e.sequence;
          break;
        }
      }
    }
    if (n != want.size()) return "missing Granted event";
    want.clear();
    return "";
  }

  std::string Step();
  std::string ShareStep(int roll);
  std::string AckNsmEvents();
  std::string CompareState();
  std::string RebuildAndSwap();

  std::mt19937_64 rng_;
  bool nsm_;
  CoreOptions options_;
  LockCore core_;
  ReferenceModel model_;
  std::map<std::string, std::string> store_;
  std::map<int, int32_t> client_state_;
  struct Remembered {
    std::string id;
    Command cmd;
    Reply reply;
  };
  std::deque<Remembered> remembered_;
  int rebuilds_ = 0;
  std::map<int, int> outcomes_;
  int stale_ = 0;
  int64_t now_ = 1;
  int step_ = 0;
  std::string last_op_;
};

std::string RandomRun::Step() {
  const int roll = Uniform(0, 99);
  if (roll < 3 && !remembered_.empty()) {  // A retry of an old request id.
    last_op_ = "retry";
    const Remembered& r =
        remembered_[Uniform(0, static_cast<int>(remembered_.size()) - 1)];
    Effects fx = Apply(r.cmd);
    if (!(fx.reply == r.reply) || !fx.delta.empty() || !fx.events.empty()) {
      return absl::StrCat(
          "retried request id ", r.id, " did not return the recorded reply: ",
          LockStatusName(fx.reply.status), " ", fx.reply.message, " ",
          fx.reply.fencing_token, " ", fx.reply.nsm_state, " ",
          fx.reply.released, " vs ", LockStatusName(r.reply.status), " ",
          r.reply.fencing_token, " ", r.reply.nsm_state, " ", r.reply.released,
          " cmd ", r.cmd.index(), "; delta ", fx.delta.size(),
          " events ", fx.events.size());
    }
    return "";
  }
  if (nsm_ && roll >= 74 && roll < 86 && Chance(30)) return AckNsmEvents();
  // Acks need grants; with none, mostly lock instead.
  const bool ack_useless = model_.grants.empty() && !Chance(10);
  if (roll < 38 || (roll >= 74 && roll < 86 && ack_useless)) {
    last_op_ = "lock";
    ModelReq r = Chance(15) ? ExistingReq() : RandomReq();
    if (nsm_) r.state = client_state_[ClientOf(r.owner)];
    const bool block = Chance(50);
    LockCmd c;
    c.gateway = GatewayName(r.gw);
    c.fh = FileName(r.file);
    c.owner = ModelOwner(r.owner);
    c.range = RangeOf(r.i, r.j);
    c.exclusive = r.excl;
    c.block = block;
    c.reclaim = r.reclaim;
    c.client_state = r.state;
    c.monitored = r.mon;
    c.callback = "cb";
    const LockStatus want = model_.Lock(r, block);
    return Check(c, want, &r);
  }
  if (roll >= 52 && roll < 59) return ShareStep(roll);
  if (roll < 58) {
    last_op_ = "unlock";
    ModelReq r = RandomReq();
    UnlockCmd c{"", GatewayName(r.gw), FileName(r.file), ModelOwner(r.owner),
                RangeOf(r.i, r.j)};
    return Check(c, model_.Unlock(r.owner, r.file, r.i, r.j, r.gw), nullptr);
  }
  if (roll < 66) {
    last_op_ = "cancel";
    ModelReq r = Chance(70) ? ExistingReq() : RandomReq();
    CancelCmd c{"", GatewayName(r.gw), FileName(r.file), ModelOwner(r.owner),
                RangeOf(r.i, r.j), r.excl};
    return Check(c, model_.Cancel(r), nullptr);
  }
  if (roll < 74) {
    last_op_ = "test";
    ModelReq r = RandomReq();
    TestQuery q{GatewayName(r.gw), FileName(r.file), ModelOwner(r.owner),
                RangeOf(r.i, r.j), r.excl};
    Reply got = core_.Test(q, now_);
    const LockStatus want = model_.Test(r);
    if (got.status != want) {
      return absl::StrCat("TEST ", LockStatusName(got.status), ", model says ",
                          LockStatusName(want));
    }
    return want == LockStatus::kDenied ? CheckHolder(got, r) : "";
  }
  if (roll < 86) {
    last_op_ = "ack";
    if (model_.grants.empty() || Chance(5)) {
      AckEventCmd c{"", GatewayName(Uniform(0, 1)), 1u << 30,
                    AckOutcome::kDelivered};
      return Check(c, LockStatus::kNotFound, nullptr);
    }
    const ModelReq g = model_.grants[Uniform(
        0, static_cast<int>(model_.grants.size()) - 1)];
    const auto outcome = static_cast<AckOutcome>(Uniform(0, 2));
    AckEventCmd c{"", GatewayName(g.gw), g.sequence, outcome};
    model_.Ack(g.token, outcome);
    return Check(c, LockStatus::kGranted, nullptr);
  }
  if (roll < 88 && Chance(20)) {
    last_op_ = "drain";
    const int gw = Uniform(0, kGateways - 1);
    const bool drain = Chance(30);
    bool known = false;
    for (const GatewayInfo& g : core_.ListGateways()) {
      known = known || g.name == GatewayName(gw);
    }
    if (known) model_.gateways[gw].draining = drain;
    return Check(DrainGatewayCmd{"", GatewayName(gw), drain},
                 known ? LockStatus::kGranted : LockStatus::kNotFound, nullptr);
  }
  if (roll < 92 || !nsm_) {
    last_op_ = "tick";
    now_ += Uniform(0, 30);
    model_.now = now_;
    model_.Tick();
    return Check(TickCmd{}, LockStatus::kGranted, nullptr);
  }
  const int client = Uniform(0, kOwners / 2 - 1);
  if (roll < 94) {
    last_op_ = "simu-crash";
    const int gw = Uniform(0, kGateways - 1);
    model_.Bump(gw);
    Effects fx = Apply(SimuCrashCmd{"", GatewayName(gw)});
    // One SM_NOTIFY per monitored host, carrying the new state.
    int notifies = 0;
    for (const Event& e : fx.events) {
      if (const auto* n = std::get_if<SmNotifyEvent>(&e.body)) {
        if (n->target != ClientName(notifies) || n->mon_name != GatewayName(gw) ||
            n->state != model_.gateways[gw].nsm_state) {
          return "wrong SM_NOTIFY event";
        }
        ++notifies;
      }
    }
    if (notifies != kOwners / 2 ||
        fx.reply.nsm_state != model_.gateways[gw].nsm_state) {
      return "SIMU_CRASH did not notify every monitored host";
    }
    return CheckEvents(fx.events);
  }
  if (roll < 96) {
    last_op_ = "client-reboot";
    client_state_[client] += 2;
    return "";
  }
  if (roll < 99) {
    last_op_ = "notify";
    // Mostly the current state; sometimes a stale or a future one.
    const int32_t state = client_state_[client] + 2 * Uniform(-1, 1);
    const bool stale = model_.Notify(client, state);
    NotifyCmd c{"", GatewayName(Uniform(0, 1)), ClientName(client), state};
    Effects fx = Apply(c);
    if (fx.reply.stale != stale) return "notify staleness differs";
    stale_ += stale;
    int callbacks = 0;
    for (const Event& e : fx.events) {
      if (const auto* cb = std::get_if<StatusCallbackEvent>(&e.body)) {
        if (cb->mon_name != ClientName(client) || cb->state != state ||
            !(cb->my_id == kLockd)) {
          return "wrong status callback";
        }
        ++callbacks;
      }
    }
    if (callbacks != (stale ? 0 : kGateways)) {
      return "one status callback per registration expected";
    }
    return CheckEvents(fx.events);
  }
  last_op_ = "free-all";
  model_.FreeAll(client, client_state_[client]);
  return Check(FreeAllCmd{"", GatewayName(0), ClientName(client),
                          client_state_[client]},
               LockStatus::kGranted, nullptr);
}

std::string RandomRun::ShareStep(int roll) {
  const int file = Uniform(0, kFiles - 1);
  const int gw = Uniform(0, kGateways - 1);
  const int client = Uniform(0, kOwners / 2 - 1);
  const int oh = Uniform(0, 1);
  if (roll < 56) {
    last_op_ = "share";
    ModelShare m{client, oh, static_cast<uint8_t>(Uniform(0, 3)),
                 static_cast<uint8_t>(Uniform(0, 3)), gw,
                 client_state_[client]};
    const bool reclaim = nsm_ && Chance(15);
    ShareCmd c;
    c.gateway = GatewayName(gw);
    c.fh = FileName(file);
    c.client = ClientName(client);
    c.oh = "o" + std::to_string(oh);
    c.access = static_cast<ShareMode>(m.access);
    c.deny = static_cast<ShareMode>(m.deny);
    c.reclaim = reclaim;
    c.client_state = m.state;
    return Check(c, model_.Share(file, m, reclaim), nullptr);
  }
  if (roll < 58) {
    last_op_ = "unshare";
    UnshareCmd c{"", GatewayName(gw), FileName(file), ClientName(client),
                 "o" + std::to_string(oh)};
    return Check(c, model_.Unshare(file, client, oh, gw), nullptr);
  }
  last_op_ = "force-release";
  ForceReleaseCmd c;
  switch (Uniform(0, 2)) {
    case 0: {
      const int owner = Uniform(0, kOwners - 1);
      c.target = ForceReleaseCmd::Target::kOwner;
      c.owner = ModelOwner(owner);
      model_.ForceReleaseOwner(owner);
      break;
    }
    case 1:
      c.target = ForceReleaseCmd::Target::kClient;
      c.client = ClientName(client);
      model_.ForceReleaseClient(client);
      break;
    default:
      c.target = ForceReleaseCmd::Target::kFile;
      c.fh = FileName(file);
      model_.ForceReleaseFile(file);
  }
  return Check(c, LockStatus::kGranted, nullptr);
}

// Acks a few pending SM_NOTIFY / status-callback events of one gateway.
std::string RandomRun::AckNsmEvents() {
  last_op_ = "ack-nsm-events";
  const std::string gw = GatewayName(Uniform(0, kGateways - 1));
  for (const Event& e : core_.PendingEvents(gw, 0, 8)) {
    if (std::holds_alternative<GrantedEvent>(e.body)) continue;
    Effects fx = Apply(AckEventCmd{"", gw, e.sequence,
                                   static_cast<AckOutcome>(Uniform(0, 2))});
    if (fx.reply.status != LockStatus::kGranted || !fx.events.empty()) {
      return "ack of an NSM event failed";
    }
  }
  return "";
}

std::string RandomRun::CompareState() {
  // Confirmed locks, expanded to segments, per (file, owner).
  std::array<std::array<std::array<ModelSeg, kSegs>, kOwners>, kFiles> held{};
  std::vector<std::tuple<int, int, int, int, bool, uint64_t>> grants;
  for (const LockInfo& l : core_.ListLocks({}, 0, 1 << 20)) {
    const int f = l.fh[1] - '0';
    const int o = ModelOwnerIndex(l.owner);
    const Interval iv = ToInterval(l.range);
    int i = -1, j = -1;
    for (int k = 0; k < kSegs; ++k) {
      if (SegStart(k) == iv.start) i = k;
      if (SegEnd(k) == iv.end) j = k;
    }
    if (o < 0 || i < 0 || j < 0) return "lock off the segment grid";
    if (l.unconfirmed) {
      grants.emplace_back(f, o, i, j, l.exclusive, l.fencing_token);
      continue;
    }
    for (int k = i; k <= j; ++k) {
      if (held[f][o][k].mode != 0) return "one owner's locks overlap";
      held[f][o][k] = ModelSeg{static_cast<uint8_t>(l.exclusive ? 2 : 1),
                               l.gateway[1] - '0', l.client_state,
                               l.monitored};
    }
  }
  for (int f = 0; f < kFiles; ++f) {
    for (int o = 0; o < kOwners; ++o) {
      for (int k = 0; k < kSegs; ++k) {
        if (!(held[f][o][k] == model_.held[f][o][k])) {
          return absl::StrCat("held bytes differ: file ", f, " owner ", o,
                              " segment ", k, " core mode ",
                              held[f][o][k].mode, " model mode ",
                              model_.held[f][o][k].mode);
        }
      }
    }
  }
  std::vector<std::tuple<int, int, int, int, bool, uint64_t>> want;
  for (const ModelReq& g : model_.grants) {
    want.emplace_back(g.file, g.owner, g.i, g.j, g.excl, g.token);
  }
  std::sort(grants.begin(), grants.end());
  std::sort(want.begin(), want.end());
  if (grants != want) return "unconfirmed grants differ";
  std::array<std::vector<std::tuple<int, int, int, bool>>, kFiles> queues;
  for (const WaiterInfo& w : core_.ListWaiters({}, 0, 1 << 20)) {
    const int o = ModelOwnerIndex(w.owner);
    const Interval iv = ToInterval(w.range);
    int i = -1, j = -1;
    for (int k = 0; k < kSegs; ++k) {
      if (SegStart(k) == iv.start) i = k;
      if (SegEnd(k) == iv.end) j = k;
    }
    queues[w.fh[1] - '0'].emplace_back(o, i, j, w.exclusive);
  }
  for (int f = 0; f < kFiles; ++f) {
    std::vector<std::tuple<int, int, int, bool>> q;
    for (const ModelReq& w : model_.waiters[f]) {
      q.emplace_back(w.owner, w.i, w.j, w.excl);
    }
    if (q != queues[f]) return absl::StrCat("waiter queue of f", f, " differs");
  }
  std::array<std::vector<std::tuple<int, int, int, int, int>>, kFiles> sh;
  for (const ShareInfo& x : core_.ListShares({}, 0, 1 << 20)) {
    sh[x.fh[1] - '0'].emplace_back(x.client[1] - '0', x.oh[1] - '0',
                                   static_cast<int>(x.access),
                                   static_cast<int>(x.deny),
                                   x.gateway[1] - '0');
  }
  for (int f = 0; f < kFiles; ++f) {
    std::vector<std::tuple<int, int, int, int, int>> want_shares;
    for (const ModelShare& x : model_.shares[f]) {
      want_shares.emplace_back(x.client, x.oh, x.access, x.deny, x.gw);
    }
    if (want_shares != sh[f]) return absl::StrCat("shares of f", f, " differ");
  }
  for (const GatewayInfo& g : core_.ListGateways()) {
    if (g.draining != model_.gateways[g.name[1] - '0'].draining) {
      return absl::StrCat("drain flag of gateway ", g.name, " differs");
    }
  }
  if (nsm_) {
    for (const GatewayInfo& g : core_.ListGateways()) {
      const ModelGateway& m = model_.gateways[g.name[1] - '0'];
      if (g.nsm_state != m.nsm_state || g.grace_until_ms != m.grace_until ||
          g.ledger.size() != m.ledger.size()) {
        return absl::StrCat("gateway ", g.name, " differs");
      }
    }
  }
  return "";
}

std::string RandomRun::RebuildAndSwap() {
  if (core_.Snapshot() != store_) return "store differs from the snapshot";
  std::vector<std::pair<std::string, std::string>> kv(store_.begin(),
                                                      store_.end());
  absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options_, kv);
  if (!rebuilt.ok()) return std::string(rebuilt.status().message());
  if (rebuilt->Snapshot() != store_) return "rebuilt snapshot differs";
  if (rebuilt->DebugString() != core_.DebugString()) {
    return "rebuilt state differs from the live state";
  }
  // Restart with another dedup limit (a server restarted with another
  // dedup_entries_max; each at least the 100 ids the run retries): the
  // records of the old ring migrate into the new one while the run goes on
  // (Snapshot() == store checked every 97 steps), and retries are still
  // answered from the table.
  static constexpr size_t kDedupLimits[] = {300, 150, 1000, 200};
  options_.dedup_entries_max = kDedupLimits[++rebuilds_ % 4];
  rebuilt = LockCore::Rebuild(options_, kv);
  if (!rebuilt.ok()) return std::string(rebuilt.status().message());
  if (rebuilt->Snapshot() != store_) return "re-limited snapshot differs";
  absl::Status inv = rebuilt->CheckInvariants();
  if (!inv.ok()) return std::string(inv.message());
  core_ = *std::move(rebuilt);  // Carry on with the rebuilt core.
  return "";
}

TEST(LockCoreRandomTest, LocksWaitersGrantsAgainstReferenceModel) {
  std::cout << "seed " << g_seed << " (replay with --seed=" << g_seed
            << ")" << std::endl;
  RandomRun run(g_seed, /*nsm=*/false);
  const std::string err = run.Run(kSteps);
  EXPECT_EQ(err, "") << "seed " << g_seed;
}

TEST(LockCoreRandomTest, WithNsmGraceAndNotifyAgainstReferenceModel) {
  std::cout << "seed " << g_seed + 1 << std::endl;
  RandomRun run(g_seed + 1, /*nsm=*/true);
  const std::string err = run.Run(kSteps);
  EXPECT_EQ(err, "") << "seed " << g_seed + 1 << " (replay with --seed="
                     << g_seed << ")";
}

}  // namespace
}  // namespace lockwarden::core::testing

int main(int argc, char** argv) {
  using lockwarden::core::testing::g_seed;
  g_seed = static_cast<uint64_t>(
      std::chrono::system_clock::now().time_since_epoch().count());
  if (const char* env = std::getenv("LW_SEED")) {
    g_seed = std::strtoull(env, nullptr, 10);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--seed=", 0) == 0) {
      g_seed = std::strtoull(arg.c_str() + 7, nullptr, 10);
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
