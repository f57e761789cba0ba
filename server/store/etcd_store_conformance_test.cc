// The StateStore contract (state_store_conformance.cc, the same cases the
// in-process backends run) against EtcdStore on a real 1-member etcd
// cluster, in unfenced mode (FencingToken() 0), each test under its own key
// prefix. Reopen() here is a kill -9 of etcd and a restart on its data dir.
// Plus the one etcd-specific expectation: its limits are etcd's defaults
// (128 operations per Txn, ~1.5 MiB requests).
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/etcd_store.h"
#include "server/store/etcd_test_env.h"
#include "server/store/state_store.h"
#include "server/store/state_store_conformance.h"

namespace lockwarden::store::testing {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;

const ::testing::Environment* const kEtcd =
    ::testing::AddGlobalTestEnvironment(new EtcdTestEnvironment);

// Fewer concurrent batches than the in-process backends: each is a Txn
// round trip and an fsync in etcd.
constexpr int kEtcdConcurrentBatchesPerWriter = 25;
constexpr absl::Duration kEtcdRestartTimeout = absl::Seconds(30);

class EtcdHarness : public StoreHarness {
 public:
  EtcdHarness() {
    static int test_number = 0;
    prefix_ = absl::StrCat("/lwtest/conformance/", ++test_number, "/");
    EXPECT_THAT(Open(), IsOk());
  }
  StateStore& store() override { return *store_; }
  bool CanReopen() const override { return true; }
  absl::Status Reopen() override {
    store_.reset();
    EtcdCluster* cluster = EtcdTestEnvironment::cluster();
    LW_RETURN_IF_ERROR(cluster->Kill(0));
    LW_RETURN_IF_ERROR(cluster->Restart(0));
    LW_RETURN_IF_ERROR(cluster->WaitHealthy(kEtcdRestartTimeout));
    return Open();
  }
  std::string ExpectedBackendName() const override { return "etcd"; }
  int ConcurrentBatchesPerWriter() const override {
    return kEtcdConcurrentBatchesPerWriter;
  }

 private:
  absl::Status Open() {
    EtcdCluster* cluster = EtcdTestEnvironment::cluster();
    if (cluster == nullptr) return absl::FailedPreconditionError("no etcd");
    EtcdStoreOptions options;
    options.client.endpoints = cluster->ClientEndpoints();
    options.key_prefix = prefix_;
    options.fenced = false;
    absl::StatusOr<std::unique_ptr<EtcdStore>> store = EtcdStore::Open(options);
    if (!store.ok()) return store.status();
    store_ = *std::move(store);
    return absl::OkStatus();
  }

  std::string prefix_;
  std::unique_ptr<EtcdStore> store_;
};

// Null when etcd did not start, so SetUp's ASSERT_NE stops the test.
std::unique_ptr<StoreHarness> MakeEtcdHarness() {
  if (EtcdTestEnvironment::cluster() == nullptr) return nullptr;
  return std::make_unique<EtcdHarness>();
}

INSTANTIATE_TEST_SUITE_P(Backends, StateStoreConformanceTest,
                         ::testing::Values(ConformanceBackend{"Etcd",
                                                              MakeEtcdHarness}),
                         ConformanceBackendName);

TEST(EtcdStoreLimitsTest, LimitsAreEtcdDefaults) {
  ASSERT_NE(EtcdTestEnvironment::cluster(), nullptr);
  EtcdHarness harness;
  const StoreLimits limits = harness.store().Limits();
  EXPECT_EQ(limits.max_mutations_per_batch, 128u);
  EXPECT_LT(limits.max_batch_bytes, 1536u * 1024u);
  EXPECT_LE(limits.max_value_bytes, limits.max_batch_bytes);
}

}  // namespace
}  // namespace lockwarden::store::testing
