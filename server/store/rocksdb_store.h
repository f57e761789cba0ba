// RocksDbStore: the default, single-node StateStore on an embedded RocksDB.
//
// Each Commit() is one rocksdb::WriteBatch written with WriteOptions::sync,
// so it returns only after the WAL record is fdatasync'd: atomic (a WAL
// record is all or nothing on recovery) and durable. Point-in-time WAL
// recovery after a crash replays every synced record and stops at a torn
// tail, which can only hold an unacknowledged commit.
//
// Failure policy: once a Commit() fails (any non-OK from DB::Write, e.g. an
// I/O error or a full disk) the store is unhealthy: Health() returns the
// error and every later Commit() fails with UNAVAILABLE until the store is
// reopened. Two reasons. A lock service must never acknowledge anything after
// a durable write failed, because the failed batch's outcome is unknown and
// the in-memory state above the store has moved past it. And RocksDB itself
// enters background-error (read-only) mode after a WAL write or sync error,
// so later writes would fail anyway, or worse, succeed after an automatic
// recovery that the caller never saw. Reads keep working while unhealthy.
//
// Thread safety: all methods may be called concurrently (RocksDB's DB is
// thread-safe). A Commit() racing with a failing one may still succeed;
// every Commit() that starts after a failure has returned is refused.
#ifndef LOCKWARDEN_SERVER_STORE_ROCKSDB_STORE_H_
#define LOCKWARDEN_SERVER_STORE_ROCKSDB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

// Defaults sized for lockwarden's dataset: small (every lock, owner, waiter
// and monitor fits in RAM many times over) and hot (a few keys rewritten by
// nearly every commit).
inline constexpr size_t kRocksDbBlockCacheBytes = 32 * 1024 * 1024;
inline constexpr size_t kRocksDbWriteBufferBytes = 16 * 1024 * 1024;
inline constexpr int kRocksDbMaxOpenFiles = 256;
// Caps the WAL so recovery after a crash replays little.
inline constexpr uint64_t kRocksDbMaxTotalWalBytes = 64 * 1024 * 1024;

struct RocksDbStoreOptions {
  bool create_if_missing = true;
  size_t block_cache_bytes = kRocksDbBlockCacheBytes;
  size_t write_buffer_bytes = kRocksDbWriteBufferBytes;
  int max_open_files = kRocksDbMaxOpenFiles;
  // Flush/compaction threads. The dataset is small; two keep L0 drained
  // without competing much with the commit path on a small node.
  int max_background_jobs = 2;
  StoreLimits limits;
  // Replaces the filesystem, e.g. with one that injects I/O errors. Not
  // owned; must outlive the store. nullptr means rocksdb::Env::Default().
  rocksdb::Env* env_for_testing = nullptr;
};

// Commit statistics since Open(). Latency is the wall time of DB::Write,
// fdatasync included.
struct CommitStats {
  uint64_t commits = 0;         // Successful non-empty commits.
  uint64_t failed_commits = 0;  // Commits refused or failed after validation.
  uint64_t mutations = 0;       // Mutations in successful commits.
  uint64_t bytes = 0;           // Key + value bytes in successful commits.
  absl::Duration last_latency = absl::ZeroDuration();
  absl::Duration max_latency = absl::ZeroDuration();
};

// Maps a RocksDB status to the StateStore error codes: IOError (incl. no
// space) and other transient conditions -> UNAVAILABLE, Corruption ->
// DATA_LOSS, InvalidArgument -> INVALID_ARGUMENT, NotSupported ->
// UNIMPLEMENTED, NotFound -> NOT_FOUND, TimedOut -> DEADLINE_EXCEEDED,
// Aborted -> ABORTED, anything else -> INTERNAL. `context` prefixes the
// message.
absl::Status FromRocksDbStatus(const rocksdb::Status& status,
                               absl::string_view context);

class RocksDbStore : public StateStore {
 public:
  // Opens (creating if allowed) the database in directory `dir`. Only one
  // process may have it open; a second Open() fails with UNAVAILABLE.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(
      const std::string& dir,
      const RocksDbStoreOptions& options = RocksDbStoreOptions());

  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override;
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override;
  uint64_t FencingToken() const override { return 0; }
  std::string BackendName() const override { return "rocksdb"; }
  absl::Status Health() const override;
  StoreLimits Limits() const override { return limits_; }

  CommitStats GetCommitStats() const;
  const std::string& dir() const { return dir_; }

 private:
  RocksDbStore(std::string dir, StoreLimits limits,
               std::unique_ptr<rocksdb::DB> db);

  void RecordCommit(const Delta& batch, absl::Duration latency);
  void RecordFailure(const absl::Status& status);

  // Constant after construction.
  const std::string dir_;
  const StoreLimits limits_;
  const std::unique_ptr<rocksdb::DB> db_;

  mutable absl::Mutex mu_;
  // The first commit failure; OK while healthy. Sticky until reopen.
  absl::Status unhealthy_ ABSL_GUARDED_BY(mu_);
  CommitStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_ROCKSDB_STORE_H_
