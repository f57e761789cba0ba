// Test harness for the lock core: applies commands, keeps a "store" built
// from every Delta, and checks invariants and rebuild-equality on demand.
//
// Thread-safety: single-threaded tests only.
#ifndef LOCKWARDEN_SERVER_CORE_CORE_TEST_UTIL_H_
#define LOCKWARDEN_SERVER_CORE_CORE_TEST_UTIL_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/core/lock_core.h"

namespace lockwarden::core::testing {

inline Owner MakeOwner(const std::string& client, uint32_t svid,
                       const std::string& oh = "oh") {
  return Owner{client, svid, oh};
}

class CoreHarness {
 public:
  explicit CoreHarness(CoreOptions options = {})
      : options_(options), core_(options) {}

  Effects Apply(const Command& cmd) {
    Effects fx = core_.Apply(cmd, now_ms);
    for (const Mutation& m : fx.delta) {
      if (m.op == Mutation::Op::kPut) {
        store_[m.key] = m.value;
      } else {
        store_.erase(m.key);
      }
    }
    return fx;
  }

  LockCmd LockReq(const std::string& fh, const Owner& owner, uint64_t offset,
                  uint64_t length, bool exclusive, bool block = false) {
    LockCmd c;
    c.gateway = gateway;
    c.fh = fh;
    c.owner = owner;
    c.range = {offset, length};
    c.exclusive = exclusive;
    c.block = block;
    c.client_state = 1;
    c.callback = "cb:" + owner.client;
    c.cookie = "ck";
    return c;
  }

  Reply Lock(const std::string& fh, const Owner& owner, uint64_t offset,
             uint64_t length, bool exclusive, bool block = false) {
    return Apply(LockReq(fh, owner, offset, length, exclusive, block)).reply;
  }

  Reply Unlock(const std::string& fh, const Owner& owner, uint64_t offset,
               uint64_t length) {
    UnlockCmd c;
    c.gateway = gateway;
    c.fh = fh;
    c.owner = owner;
    c.range = {offset, length};
    return Apply(c).reply;
  }

  Reply Test(const std::string& fh, const Owner& owner, uint64_t offset,
             uint64_t length, bool exclusive) {
    TestQuery q;
    q.gateway = gateway;
    q.fh = fh;
    q.owner = owner;
    q.range = {offset, length};
    q.exclusive = exclusive;
    return core_.Test(q, now_ms);
  }

  Reply Cancel(const std::string& fh, const Owner& owner, uint64_t offset,
               uint64_t length, bool exclusive) {
    CancelCmd c;
    c.gateway = gateway;
    c.fh = fh;
    c.owner = owner;
    c.range = {offset, length};
    c.exclusive = exclusive;
    return Apply(c).reply;
  }

  Reply Ack(const Event& e, AckOutcome outcome) {
    AckEventCmd c;
    c.gateway = e.gateway;
    c.sequence = e.sequence;
    c.outcome = outcome;
    return Apply(c).reply;
  }

  // Locks of `fh` as "owner.client/svid [offset+length] X|S" strings in
  // token order.
  std::vector<std::string> Locks(const std::string& fh) const {
    std::vector<std::string> out;
    for (const LockInfo& l : core_.ListLocks({fh, "", ""}, 0, 1u << 30)) {
      out.push_back(absl::StrCat(l.owner.client, "/", l.owner.svid, " [",
                                 l.range.offset, "+", l.range.length, "] ",
                                 l.exclusive ? "X" : "S",
                                 l.unconfirmed ? " unconfirmed" : ""));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Invariants hold, the store equals the live snapshot, and a core rebuilt
  // from the store has the same state.
  absl::Status Verify() const {
    absl::Status s = core_.CheckInvariants();
    if (!s.ok()) return s;
    if (core_.Snapshot() != store_) {
      return absl::InternalError("store built from deltas != snapshot");
    }
    std::vector<std::pair<std::string, std::string>> kv(store_.begin(),
                                                        store_.end());
    absl::StatusOr<LockCore> rebuilt = LockCore::Rebuild(options_, kv);
    if (!rebuilt.ok()) return rebuilt.status();
    if (rebuilt->Snapshot() != store_) {
      return absl::InternalError("rebuilt snapshot differs");
    }
    if (rebuilt->DebugString() != core_.DebugString()) {
      return absl::InternalError(absl::StrCat(
          "rebuilt state differs:\n", rebuilt->DebugString(), "\nvs live\n",
          core_.DebugString()));
    }
    return absl::OkStatus();
  }

  LockCore& core() { return core_; }
  const std::map<std::string, std::string>& store() const { return store_; }

  int64_t now_ms = 1000;
  std::string gateway = "gw-a";

 private:
  CoreOptions options_;
  LockCore core_;
  std::map<std::string, std::string> store_;
};

}  // namespace lockwarden::core::testing

#endif  // LOCKWARDEN_SERVER_CORE_CORE_TEST_UTIL_H_
