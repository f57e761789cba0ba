// EtcdTestEnvironment (testonly): one real 1-member etcd cluster shared by
// every test in a binary, started before the first test and SIGKILLed after
// the last (EtcdCluster's destructor). Tests keep apart by key prefix.
// Register it once per binary at namespace scope:
//
//   const ::testing::Environment* const kEtcd =
//       ::testing::AddGlobalTestEnvironment(new EtcdTestEnvironment);
//
// and read the cluster with EtcdTestEnvironment::cluster() (nullptr if it
// failed to start; that failure is already reported and fails the binary).
//
// Thread safety: SetUp/TearDown run on gtest's main thread outside any
// test; cluster() may be read from any thread while tests run.
#ifndef LOCKWARDEN_SERVER_STORE_ETCD_TEST_ENV_H_
#define LOCKWARDEN_SERVER_STORE_ETCD_TEST_ENV_H_

#include "gtest/gtest.h"
#include "tests/etcd/etcd_cluster.h"

namespace lockwarden::store::testing {

class EtcdTestEnvironment : public ::testing::Environment {
 public:
  void SetUp() override;
  void TearDown() override;

  // The running cluster, or nullptr outside SetUp..TearDown or when it
  // failed to start.
  static lockwarden::testing::EtcdCluster* cluster();
};

}  // namespace lockwarden::store::testing

#endif  // LOCKWARDEN_SERVER_STORE_ETCD_TEST_ENV_H_
