// Helpers for the storage tests: temp dirs, seeds, store wrappers that gate
// or record commits, and a RocksDB filesystem that fails WAL writes on
// demand.
//
// Thread safety: GatedStore and RecordingStore are safe to use from any
// thread (as StateStores must be); WalFaultFileSystem's mode may be changed
// while a DB uses it.
#ifndef LOCKWARDEN_SERVER_STORE_STORE_TEST_UTIL_H_
#define LOCKWARDEN_SERVER_STORE_STORE_TEST_UTIL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "server/store/state_store.h"

namespace lockwarden::store::testing {

// A fresh, empty directory under $TEST_TMPDIR (or /tmp), named after `name`.
std::string MakeTempDir(const std::string& name);

// The seed for a randomised test: $LW_SEED if set, else a fresh random one.
// Prints it so a failure can be replayed with LW_SEED=<seed>.
uint64_t TestSeed();

// Forwards everything to `base`, except that Commit() waits while the gate
// is closed (it starts open). Lets tests hold a commit "in the fsync".
class GatedStore : public StateStore {
 public:
  explicit GatedStore(StateStore* base) : base_(base) {}

  void CloseGate();
  void OpenGate();
  // Waits until at least `n` commits have entered Commit(); false on timeout.
  bool WaitForCommitsStarted(uint64_t n, absl::Duration timeout);
  uint64_t commits_started() const;

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override {
    return base_->Scan(prefix, fn);
  }
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override {
    return base_->Get(key);
  }
  uint64_t FencingToken() const override { return base_->FencingToken(); }
  std::string BackendName() const override { return "gated"; }
  absl::Status Health() const override { return base_->Health(); }
  StoreLimits Limits() const override { return base_->Limits(); }

 private:
  StateStore* const base_;
  mutable absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  uint64_t started_ ABSL_GUARDED_BY(mu_) = 0;
};

// Forwards everything to `base` and records each batch that committed OK.
class RecordingStore : public StateStore {
 public:
  explicit RecordingStore(StateStore* base) : base_(base) {}

  std::vector<Delta> batches() const;

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override {
    return base_->Scan(prefix, fn);
  }
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override {
    return base_->Get(key);
  }
  uint64_t FencingToken() const override { return base_->FencingToken(); }
  std::string BackendName() const override { return "recording"; }
  absl::Status Health() const override { return base_->Health(); }
  StoreLimits Limits() const override { return base_->Limits(); }

 private:
  StateStore* const base_;
  mutable absl::Mutex mu_;
  std::vector<Delta> batches_ ABSL_GUARDED_BY(mu_);
};

// A RocksDB FileSystem that fails writes to WAL files (*.log) on demand:
//   kFailAppend: Append() fails with NoSpace; the record never reaches the
//                file (a full disk).
//   kFailSync:   Append() succeeds, Sync()/Fsync() fail with IOError; the
//                record is in the OS cache, so it may survive a reopen (an
//                unknown outcome).
class WalFaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  enum class Mode { kNone, kFailAppend, kFailSync };

  WalFaultFileSystem();
  void set_mode(Mode mode) { mode_->store(mode); }
  const char* Name() const override { return "WalFaultFileSystem"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& fname, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& fname, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& fname, const std::string& old_fname,
      const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* dbg) override;

 private:
  void Wrap(const std::string& fname,
            std::unique_ptr<rocksdb::FSWritableFile>* result);
  std::shared_ptr<std::atomic<Mode>> mode_;
};

// A WalFaultFileSystem and an Env that uses it, for RocksDbStoreOptions::
// env_for_testing.
struct WalFaultEnv {
  WalFaultEnv();
  std::shared_ptr<WalFaultFileSystem> fs;
  std::unique_ptr<rocksdb::Env> env;
};

}  // namespace lockwarden::store::testing

#endif  // LOCKWARDEN_SERVER_STORE_STORE_TEST_UTIL_H_
