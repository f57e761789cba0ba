#include "server/core/reference_model.h"

namespace lockwarden::core::testing {

bool ReferenceModel::Conflicts(const ModelReq& r) const {
  for (int o = 0; o < kOwners; ++o) {
    if (o == r.owner) continue;
    for (int k = r.i; k <= r.j; ++k) {
      const uint8_t m = held[r.file][o][k].mode;
      if (m == 2 || (m == 1 && r.excl)) return true;
    }
  }
  for (const ModelReq& g : grants) {
    if (g.file == r.file && g.owner != r.owner && Overlap(g, r) &&
        (g.excl || r.excl)) {
      return true;
    }
  }
  return false;
}

bool ReferenceModel::Holds(int owner, int file, int i, int j,
                           bool excl) const {
  for (const ModelReq& g : grants) {
    if (g.owner == owner && g.file == file && g.i == i && g.j == j &&
        g.excl == excl) {
      return true;
    }
  }
  for (int k = i; k <= j; ++k) {
    if (held[file][owner][k].mode != (excl ? 2 : 1)) return false;
  }
  return true;
}

void ReferenceModel::Set(const ModelReq& r) {
  for (int k = r.i; k <= r.j; ++k) {
    held[r.file][r.owner][k] = ModelSeg{static_cast<uint8_t>(r.excl ? 2 : 1),
                                        r.gw, r.state, r.mon};
  }
}

bool ReferenceModel::WaiterBlocked(int file, size_t index) const {
  const ModelReq& w = waiters[file][index];
  if (Conflicts(w)) return true;
  for (size_t e = 0; e < index; ++e) {
    const ModelReq& x = waiters[file][e];
    if (x.owner != w.owner && Overlap(x, w) && (x.excl || w.excl)) return true;
  }
  return false;
}

void ReferenceModel::Scan(int file) {
  for (size_t i = 0; i < waiters[file].size();) {
    if (WaiterBlocked(file, i)) {
      ++i;
      continue;
    }
    ModelReq g = waiters[file][i];
    g.deadline = now + options_.grant_timeout_ms;
    grants.push_back(g);
    expected_grants.push_back(g);
    waiters[file].erase(waiters[file].begin() + static_cast<long>(i));
  }
}

void ReferenceModel::Blockers(const ModelReq& r, size_t earlier,
                              std::set<int>& out) const {
  for (int o = 0; o < kOwners; ++o) {
    if (o == r.owner) continue;
    for (int k = r.i; k <= r.j; ++k) {
      const uint8_t m = held[r.file][o][k].mode;
      if (m == 2 || (m == 1 && r.excl)) out.insert(o);
    }
  }
  for (const ModelReq& g : grants) {
    if (g.file == r.file && g.owner != r.owner && Overlap(g, r) &&
        (g.excl || r.excl)) {
      out.insert(g.owner);
    }
  }
  for (size_t e = 0; e < earlier; ++e) {
    const ModelReq& x = waiters[r.file][e];
    if (x.owner != r.owner && Overlap(x, r) && (x.excl || r.excl)) {
      out.insert(x.owner);
    }
  }
}

bool ReferenceModel::Deadlock(const ModelReq& r) const {
  std::set<int> start;
  Blockers(r, waiters[r.file].size(), start);
  std::set<int> seen;
  std::function<bool(int)> reaches = [&](int x) -> bool {
    if (x == r.owner) return true;
    if (!seen.insert(x).second) return false;
    for (int f = 0; f < kFiles; ++f) {
      for (size_t i = 0; i < waiters[f].size(); ++i) {
        if (waiters[f][i].owner != x) continue;
        std::set<int> next;
        Blockers(waiters[f][i], i, next);
        for (int y : next) {
          if (reaches(y)) return true;
        }
      }
    }
    return false;
  };
  for (int x : start) {
    if (reaches(x)) return true;
  }
  return false;
}

bool ReferenceModel::GraceRefuses(int gw, int client, bool reclaim) {
  ModelGateway& g = gateways[gw];
  if (!(g.grace_until > now)) return reclaim;
  auto it = g.ledger.find(client);
  if (reclaim) {
    if (it != g.ledger.end()) it->second.first = true;
    return false;
  }
  if (it != g.ledger.end() && it->second.first && !it->second.second) {
    it->second.second = true;
    LiftIfDone(g);
    if (!(g.grace_until > now)) return false;
  }
  return true;
}

void ReferenceModel::LiftIfDone(ModelGateway& g) {
  if (g.grace_until == 0) return;
  for (const auto& [c, flags] : g.ledger) {
    if (!flags.second) return;
  }
  g.grace_until = 0;
  g.ledger.clear();
}

void ReferenceModel::MarkDone(int client) {
  for (ModelGateway& g : gateways) {
    if (g.grace_until == 0) continue;
    auto it = g.ledger.find(client);
    if (it == g.ledger.end() || it->second.second) continue;
    it->second.second = true;
    LiftIfDone(g);
  }
}

void ReferenceModel::Record(int client, int32_t state) {
  if (state == 0) return;
  auto it = client_states.find(client);
  if (it == client_states.end() || NsmStateNewer(state, it->second)) {
    client_states[client] = state;
  }
}

LockStatus ReferenceModel::Lock(const ModelReq& r, bool block) {
  if (gateways[r.gw].draining) block = false;  // Drained: never queue.
  if (GraceRefuses(r.gw, ClientOf(r.owner), r.reclaim)) {
    return LockStatus::kGrace;
  }
  Record(ClientOf(r.owner), r.state);
  for (size_t g = 0; g < grants.size(); ++g) {
    const ModelReq& x = grants[g];
    if (x.owner == r.owner && x.file == r.file && x.i == r.i && x.j == r.j &&
        x.excl == r.excl) {
      const ModelReq confirmed = x;
      grants.erase(grants.begin() + static_cast<long>(g));
      Set(confirmed);
      Scan(r.file);
      return LockStatus::kGranted;
    }
  }
  if (block) {
    for (const ModelReq& w : waiters[r.file]) {
      if (w.owner == r.owner && w.i == r.i && w.j == r.j && w.excl == r.excl) {
        return LockStatus::kBlocked;
      }
    }
  }
  if (Conflicts(r)) {
    if (!block) return LockStatus::kDenied;
    if (Deadlock(r)) return LockStatus::kDeadlock;
    if (waiters[r.file].size() >= options_.waiters_per_file_max) {
      return LockStatus::kNoLocks;
    }
    waiters[r.file].push_back(r);
    return LockStatus::kBlocked;
  }
  Set(r);
  Scan(r.file);
  return LockStatus::kGranted;
}

LockStatus ReferenceModel::Unlock(int owner, int file, int i, int j, int gw) {
  if (GraceRefuses(gw, ClientOf(owner), false)) return LockStatus::kGrace;
  for (int k = i; k <= j; ++k) held[file][owner][k] = ModelSeg{};
  Scan(file);
  return LockStatus::kGranted;
}

LockStatus ReferenceModel::Cancel(const ModelReq& r) {
  if (GraceRefuses(r.gw, ClientOf(r.owner), false)) return LockStatus::kGrace;
  auto same = [&r](const ModelReq& x) {
    return x.owner == r.owner && x.file == r.file && x.i == r.i &&
           x.j == r.j && x.excl == r.excl;
  };
  auto& q = waiters[r.file];
  for (size_t i = 0; i < q.size(); ++i) {
    if (same(q[i])) {
      q.erase(q.begin() + static_cast<long>(i));
      Scan(r.file);
      return LockStatus::kGranted;
    }
  }
  for (size_t g = 0; g < grants.size(); ++g) {
    if (same(grants[g])) {
      grants.erase(grants.begin() + static_cast<long>(g));
      Scan(r.file);
      return LockStatus::kGranted;
    }
  }
  return LockStatus::kDenied;
}

LockStatus ReferenceModel::Test(const ModelReq& r) const {
  if (gateways[r.gw].grace_until > now) return LockStatus::kGrace;
  return Conflicts(r) ? LockStatus::kDenied : LockStatus::kGranted;
}

bool ReferenceModel::Ack(uint64_t token, AckOutcome outcome) {
  for (size_t g = 0; g < grants.size(); ++g) {
    if (grants[g].token != token) continue;
    const ModelReq x = grants[g];
    grants.erase(grants.begin() + static_cast<long>(g));
    if (outcome == AckOutcome::kDelivered) Set(x);
    Scan(x.file);
    return true;
  }
  return false;
}

void ReferenceModel::Tick() {
  for (;;) {
    // The earliest (deadline, token) due.
    int best = -1;
    for (size_t g = 0; g < grants.size(); ++g) {
      if (grants[g].deadline > now) continue;
      if (best < 0 || std::make_pair(grants[g].deadline, grants[g].token) <
                          std::make_pair(grants[best].deadline,
                                         grants[best].token)) {
        best = static_cast<int>(g);
      }
    }
    if (best < 0) break;
    const int file = grants[best].file;
    grants.erase(grants.begin() + best);
    Scan(file);
  }
  for (ModelGateway& g : gateways) {
    if (g.grace_until != 0 && g.grace_until <= now) {
      g.grace_until = 0;
      g.ledger.clear();
    }
  }
}

void ReferenceModel::Release(
    const std::function<bool(int, int, int, int32_t, bool)>& pred,
    int file) {
  for (int f = 0; f < kFiles; ++f) {  // "f0" < "f1" < "f2": name order.
    if (file >= 0 && f != file) continue;
    auto& sh = shares[f];
    sh.erase(std::remove_if(sh.begin(), sh.end(),
                            [&](const ModelShare& x) {
                              return pred(x.client, -1, x.gw, x.state, true);
                            }),
             sh.end());
    auto& q = waiters[f];
    q.erase(std::remove_if(q.begin(), q.end(),
                           [&](const ModelReq& w) {
                             return pred(ClientOf(w.owner), w.owner, w.gw,
                                         w.state, w.mon);
                           }),
            q.end());
    for (int o = 0; o < kOwners; ++o) {
      for (ModelSeg& s : held[f][o]) {
        if (s.mode != 0 && pred(ClientOf(o), o, s.gw, s.state, s.mon)) {
          s = ModelSeg{};
        }
      }
    }
    grants.erase(std::remove_if(grants.begin(), grants.end(),
                                [&](const ModelReq& g) {
                                  return g.file == f &&
                                         pred(ClientOf(g.owner), g.owner, g.gw,
                                              g.state, g.mon);
                                }),
                 grants.end());
    Scan(f);
  }
}

void ReferenceModel::Bump(int gw) {
  std::set<int> holders;
  for (int f = 0; f < kFiles; ++f) {
    for (int o = 0; o < kOwners; ++o) {
      for (const ModelSeg& s : held[f][o]) {
        if (s.mode != 0 && s.gw == gw) holders.insert(ClientOf(o));
      }
    }
  }
  for (const ModelReq& g : grants) {
    if (g.gw == gw) holders.insert(ClientOf(g.owner));
  }
  for (const auto& sh : shares) {
    for (const ModelShare& x : sh) {
      if (x.gw == gw) holders.insert(x.client);
    }
  }
  Release([gw](int, int, int g, int32_t, bool) { return g == gw; });
  ModelGateway& g = gateways[gw];
  g.nsm_state += 2;
  g.ledger.clear();
  for (int c : holders) g.ledger[c] = {false, false};
  g.grace_until = (holders.empty() || options_.grace_period_ms <= 0)
                      ? 0
                      : now + options_.grace_period_ms;
}

bool ReferenceModel::Notify(int client, int32_t state) {
  auto older = [client, state](int c, int, int, int32_t s, bool mon) {
    return mon && c == client && NsmStateNewer(state, s);
  };
  auto rec = client_states.find(client);
  const bool fresh =
      rec == client_states.end() || NsmStateNewer(state, rec->second);
  if (!fresh) {
    bool any = false;
    for (int f = 0; f < kFiles; ++f) {
      for (int o = 0; o < kOwners; ++o) {
        for (const ModelSeg& s : held[f][o]) {
          any |= s.mode != 0 && older(ClientOf(o), o, s.gw, s.state, s.mon);
        }
      }
      for (const ModelReq& w : waiters[f]) {
        any |= older(ClientOf(w.owner), w.owner, w.gw, w.state, w.mon);
      }
      for (const ModelShare& x : shares[f]) {
        any |= older(x.client, -1, x.gw, x.state, true);
      }
    }
    for (const ModelReq& g : grants) {
      any |= older(ClientOf(g.owner), g.owner, g.gw, g.state, g.mon);
    }
    if (!(rec->second == state && any)) return true;
  }
  Record(client, state);
  Release(older);
  MarkDone(client);
  return false;
}

void ReferenceModel::FreeAll(int client, int32_t state) {
  Release([client](int c, int, int, int32_t, bool) { return c == client; });
  Record(client, state);
  MarkDone(client);
}

LockStatus ReferenceModel::Share(int file, const ModelShare& share,
                                 bool reclaim) {
  if (GraceRefuses(share.gw, share.client, reclaim)) return LockStatus::kGrace;
  Record(share.client, share.state);
  ModelShare* mine = nullptr;
  for (ModelShare& x : shares[file]) {
    if (x.client == share.client && x.oh == share.oh) {
      mine = &x;
    } else if ((share.access & x.deny) || (share.deny & x.access)) {
      return LockStatus::kDenied;
    }
  }
  if (mine != nullptr) {
    *mine = share;
  } else {
    shares[file].push_back(share);
  }
  return LockStatus::kGranted;
}

LockStatus ReferenceModel::Unshare(int file, int client, int oh, int gw) {
  if (GraceRefuses(gw, client, false)) return LockStatus::kGrace;
  auto& sh = shares[file];
  for (size_t i = 0; i < sh.size(); ++i) {
    if (sh[i].client == client && sh[i].oh == oh) {
      sh.erase(sh.begin() + static_cast<long>(i));
      break;
    }
  }
  return LockStatus::kGranted;
}

void ReferenceModel::ForceReleaseOwner(int owner) {
  Release([owner](int, int o, int, int32_t, bool) { return o == owner; });
}

void ReferenceModel::ForceReleaseClient(int client) {
  Release([client](int c, int, int, int32_t, bool) { return c == client; });
}

void ReferenceModel::ForceReleaseFile(int file) {
  Release([](int, int, int, int32_t, bool) { return true; }, file);
}

}  // namespace lockwarden::core::testing
