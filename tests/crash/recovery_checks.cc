#include "tests/crash/recovery_checks.h"

#include <algorithm>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "server/core/lock_core.h"
#include "server/service/convert.h"
#include "server/store/rocksdb_store.h"
#include "tests/crash/traffic.h"

namespace lockwarden::crash {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
// Timeout of each retried request.
constexpr absl::Duration kRetryTimeout = absl::Seconds(10);

struct Span {  // Inclusive byte interval.
  uint64_t start = 0;
  uint64_t end = 0;
};

Span ToSpan(const v1::ByteRange& r) {
  if (r.length() == 0 || r.length() - 1 > kMax - r.offset()) return {r.offset(), kMax};
  return {r.offset(), r.offset() + r.length() - 1};
}

bool SameOwner(const v1::LockOwner& a, const v1::LockOwner& b) {
  return a.client_name() == b.client_name() && a.svid() == b.svid() && a.oh() == b.oh();
}

bool Overlap(Span a, Span b) { return a.start <= b.end && b.start <= a.end; }

// `pieces` minus `cut`.
std::vector<Span> Subtract(const std::vector<Span>& pieces, Span cut) {
  std::vector<Span> out;
  for (Span p : pieces) {
    if (!Overlap(p, cut)) {
      out.push_back(p);
      continue;
    }
    if (p.start < cut.start) out.push_back({p.start, cut.start - 1});
    if (p.end > cut.end) out.push_back({cut.end + 1, p.end});
  }
  return out;
}

// Whether `need` is covered by the union of `have`.
bool Covered(Span need, std::vector<Span> have) {
  std::sort(have.begin(), have.end(), [](Span a, Span b) { return a.start < b.start; });
  uint64_t next = need.start;  // First byte not yet covered.
  for (Span h : have) {
    if (h.start > next) break;
    if (h.end >= next) {
      if (h.end >= need.end) return true;
      next = h.end + 1;
    }
  }
  return false;
}

std::string Listings(testing::Stubs& stubs) {
  std::string out;
  auto locks = testing::ListAllLocks(*stubs.admin);
  auto waiters = testing::ListAllWaiters(*stubs.admin);
  auto shares = testing::ListAllShares(*stubs.admin);
  if (!locks.ok() || !waiters.ok() || !shares.ok()) return "listing failed";
  for (const auto& l : *locks) absl::StrAppend(&out, l.ShortDebugString(), "\n");
  for (const auto& w : *waiters) absl::StrAppend(&out, w.ShortDebugString(), "\n");
  for (const auto& s : *shares) absl::StrAppend(&out, s.ShortDebugString(), "\n");
  return out;
}

template <typename Proto>
std::string CompareRows(const char* what, const std::vector<Proto>& want,
                        const std::vector<Proto>& got) {
  if (want.size() != got.size()) {
    return absl::StrCat(what, ": store has ", want.size(), ", server lists ", got.size());
  }
  for (size_t i = 0; i < want.size(); ++i) {
    if (!google::protobuf::util::MessageDifferencer::Equals(want[i], got[i])) {
      return absl::StrCat(what, " #", i, " differs:\n  store:  ", want[i].ShortDebugString(),
                          "\n  server: ", got[i].ShortDebugString());
    }
  }
  return "";
}

}  // namespace

absl::StatusOr<KeyValues> LoadStore(const std::string& dir) {
  store::RocksDbStoreOptions o;
  o.create_if_missing = false;
  auto db = store::RocksDbStore::Open(dir, o);
  if (!db.ok()) return db.status();
  return (*db)->LoadAll();
}

std::string CompareServerWithStore(testing::Stubs& stubs, const KeyValues& kvs,
                                   const core::CoreOptions& options) {
  auto core = core::LockCore::Rebuild(options, kvs);
  if (!core.ok()) return absl::StrCat("rebuilding from the store: ", core.status().ToString());
  std::vector<v1::Lock> want_locks;
  std::vector<v1::Waiter> want_waiters;
  std::vector<v1::Share> want_shares;
  for (const core::LockInfo& l : core->ListLocks({}, 0, kMax)) {
    service::ToProto(l, &want_locks.emplace_back());
  }
  for (const core::WaiterInfo& w : core->ListWaiters({}, 0, kMax)) {
    service::ToProto(w, &want_waiters.emplace_back());
  }
  for (const core::ShareInfo& s : core->ListShares({}, 0, kMax)) {
    service::ToProto(s, &want_shares.emplace_back());
  }
  auto locks = testing::ListAllLocks(*stubs.admin);
  if (!locks.ok()) return locks.status().ToString();
  auto waiters = testing::ListAllWaiters(*stubs.admin);
  if (!waiters.ok()) return waiters.status().ToString();
  for (v1::Waiter& w : *waiters) {
    // Derived by the admin service from the queue, not persisted state.
    w.clear_queue_position();
    w.clear_blocked_by();
  }
  auto shares = testing::ListAllShares(*stubs.admin);
  if (!shares.ok()) return shares.status().ToString();
  std::string diff = CompareRows("lock", want_locks, *locks);
  if (diff.empty()) diff = CompareRows("waiter", want_waiters, *waiters);
  if (diff.empty()) diff = CompareRows("share", want_shares, *shares);
  return diff;
}

