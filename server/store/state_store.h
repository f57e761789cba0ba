// StateStore: the durable home of lockwarden's state. Everything the core
// changes reaches disk (or etcd's quorum) through Commit(); a restarted or
// newly elected server rebuilds the core from Scan().
//
// The contract every backend keeps:
//   - Commit(batch) is atomic: after a crash, a restart or any error, either
//     every mutation of the batch is visible or none is. Mutations apply in
//     order, so a later mutation of the same key wins.
//   - Commit() returns OK only once the batch is durable (fsync'd locally, or
//     committed by a quorum). A non-OK result means "not known to be
//     durable": the batch may or may not have been applied (an I/O error
//     after the write reached the WAL, a lost etcd response), but never
//     partly. Callers must not acknowledge anything covered by a failed
//     commit.
//   - Scan() visits keys in ascending bytewise (unsigned) order and sees a
//     consistent point-in-time view.
//   - Limits() are checked before storage is touched: a violating batch
//     returns INVALID_ARGUMENT and changes nothing.
//
// Error codes:
//   INVALID_ARGUMENT     the batch breaks Limits(); nothing was written.
//   UNAVAILABLE          I/O error, disk full, backend unreachable, or the
//                        store is unhealthy after an earlier failed commit.
//   FAILED_PRECONDITION  this writer is fenced (a deposed leader): the
//                        backend refused the write. Never retry; step down.
//   DATA_LOSS            persisted data is corrupt.
//
// Thread safety: every method of every StateStore may be called from any
// thread concurrently. Concurrent Commit() calls are each atomic, but their
// relative order is whatever the backend picks; CommitPipeline serialises
// commits when order matters (it always does for the lock service).
#ifndef LOCKWARDEN_SERVER_STORE_STATE_STORE_H_
#define LOCKWARDEN_SERVER_STORE_STATE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/mutation.h"

namespace lockwarden::store {

// Default limits. Keys hold a file handle (<= 64 bytes in NFSv3), an owner
// handle (netobj, <= 1024 bytes) and a caller name (<= 1024 bytes) plus a
// prefix, so 4 KiB leaves room. Values are single lock / monitor records.
// A batch is one group commit of many requests' deltas.
inline constexpr size_t kMaxKeyBytes = 4 * 1024;
inline constexpr size_t kMaxValueBytes = 256 * 1024;
inline constexpr size_t kMaxMutationsPerBatch = 4096;
inline constexpr size_t kMaxBatchBytes = 16 * 1024 * 1024;

// What a backend accepts in one Commit(). Backends with tighter limits
// (etcd: 128 operations and 1.5 MiB per Txn by default) return their own.
struct StoreLimits {
  size_t max_key_bytes = kMaxKeyBytes;
  size_t max_value_bytes = kMaxValueBytes;
  size_t max_mutations_per_batch = kMaxMutationsPerBatch;
  // Sum of key and value sizes over the batch.
  size_t max_batch_bytes = kMaxBatchBytes;
};

// Bytes a mutation counts against StoreLimits::max_batch_bytes.
inline size_t MutationBytes(const Mutation& m) {
  return m.key.size() + m.value.size();
}

// Checks `batch` against `limits`: every key non-empty (etcd has no empty
// key) and within max_key_bytes, values within max_value_bytes, deletes
// without a value, and the batch within the count and byte limits. Returns
// INVALID_ARGUMENT naming the offending mutation's index.
absl::Status ValidateBatch(const Delta& batch, const StoreLimits& limits);

// The smallest string greater than every string that starts with `prefix`,
// or nullopt if there is none (the prefix is empty or all 0xff bytes).
// Backends use it as the exclusive upper bound of a prefix scan.
std::optional<std::string> PrefixSuccessor(absl::string_view prefix);

class StateStore {
 public:
  // Called for every key of a scan, in order. Returning a non-OK status stops
  // the scan, and Scan() returns that status.
  using ScanFn =
      std::function<absl::Status(absl::string_view key, absl::string_view value)>;

  virtual ~StateStore() = default;

  // Applies `batch` atomically and durably; see the banner. An empty batch
  // is a no-op that still reports an unhealthy or fenced store.
  virtual absl::Status Commit(const Delta& batch) = 0;

  // Calls fn(key, value) for every key starting with `prefix`, in ascending
  // bytewise order. The views are valid only during the call. fn may call
  // the store's read methods, but must not Commit() (it may deadlock).
  virtual absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const = 0;

  // The value of `key`, or nullopt if absent.
  virtual absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const = 0;

  // Token proving this writer's right to write: 0 for single-node stores;
  // etcd returns the leader key's create revision. Strictly increases across
  // leaders, so a reader can tell which leader wrote last.
  virtual uint64_t FencingToken() const = 0;

  // Short name for logs and metrics: "memory", "rocksdb", "etcd", ...
  virtual std::string BackendName() const = 0;

  // OK while the store accepts commits. After a failed durable write a
  // backend may stay unhealthy until reopened; this returns why.
  virtual absl::Status Health() const = 0;

  // The limits Commit() enforces.
  virtual StoreLimits Limits() const { return StoreLimits(); }

  // Every key-value pair under `prefix`, in order. Convenience for recovery
  // and tests; the result is bounded only by the dataset.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoadAll(
      absl::string_view prefix = "") const;
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_STATE_STORE_H_
