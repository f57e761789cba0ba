// The StateStore contract (state_store_conformance.cc) run against the
// in-process backends: MemoryStore, RocksDbStore, and a disarmed
// FaultInjectingStore over each (it must be a transparent StateStore).
// EtcdStore runs the same cases in etcd_store_conformance_test.cc.
#include "server/store/state_store_conformance.h"

#include <memory>
#include <string>
#include <utility>

#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/memory_store.h"
#include "server/store/rocksdb_store.h"
#include "server/store/state_store.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store::testing {
namespace {

using ::lockwarden::testing::IsOk;

class MemoryHarness : public StoreHarness {
 public:
  StateStore& store() override { return store_; }

 private:
  MemoryStore store_;
};

class RocksDbHarness : public StoreHarness {
 public:
  RocksDbHarness() : dir_(MakeTempDir("conformance")) {
    absl::Status s = Reopen();
    EXPECT_THAT(s, IsOk());
  }
  StateStore& store() override { return *store_; }
  bool CanReopen() const override { return true; }
  absl::Status Reopen() override {
    store_.reset();  // Closes the DB before the next Open takes its lock.
    absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
        RocksDbStore::Open(dir_);
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    return absl::OkStatus();
  }

 private:
  const std::string dir_;
  std::unique_ptr<RocksDbStore> store_;
};

// A disarmed FaultInjectingStore must be a transparent StateStore.
class FaultHarness : public StoreHarness {
 public:
  explicit FaultHarness(std::unique_ptr<StateStore> base)
      : store_(std::move(base)) {}
  StateStore& store() override { return store_; }

 private:
  FaultInjectingStore store_;
};

INSTANTIATE_TEST_SUITE_P(
    Backends, StateStoreConformanceTest,
    ::testing::Values(
        ConformanceBackend{"Memory",
                           [] { return std::make_unique<MemoryHarness>(); }},
        ConformanceBackend{"RocksDb",
                           [] { return std::make_unique<RocksDbHarness>(); }},
        ConformanceBackend{"FaultOverMemory",
                           [] {
                             return std::make_unique<FaultHarness>(
                                 std::make_unique<MemoryStore>());
                           }},
        ConformanceBackend{"FaultOverRocksDb",
                           [] {
                             absl::StatusOr<std::unique_ptr<RocksDbStore>> s =
                                 RocksDbStore::Open(MakeTempDir("fault"));
                             EXPECT_THAT(s, IsOk());
                             return std::make_unique<FaultHarness>(
                                 *std::move(s));
                           }}),
    ConformanceBackendName);

}  // namespace
}  // namespace lockwarden::store::testing
