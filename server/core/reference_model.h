// A brute-force reference model of the lock core for the randomised test.
// Written independently of the core: byte ranges are runs of "segments"
// between a few fixed breakpoints (including 0 and 2^64-1), every owner's
// holding is an array of per-segment modes, conflicts are naive scans,
// waiter queues are plain vectors and deadlock is a DFS over owners with
// edges recomputed from scratch. Slow on purpose, obviously right.
//
// Thread-safety: single-threaded tests only.
#ifndef LOCKWARDEN_SERVER_CORE_REFERENCE_MODEL_H_
#define LOCKWARDEN_SERVER_CORE_REFERENCE_MODEL_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "server/core/lock_core.h"

namespace lockwarden::core::testing {

inline constexpr uint64_t kModelMax = std::numeric_limits<uint64_t>::max();
inline constexpr std::array<uint64_t, 9> kBreaks = {
    0, 1, 2, 100, 101, uint64_t{1} << 63, kModelMax - 2, kModelMax - 1,
    kModelMax};
inline constexpr int kSegs = static_cast<int>(kBreaks.size());
inline constexpr int kFiles = 3;
inline constexpr int kOwners = 6;    // Clients c0..c2 x svid 1..2.
inline constexpr int kGateways = 2;  // g0, g1.

inline uint64_t SegStart(int i) { return kBreaks[i]; }
inline uint64_t SegEnd(int j) {
  return j + 1 < kSegs ? kBreaks[j + 1] - 1 : kModelMax;
}
inline std::string FileName(int f) { return "f" + std::to_string(f); }
inline std::string GatewayName(int g) { return "g" + std::to_string(g); }
inline int ClientOf(int owner) { return owner / 2; }
inline std::string ClientName(int c) { return "c" + std::to_string(c); }
inline const Owner& ModelOwner(int o) {
  static const std::array<Owner, kOwners> owners = [] {
    std::array<Owner, kOwners> a;
    for (int i = 0; i < kOwners; ++i) {
      a[i] = Owner{ClientName(ClientOf(i)), static_cast<uint32_t>(i % 2 + 1),
                   "oh"};
    }
    return a;
  }();
  return owners[o];
}
// The model index of a core owner, or -1.
inline int ModelOwnerIndex(const Owner& owner) {
  if (owner.client.size() != 2 || owner.svid < 1 || owner.svid > 2) return -1;
  const int o = (owner.client[1] - '0') * 2 + static_cast<int>(owner.svid) - 1;
  return (o >= 0 && o < kOwners && ModelOwner(o) == owner) ? o : -1;
}

struct ModelSeg {
  uint8_t mode = 0;  // 0 none, 1 shared, 2 exclusive.
  int gw = 0;
  int32_t state = 0;
  bool mon = true;  // False for NM_LOCK.
  friend bool operator==(const ModelSeg& a, const ModelSeg& b) {
    return a.mode == b.mode &&
           (a.mode == 0 ||
            (a.gw == b.gw && a.state == b.state && a.mon == b.mon));
  }
};

struct ModelReq {  // One lock request, waiter or grant.
  int owner = 0;
  int file = 0;
  int i = 0, j = 0;  // Segment run.
  bool excl = false;
  int gw = 0;
  int32_t state = 0;
  bool reclaim = false;
  bool mon = true;  // False for NM_LOCK.
  // Grants only:
  uint64_t token = 0;
  uint64_t sequence = 0;
  int64_t deadline = 0;
};

struct ModelShare {
  int client = 0;
  int oh = 0;  // "o0" or "o1".
  uint8_t access = 0;
  uint8_t deny = 0;
  int gw = 0;
  int32_t state = 0;
};

struct ModelGateway {
  int32_t nsm_state = 1;
  int64_t grace_until = 0;
  std::map<int, std::pair<bool, bool>> ledger;  // client -> reclaimed, done.
  bool draining = false;  // DrainGatewayCmd: a blocking LOCK does not wait.
};

class ReferenceModel {
 public:
  explicit ReferenceModel(const CoreOptions& o) : options_(o) {}

  // Each returns the expected status; grants it makes are appended to
  // expected_grants() in order (tokens filled in by the test from events).
  LockStatus Lock(const ModelReq& r, bool block);
  LockStatus Unlock(int owner, int file, int i, int j, int gw);
  LockStatus Cancel(const ModelReq& r);
  LockStatus Test(const ModelReq& r) const;
  // Ack of the grant with `token`; false if no such grant.
  bool Ack(uint64_t token, AckOutcome outcome);
  void Tick();
  void Bump(int gw);
  // Returns true when stale.
  bool Notify(int client, int32_t state);
  void FreeAll(int client, int32_t state);
  LockStatus Share(int file, const ModelShare& share, bool reclaim);
  LockStatus Unshare(int file, int client, int oh, int gw);
  // Admin force-release: of an owner's locks and waiters, of everything of
  // a client, or of everything on a file.
  void ForceReleaseOwner(int owner);
  void ForceReleaseClient(int client);
  void ForceReleaseFile(int file);

  // Conflict against held segments and grants of other owners.
  bool Conflicts(const ModelReq& r) const;
  // Is (owner, file, seg k) held with mode `mode` (confirmed or as grant)?
  bool Holds(int owner, int file, int i, int j, bool excl) const;

  int64_t now = 0;
  std::array<std::array<std::array<ModelSeg, kSegs>, kOwners>, kFiles> held;
  std::vector<ModelReq> grants;  // Unconfirmed, in creation order.
  std::array<std::vector<ModelReq>, kFiles> waiters;
  std::array<std::vector<ModelShare>, kFiles> shares;  // Creation order.
  std::array<ModelGateway, kGateways> gateways;
  std::map<int, int32_t> client_states;
  std::vector<ModelReq> expected_grants;

 private:
  static bool Overlap(const ModelReq& a, const ModelReq& b) {
    return a.i <= b.j && b.i <= a.j;
  }
  void Set(const ModelReq& r);
  void Scan(int file);
  bool WaiterBlocked(int file, size_t index) const;
  void Blockers(const ModelReq& r, size_t earlier, std::set<int>& out) const;
  bool Deadlock(const ModelReq& r) const;
  bool GraceRefuses(int gw, int client, bool reclaim);
  void LiftIfDone(ModelGateway& g);
  void MarkDone(int client);
  void Record(int client, int32_t state);
  // Releases holdings matching pred(client, owner (-1 for shares), gw,
  // state, monitored) in file order (only `file` unless it is -1).
  void Release(const std::function<bool(int client, int owner, int gw,
                                        int32_t state, bool mon)>& pred,
               int file = -1);

  CoreOptions options_;
};

}  // namespace lockwarden::core::testing

#endif  // LOCKWARDEN_SERVER_CORE_REFERENCE_MODEL_H_