std::string FindConflictingLocks(const std::vector<v1::Lock>& locks) {
  for (size_t i = 0; i < locks.size(); ++i) {
    for (size_t j = i + 1; j < locks.size(); ++j) {
      const v1::Lock& a = locks[i];
      const v1::Lock& b = locks[j];
      if (a.file_handle() != b.file_handle() || SameOwner(a.owner(), b.owner())) continue;
      if (!a.exclusive() && !b.exclusive()) continue;
      if (Overlap(ToSpan(a.range()), ToSpan(b.range()))) {
        return absl::StrCat("conflicting locks held:\n  ", a.ShortDebugString(), "\n  ",
                            b.ShortDebugString());
      }
    }
  }
  return "";
}

std::string FindMissingAckedLocks(const History& history, const std::vector<v1::Lock>& locks) {
  struct Held {
    const Op* op;
    Span span;
  };
  struct Release {
    Span span;
    int64_t complete_ns;
  };
  struct PerOwnerFile {  // Everything about one (file, owner).
    std::vector<Held> held;
    std::vector<Release> releases;
    std::vector<Span> have;
  };
  // Key: file handle and owner, length-prefixed so no two collide.
  auto key = [](const std::string& fh, const v1::LockOwner& o) {
    return absl::StrCat(fh.size(), ":", fh, o.client_name().size(), ":", o.client_name(), "/",
                        o.svid(), "/", o.oh());
  };
  absl::flat_hash_map<std::string, PerOwnerFile> by_key;
  for (const Op& op : history) {
    if (const auto* r = std::get_if<v1::LockRequest>(&op.request)) {
      if (op.acked && op.reply.rfind("LOCK_STATUS_GRANTED", 0) == 0) {
        by_key[key(r->file_handle(), r->owner())].held.push_back({&op, ToSpan(r->range())});
      }
    } else if (const auto* r = std::get_if<v1::UnlockRequest>(&op.request)) {
      by_key[key(r->file_handle(), r->owner())].releases.push_back(
          {ToSpan(r->range()), op.complete_ns});
    } else if (const auto* r = std::get_if<v1::CancelRequest>(&op.request)) {
      by_key[key(r->file_handle(), r->owner())].releases.push_back(
          {ToSpan(r->range()), op.complete_ns});
    } else if (const auto* r = std::get_if<v1::AckGrantRequest>(&op.request)) {
      const v1::GrantEvent& e = op.event;
      PerOwnerFile& p = by_key[key(e.file_handle(), e.owner())];
      if (r->outcome() != v1::GRANT_OUTCOME_DELIVERED) {
        p.releases.push_back({ToSpan(e.range()), op.complete_ns});
      } else if (op.acked && op.reply == "applied=1 lock_held=1") {
        p.held.push_back({&op, ToSpan(e.range())});
      }
    }
  }
  for (const v1::Lock& l : locks) {
    auto it = by_key.find(key(l.file_handle(), l.owner()));
    if (it != by_key.end()) it->second.have.push_back(ToSpan(l.range()));
  }
  for (const auto& [unused, p] : by_key) {
    for (const Held& h : p.held) {
      std::vector<Span> need = {h.span};
      for (const Release& r : p.releases) {
        // A release that completed before the lock was requested cannot undo it.
        if (r.complete_ns >= h.op->invoke_ns) need = Subtract(need, r.span);
        if (need.empty()) break;
      }
      for (Span s : need) {
        if (!Covered(s, p.have)) {
          return absl::StrCat("acknowledged lock lost: bytes [", s.start, ", ", s.end,
                              "] of\n  ", h.op->Describe(), "\nare not held any more");
        }
      }
    }
  }
  return "";
}

std::string CheckRetriesAreDeduplicated(testing::Stubs& stubs, const History& history,
                                        int count, std::mt19937_64& rng) {
  std::vector<const Op*> acked;
  for (const Op& op : history) {
    if (op.acked) acked.push_back(&op);
  }
  if (acked.empty()) return "";
  const std::string before = Listings(stubs);
  for (int i = 0; i < count; ++i) {
    const Op& original = *acked[rng() % acked.size()];
    Op retry = Invoke(stubs, original.lane, original.request, kRetryTimeout);
    if (!retry.acked) {
      return absl::StrCat("retry failed (", retry.error, ") for ", original.Describe());
    }
    if (retry.reply != original.reply) {
      return absl::StrCat("retry answered '", retry.reply, "' instead of the original '",
                          original.reply, "' for ", original.Describe());
    }
  }
  const std::string after = Listings(stubs);
  if (before != after) {
    return absl::StrCat("retried requests changed the state:\n", LineDiff(before, after));
  }
  return "";
}

}  // namespace lockwarden::crash
