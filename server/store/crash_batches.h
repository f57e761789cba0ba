// The workload of the RocksDB crash test: numbered batches whose effects can
// be checked after a SIGKILL at any moment.
//
// Batch n (n >= 1) writes, atomically:
//   batch/<n, 12 digits>/<i>  = "<n>"   for i in [0, kKeysPerCrashBatch)
//   latest                    = "<n>"   (overwrites)
//   scratch/<n-1>                       (deleted)
//   scratch/<n>               = "<n>"
// Batches are committed strictly one after another, so a correct store
// recovers to exactly batches 1..M for some M, with every batch whole.
//
// Thread safety: free functions without shared state.
#ifndef LOCKWARDEN_SERVER_STORE_CRASH_BATCHES_H_
#define LOCKWARDEN_SERVER_STORE_CRASH_BATCHES_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/mutation.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

inline constexpr int kKeysPerCrashBatch = 4;

Delta MakeCrashBatch(uint64_t n);

// Checks the invariants above and returns M, the last batch present (0 if
// none). Returns DATA_LOSS describing the first violation: a half-applied
// batch, a gap, or latest/scratch disagreeing with M.
absl::StatusOr<uint64_t> CheckCrashBatches(const StateStore& store);

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_CRASH_BATCHES_H_
