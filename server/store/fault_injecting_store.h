// FaultInjectingStore: wraps any StateStore and makes Commit() fail on
// demand, so tests (unit, integration, crash) can drive the service through
// storage failures. Reads pass through untouched.
//
// One failpoint is armed at a time (Arm() replaces it):
//   kNthCommit        only the Nth commit (1-based, counted since Arm())
//   kEveryCommitAfter every commit after the first N since Arm()
//   kProbability      each commit with probability p (seeded, reproducible)
//   kDiskFull         every commit, with a "no space" UNAVAILABLE, until
//                     Disarm(); Health() reports it meanwhile
// and its phase decides what a failing commit does to the data:
//   kBeforeWrite      nothing is written; the caller sees UNAVAILABLE
//   kAfterWrite       the batch is committed to the wrapped store, and then
//                     UNAVAILABLE is returned: an unknown outcome, like a
//                     lost etcd response or an fsync error after the WAL
//                     append. (kDiskFull is always kBeforeWrite.)
// SetFenced(true) makes every commit fail with FAILED_PRECONDITION, as a
// deposed leader's writes do.
//
// Failpoints can come from a flag through ParseFaultSpec(), e.g.
//   --store_faults=fail_nth=3,phase=after
//   --store_faults=fail_prob=0.01,seed=7
//   --store_faults=fail_after=100
//   --store_faults=disk_full
//
// Commits that break the wrapped store's Limits() return INVALID_ARGUMENT
// and are not counted: no failpoint can hide a validation error.
//
// Thread safety: all methods may be called concurrently. The wrapped
// store's Commit() runs outside the injector's mutex.
#ifndef LOCKWARDEN_SERVER_STORE_FAULT_INJECTING_STORE_H_
#define LOCKWARDEN_SERVER_STORE_FAULT_INJECTING_STORE_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/store/borrowed_store.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

struct FaultSpec {
  enum class Trigger {
    kNone,
    kNthCommit,
    kEveryCommitAfter,
    kProbability,
    kDiskFull,
  };
  enum class Phase { kBeforeWrite, kAfterWrite };

  Trigger trigger = Trigger::kNone;
  Phase phase = Phase::kBeforeWrite;
  uint64_t n = 0;            // kNthCommit, kEveryCommitAfter.
  double probability = 0.0;  // kProbability, in [0, 1].
  uint64_t seed = 0;         // kProbability.

  static FaultSpec FailNth(uint64_t n, Phase phase = Phase::kBeforeWrite);
  static FaultSpec FailEveryAfter(uint64_t n,
                                  Phase phase = Phase::kBeforeWrite);
  static FaultSpec FailWithProbability(double p, uint64_t seed,
                                       Phase phase = Phase::kBeforeWrite);
  static FaultSpec DiskFull();
};

// Parses a comma-separated spec: "none" | "disk_full" |
// "fail_nth=N" | "fail_after=N" | "fail_prob=P[,seed=S]", each optionally
// followed by ",phase=before|after". INVALID_ARGUMENT on anything else.
absl::StatusOr<FaultSpec> ParseFaultSpec(absl::string_view text);

struct FaultCounters {
  uint64_t commits = 0;   // Validated Commit() calls since construction.
  uint64_t injected = 0;  // Of those, failed by a failpoint or fencing.
  uint64_t applied = 0;   // Reached the wrapped store and it returned OK
                          // (includes kAfterWrite failures).
};

// Forwards what it does not change through BorrowedStore (to the store it
// owns).
class FaultInjectingStore : public BorrowedStore {
 public:
  explicit FaultInjectingStore(std::unique_ptr<StateStore> base,
                               FaultSpec spec = FaultSpec());

  // Replaces the armed failpoint and restarts its commit count.
  void Arm(const FaultSpec& spec);
  void Disarm() { Arm(FaultSpec()); }
  void SetFenced(bool fenced);
  FaultCounters Counters() const;

  StateStore& base() { return *base_; }

  absl::Status Commit(const Delta& batch) override;
  std::string BackendName() const override {
    return "fault(" + base_->BackendName() + ")";
  }
  absl::Status Health() const override;

 private:
  enum class Decision { kPass, kFailBefore, kFailAfter, kFenced };
  Decision Decide() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::unique_ptr<StateStore> base_;

  mutable absl::Mutex mu_;
  FaultSpec spec_ ABSL_GUARDED_BY(mu_);
  uint64_t commits_since_arm_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  bool fenced_ ABSL_GUARDED_BY(mu_) = false;
  FaultCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_FAULT_INJECTING_STORE_H_
