// A store that fails mid-write: the affected request fails with UNAVAILABLE,
// the server stops acknowledging and reports NOT_SERVING, and what the store
// holds is exactly what was acknowledged (plus, for a failure after the
// write, the failed request applied whole).
#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "server/service/service_test_util.h"
#include "server/store/fault_injecting_store.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class StoreFaultTest : public ServiceTest,
                       public ::testing::WithParamInterface<store::FaultSpec::Phase> {
 protected:
  void SetUp() override {
    auto base = std::make_unique<store::MemoryStore>();
    base_ = base.get();
    faulty_ = std::make_unique<store::FaultInjectingStore>(std::move(base));
    StartServer(faulty_.get());
  }

  store::MemoryStore* base_ = nullptr;
  std::unique_ptr<store::FaultInjectingStore> faulty_;
};

TEST_P(StoreFaultTest, FailedCommitStopsAcknowledgingAndLosesNothingAcknowledged) {
  ASSERT_EQ(Lock(LockReq("a", 1, "fh", 0, 10)), v1::LOCK_STATUS_GRANTED);
  faulty_->Arm(store::FaultSpec::FailNth(1, GetParam()));

  v1::LockResponse resp;
  grpc::Status s = lock_->Lock(Ctx().get(), LockReq("b", 1, "fh", 20, 10), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();

  faulty_->Disarm();
  // Even with a healthy disk again, this process has state ahead of the
  // store: it must keep refusing until restarted.
  s = lock_->Lock(Ctx().get(), LockReq("c", 1, "fh", 40, 10), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::TestRequest t;
  t.set_gateway_id("gw-a");
  t.set_file_handle("fh");
  t.mutable_owner()->set_client_name("z");
  v1::TestResponse tr;
  EXPECT_EQ(lock_->Test(Ctx().get(), t, &tr).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(server_->runner_for_testing()->Health().ok());
  // Replacing this leader helps (a standby's state is what the store holds),
  // so what standbys probe says NOT_SERVING too.
  EXPECT_EQ(HealthOf(kLeadershipHealthService),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(HealthOf("lockwarden.v1.LockService"),
            grpc::health::v1::HealthCheckResponse::NOT_SERVING);

  // Restart on what the store really holds.
  StopServer();
  StartServer(faulty_.get());
  v1::ListLocksResponse locks = ListLocks("fh");
  const bool after_write = GetParam() == store::FaultSpec::Phase::kAfterWrite;
  ASSERT_EQ(locks.locks_size(), after_write ? 2 : 1);
  EXPECT_EQ(locks.locks(0).owner().client_name(), "a");
  for (const auto& l : locks.locks()) {
    EXPECT_NE(l.owner().client_name(), "c") << "refused request must not be applied";
  }
  // And it serves again.
  EXPECT_EQ(Lock(LockReq("d", 1, "fh", 60, 10)), v1::LOCK_STATUS_GRANTED);
}

INSTANTIATE_TEST_SUITE_P(Phases, StoreFaultTest,
                         ::testing::Values(store::FaultSpec::Phase::kBeforeWrite,
                                           store::FaultSpec::Phase::kAfterWrite));

TEST_F(ServiceTest, DiskFullAtStartupOfAWriteIsUnavailableNotACrash) {
  auto faulty = std::make_unique<store::FaultInjectingStore>(
      std::make_unique<store::MemoryStore>(), store::FaultSpec::DiskFull());
  StartServer(faulty.get());
  v1::LockResponse resp;
  grpc::Status s = lock_->Lock(Ctx().get(), LockReq("a", 1, "fh", 0, 10), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  StopServer();
}

}  // namespace
}  // namespace lockwarden::service::testing
