#include "server/store/rocksdb_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace lockwarden::store {
namespace {

rocksdb::Slice ToSlice(absl::string_view s) {
  return rocksdb::Slice(s.data(), s.size());
}

absl::string_view ToView(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}

rocksdb::Options MakeOptions(const RocksDbStoreOptions& options) {
  rocksdb::Options o;
  o.create_if_missing = options.create_if_missing;
  if (options.env_for_testing != nullptr) o.env = options.env_for_testing;
  // Verify checksums and fail loudly on corruption rather than skip data.
  o.paranoid_checks = true;
  // Replay every synced WAL record; stop at a torn tail (which can only be
  // an unacknowledged commit). kAbsoluteConsistency would refuse to open
  // after a power cut mid-append; kSkipAnyCorruptedRecords could drop
  // acknowledged commits.
  o.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // WriteOptions::sync must reach the disk without a FlushWAL() call.
  o.manual_wal_flush = false;
  o.max_total_wal_size = kRocksDbMaxTotalWalBytes;
  // Smooth SST writeback instead of one large flush at file close.
  o.bytes_per_sync = 1024 * 1024;
  o.max_open_files = options.max_open_files;
  o.max_background_jobs = options.max_background_jobs;
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_write_buffer_number = 3;
  // The server reads the store only at start-up (LoadAll) and keeps the
  // state in its core, so the memtable is write-only while serving: a
  // vector memtable appends in O(1) (sorted once, at flush or when read),
  // where the default skiplist spent ~27% of the server's CPU on ordered
  // inserts at 64 concurrent clients (docs/BENCHMARKS.md).
  // (One writer at a time: the commit pipeline's thread.)
  o.memtable_factory.reset(new rocksdb::VectorRepFactory());
  o.allow_concurrent_memtable_write = false;
  // The hot set is rewritten constantly: dynamic level sizing keeps space
  // amplification low, and compression buys little on a small dataset while
  // costing CPU on the node that serves commits.
  o.compaction_style = rocksdb::kCompactionStyleLevel;
  o.level_compaction_dynamic_level_bytes = true;
  o.compression = rocksdb::kNoCompression;
  // Bound RocksDB's own info LOG files.
  o.max_log_file_size = 8 * 1024 * 1024;
  o.keep_log_file_num = 4;

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  // Point lookups (Get) on absent keys skip SST reads.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.cache_index_and_filter_blocks = true;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

}  // namespace

absl::Status FromRocksDbStatus(const rocksdb::Status& status,
                               absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(context, ": ", status.ToString());
  switch (status.code()) {
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(message);
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(message);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(message);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(message);
    case rocksdb::Status::kIOError:  // Includes IsNoSpace() (disk full).
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(message);
    case rocksdb::Status::kTimedOut:
      return absl::DeadlineExceededError(message);
    case rocksdb::Status::kAborted:
      return absl::AbortedError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const std::string& dir, const RocksDbStoreOptions& options) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(MakeOptions(options), dir, &raw);
  if (!s.ok()) {
    return FromRocksDbStatus(s, absl::StrCat("opening RocksDB in ", dir));
  }
  return std::unique_ptr<RocksDbStore>(new RocksDbStore(
      dir, options.limits, std::unique_ptr<rocksdb::DB>(raw)));
}

RocksDbStore::RocksDbStore(std::string dir, StoreLimits limits,
                           std::unique_ptr<rocksdb::DB> db)
    : dir_(std::move(dir)), limits_(limits), db_(std::move(db)) {}

RocksDbStore::~RocksDbStore() {
  // Close() waits for background work; its error has no one left to tell,
  // and every acknowledged commit is already in the synced WAL.
  db_->Close().PermitUncheckedError();
}

absl::Status RocksDbStore::Commit(const Delta& batch) {
  absl::Status valid = ValidateBatch(batch, limits_);
  if (!valid.ok()) return valid;
  {
    absl::MutexLock lock(&mu_);
    if (!unhealthy_.ok()) {
      ++stats_.failed_commits;
      return absl::UnavailableError(absl::StrCat(
          "RocksDB store in ", dir_,
          " refuses commits after a failed write; reopen it: ",
          unhealthy_.ToString()));
    }
  }
  if (batch.empty()) return absl::OkStatus();

  rocksdb::WriteBatch wb;
  for (const Mutation& m : batch) {
    rocksdb::Status s = m.op == Mutation::Op::kPut
                            ? wb.Put(ToSlice(m.key), ToSlice(m.value))
                            : wb.Delete(ToSlice(m.key));
    // WriteBatch only fails on >4 GiB batches, which ValidateBatch excludes;
    // still, never write a partial batch.
    if (!s.ok()) return FromRocksDbStatus(s, "building write batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  const absl::Time start = absl::Now();
  rocksdb::Status s = db_->Write(wo, &wb);
  const absl::Duration latency = absl::Now() - start;
  if (!s.ok()) {
    absl::Status status =
        FromRocksDbStatus(s, absl::StrCat("RocksDB commit in ", dir_));
    RecordFailure(status);
    return status;
  }
  RecordCommit(batch, latency);
  return absl::OkStatus();
}

void RocksDbStore::RecordCommit(const Delta& batch, absl::Duration latency) {
  size_t bytes = 0;
  for (const Mutation& m : batch) bytes += MutationBytes(m);
  absl::MutexLock lock(&mu_);
  ++stats_.commits;
  stats_.mutations += batch.size();
  stats_.bytes += bytes;
  stats_.last_latency = latency;
  if (latency > stats_.max_latency) stats_.max_latency = latency;
}

void RocksDbStore::RecordFailure(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  ++stats_.failed_commits;
  if (unhealthy_.ok()) unhealthy_ = status;
}

absl::Status RocksDbStore::Scan(absl::string_view prefix,
                                const ScanFn& fn) const {
  rocksdb::ReadOptions ro;
  // The iterator pins an implicit snapshot: a consistent view even while
  // commits continue.
  const std::optional<std::string> end = PrefixSuccessor(prefix);
  rocksdb::Slice upper;
  if (end.has_value()) {
    upper = ToSlice(*end);
    ro.iterate_upper_bound = &upper;
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->Seek(ToSlice(prefix)); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    // The upper bound already stops the scan; this also covers prefixes with
    // no successor (empty, or all 0xff bytes).
    if (key.substr(0, prefix.size()) != prefix) break;
    absl::Status status = fn(key, ToView(it->value()));
    if (!status.ok()) return status;
  }
  return FromRocksDbStatus(it->status(), absl::StrCat("RocksDB scan in ", dir_));
}

absl::StatusOr<std::optional<std::string>> RocksDbStore::Get(
    absl::string_view key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocksDbStatus(s, absl::StrCat("RocksDB get in ", dir_));
  return std::optional<std::string>(std::move(value));
}

absl::Status RocksDbStore::Health() const {
  absl::MutexLock lock(&mu_);
  return unhealthy_;
}

CommitStats RocksDbStore::GetCommitStats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace lockwarden::store
