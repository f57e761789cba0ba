// History of a crash round and its checker, modelled on etcd's robustness
// tests: clients record every operation (invoke time, completion time, the
// acknowledged reply or "unknown"), the server is killed, and the state it
// recovers must be explained by a linearization of that history replayed on
// the pure lock core (the same //server/core:lock_core the server runs).
//
// The check (CheckRound) accepts a recovered store R after a round that
// started from store S0 iff it finds a sequence L of operations such that:
//   1. L contains every acknowledged operation and some subset of the
//      operations whose outcome is unknown (in flight at the kill, or failed
//      with an error), each applied whole or not at all;
//   2. L respects real time: if a completed before b was invoked, a precedes
//      b in L;
//   3. replaying L on a core rebuilt from S0 gives every acknowledged
//      operation exactly the reply its client received;
//   4. the core after L equals the core rebuilt from R (locks with their
//      fencing tokens, waiters in queue order, shares, unconfirmed grants,
//      pending events, clients, gateways, monitors, counters).
//
// How L is found without a search. Every mutation carries a request_id and
// the core remembers it (a dedup record, server/core/codec.h) in the same
// atomic delta as the mutation's effect, with the core's next dedup sequence
// at apply time. The dedup records of R that are newer than S0 therefore name
// exactly the operations the recovered state contains, in the order the server
// applied them. The checker takes that order as the candidate L and then
// verifies 1-4 independently of the server: membership of every acknowledged
// op (durability), real time (a server that reordered across an ack fails
// here), every reply against the reference core (also the replies the dead
// server recorded for unacknowledged ops), and the final state. The dedup
// records are only a hint: a wrong hint cannot make a bad history pass,
// because 2-4 are checked on the model, not taken from the server. A correct
// server's hint is always right (it applies in one total order and commits
// deltas in that order), so a failure means a server bug, never a checker
// limitation; enumerating 2^N subsets x positions is not needed. The one
// assumption is that no record of the round was evicted from the dedup table
// (its limit is 100,000 entries; a round issues far fewer, and a missing
// acknowledged op is reported, so an eviction could only cause a false
// failure, never a false pass).
//
// Thread-safety: plain values and pure functions. During a round each
// client thread appends to its own lane's History (see traffic.h); the
// checker runs on the merged history after the round.
#ifndef LOCKWARDEN_TESTS_CRASH_HISTORY_H_
#define LOCKWARDEN_TESTS_CRASH_HISTORY_H_

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "lockwarden/v1/lock_service.pb.h"
#include "server/core/lock_core.h"

namespace lockwarden::crash {

inline constexpr int64_t kNeverNs = std::numeric_limits<int64_t>::max();

using Request = std::variant<v1::LockRequest, v1::UnlockRequest, v1::CancelRequest,
                             v1::AckGrantRequest>;

struct Op {
  int lane = 0;  // Client thread that issued it (program order within a lane).
  Request request;
  int64_t invoke_ns = 0;           // Steady clock, before the call.
  int64_t complete_ns = kNeverNs;  // After an OK reply; kNeverNs if unknown.
  bool acked = false;              // An OK reply arrived.
  std::string reply;               // Canonical reply (CanonicalReply) if acked.
  std::string error;               // gRPC error if not acked.
  v1::GrantEvent event;            // AckGrant only: the event acknowledged.

  const std::string& request_id() const;
  std::string Describe() const;  // One line: lane, kind, args, outcome.
};

// A whole round's operations (all lanes), in no particular order.
using History = std::vector<Op>;

// Canonical text of what a client can see of a reply, the same for a reply
// received over gRPC and for a core::Reply converted the way the service
// converts it, so the two compare with ==.
std::string CanonicalReply(const v1::LockResponse& r);
std::string CanonicalReply(const v1::UnlockResponse& r);
std::string CanonicalReply(const v1::CancelResponse& r);
std::string CanonicalReply(const v1::AckGrantResponse& r);
std::string CanonicalReplyOfCore(const Request& request, const core::Reply& r);

// A deterministic dump of everything observable in a core except wall-clock
// timestamps and the dedup table, one record per line.
std::string CanonicalState(const core::LockCore& core);

// The options the reference core must use: those the server runs with.
core::CoreOptions ModelOptions(int64_t grant_timeout_ms);

// Store contents without the dedup records (the model starts without them;
// they only matter for retries, which a round never sends).
std::vector<std::pair<std::string, std::string>> WithoutDedup(
    const std::vector<std::pair<std::string, std::string>>& kvs);

struct CheckResult {
  bool ok = false;
  std::string failure;    // What broke, with the diff; empty when ok.
  size_t applied = 0;     // Ops in the linearization.
  size_t acked = 0;       // Acknowledged ops.
  size_t unknown_applied = 0;  // Unknown-outcome ops found applied.
  size_t unknown_lost = 0;     // Unknown-outcome ops found not applied.
};

// Checks one round (see the file comment). `s0` and `recovered` are full
// store contents (LoadAll) before the round and after the kill.
CheckResult CheckRound(const std::vector<std::pair<std::string, std::string>>& s0,
                       const std::vector<std::pair<std::string, std::string>>& recovered,
                       const History& history, const core::CoreOptions& options);

// Lines of `a` and `b` that differ, marked "-" (only in a) and "+" (only in
// b), at most `max_lines`.
std::string LineDiff(const std::string& a, const std::string& b, size_t max_lines = 80);

}  // namespace lockwarden::crash

#endif  // LOCKWARDEN_TESTS_CRASH_HISTORY_H_
