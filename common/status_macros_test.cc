#include "common/status_macros.h"

#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace lockwarden {
namespace {

using ::lockwarden::testing::IsOk;
using ::lockwarden::testing::StatusIs;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("odd");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  LW_ASSIGN_OR_RETURN(int h, Half(x));
  LW_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  LW_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesError) {
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument));
  LW_ASSERT_OK_AND_ASSIGN(int q, Quarter(8));
  EXPECT_EQ(q, 2);
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesError) {
  EXPECT_THAT(CheckEven(4), IsOk());
  EXPECT_THAT(CheckEven(5), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace lockwarden
