#include "server/store/etcd_test_env.h"

#include <memory>

#include "absl/status/statusor.h"
#include "common/status_matchers.h"

namespace lockwarden::store::testing {
namespace {

using ::lockwarden::testing::EtcdCluster;
using ::lockwarden::testing::IsOk;

// Owned here; a plain pointer so no destructor runs at static teardown,
// after gtest has finished (TearDown deletes it).
EtcdCluster* g_cluster = nullptr;

}  // namespace

void EtcdTestEnvironment::SetUp() {
  absl::StatusOr<std::unique_ptr<EtcdCluster>> cluster =
      EtcdCluster::Start({.members = 1});
  ASSERT_THAT(cluster, IsOk());
  g_cluster = cluster->release();
}

void EtcdTestEnvironment::TearDown() {
  delete g_cluster;
  g_cluster = nullptr;
}

EtcdCluster* EtcdTestEnvironment::cluster() { return g_cluster; }

}  // namespace lockwarden::store::testing
