#include "server/store/store_test_util.h"

#include <stdlib.h>

#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lockwarden::store::testing {

std::string MakeTempDir(const std::string& name) {
  const char* root = getenv("TEST_TMPDIR");
  if (root == nullptr || *root == '\0') root = "/tmp";
  std::string pattern = absl::StrCat(root, "/", name, ".XXXXXX");
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr) << "mkdtemp " << pattern;
  return pattern;
}

uint64_t TestSeed() {
  uint64_t seed = 0;
  const char* env = getenv("LW_SEED");
  if (env == nullptr || !absl::SimpleAtoi(env, &seed)) {
    seed = std::random_device()();
  }
  std::printf("seed: %llu (replay with LW_SEED=%llu)\n",
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  return seed;
}

void GatedStore::CloseGate() {
  absl::MutexLock lock(&mu_);
  open_ = false;
}

void GatedStore::OpenGate() {
  absl::MutexLock lock(&mu_);
  open_ = true;
}

bool GatedStore::WaitForCommitsStarted(uint64_t n, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return started_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

uint64_t GatedStore::commits_started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

absl::Status GatedStore::Commit(const Delta& batch) {
  {
    absl::MutexLock lock(&mu_);
    ++started_;
    // Bounded: a test that forgets to open the gate fails instead of hanging.
    if (!mu_.AwaitWithTimeout(absl::Condition(&open_), absl::Seconds(60))) {
      return absl::DeadlineExceededError("GatedStore gate stayed closed");
    }
  }
  return base_->Commit(batch);
}

std::vector<Delta> RecordingStore::batches() const {
  absl::MutexLock lock(&mu_);
  return batches_;
}

absl::Status RecordingStore::Commit(const Delta& batch) {
  absl::Status status = base_->Commit(batch);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    batches_.push_back(batch);
  }
  return status;
}

namespace {

class WalFaultFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  using Mode = WalFaultFileSystem::Mode;

  WalFaultFile(std::unique_ptr<rocksdb::FSWritableFile> file,
               std::shared_ptr<std::atomic<Mode>> mode)
      : FSWritableFileOwnerWrapper(std::move(file)), mode_(std::move(mode)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (mode_->load() == Mode::kFailAppend) return NoSpace();
    return FSWritableFileOwnerWrapper::Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data,
                           const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (mode_->load() == Mode::kFailAppend) return NoSpace();
    return FSWritableFileOwnerWrapper::Append(data, options, info, dbg);
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                         rocksdb::IODebugContext* dbg) override {
    if (mode_->load() == Mode::kFailSync) return SyncError();
    return FSWritableFileOwnerWrapper::Sync(options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    if (mode_->load() == Mode::kFailSync) return SyncError();
    return FSWritableFileOwnerWrapper::Fsync(options, dbg);
  }

 private:
  static rocksdb::IOStatus NoSpace() {
    return rocksdb::IOStatus::NoSpace("injected: WAL append, disk full");
  }
  static rocksdb::IOStatus SyncError() {
    return rocksdb::IOStatus::IOError("injected: WAL fdatasync failed");
  }
  std::shared_ptr<std::atomic<Mode>> mode_;
};

}  // namespace

WalFaultFileSystem::WalFaultFileSystem()
    : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()),
      mode_(std::make_shared<std::atomic<Mode>>(Mode::kNone)) {}

void WalFaultFileSystem::Wrap(
    const std::string& fname,
    std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (absl::EndsWith(fname, ".log") && *result != nullptr) {
    *result = std::make_unique<WalFaultFile>(std::move(*result), mode_);
  }
}

rocksdb::IOStatus WalFaultFileSystem::NewWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewWritableFile(fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

rocksdb::IOStatus WalFaultFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      target()->ReopenWritableFile(fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

rocksdb::IOStatus WalFaultFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname,
    const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result,
    rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s =
      target()->ReuseWritableFile(fname, old_fname, options, result, dbg);
  if (s.ok()) Wrap(fname, result);
  return s;
}

WalFaultEnv::WalFaultEnv()
    : fs(std::make_shared<WalFaultFileSystem>()),
      env(rocksdb::NewCompositeEnv(fs)) {}

}  // namespace lockwarden::store::testing
