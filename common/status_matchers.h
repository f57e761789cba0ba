// GoogleTest matchers for absl::Status and absl::StatusOr. Debian's abseil
// has no status matchers; these have the upstream names and shapes.
//
//   EXPECT_THAT(store.Commit(batch), IsOk());
//   EXPECT_THAT(Parse(bad), StatusIs(absl::StatusCode::kInvalidArgument));
//   LW_ASSERT_OK(store.Commit(batch));
//   LW_ASSERT_OK_AND_ASSIGN(auto v, store.Get("k"));
#ifndef LOCKWARDEN_COMMON_STATUS_MATCHERS_H_
#define LOCKWARDEN_COMMON_STATUS_MATCHERS_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lockwarden::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::lockwarden::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s;
  return s.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has status code ") +
              std::string(absl::StatusCodeToString(code))) {
  const absl::Status& s = ::lockwarden::testing::GetStatus(arg);
  *result_listener << "status is " << s;
  return s.code() == code;
}

}  // namespace lockwarden::testing

#define LW_ASSERT_OK(expr) \
  ASSERT_THAT((expr), ::lockwarden::testing::IsOk())
#define LW_EXPECT_OK(expr) \
  EXPECT_THAT((expr), ::lockwarden::testing::IsOk())

#define LW_ASSERT_OK_AND_ASSIGN(lhs, expr)                                  \
  LW_ASSERT_OK_AND_ASSIGN_IMPL_(LW_MATCHERS_CONCAT_(lw_sor_, __LINE__), lhs, \
                                expr)
#define LW_MATCHERS_CONCAT_INNER_(a, b) a##b
#define LW_MATCHERS_CONCAT_(a, b) LW_MATCHERS_CONCAT_INNER_(a, b)
#define LW_ASSERT_OK_AND_ASSIGN_IMPL_(sor, lhs, expr) \
  auto sor = (expr);                                  \
  ASSERT_TRUE(sor.ok()) << sor.status();              \
  lhs = std::move(sor).value()

#endif  // LOCKWARDEN_COMMON_STATUS_MATCHERS_H_
