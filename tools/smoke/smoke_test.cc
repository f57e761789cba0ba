#include <grpcpp/grpcpp.h>
#include <rocksdb/db.h>
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
TEST(Smoke, Links) {
  absl::StatusOr<int> s = 3;
  EXPECT_TRUE(s.ok());
  EXPECT_FALSE(grpc::Version().empty());
}
