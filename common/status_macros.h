// Status propagation macros. Debian's abseil (20220623) ships none, so we
// keep the two we use here, shaped like the upstream ones.
//
//   LW_RETURN_IF_ERROR(store.Commit(batch));
//   LW_ASSIGN_OR_RETURN(auto value, store.Get(key));
#ifndef LOCKWARDEN_COMMON_STATUS_MACROS_H_
#define LOCKWARDEN_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LW_STATUS_CONCAT_INNER_(a, b) a##b
#define LW_STATUS_CONCAT_(a, b) LW_STATUS_CONCAT_INNER_(a, b)

#define LW_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::absl::Status lw_status_ = (expr);           \
    if (!lw_status_.ok()) return lw_status_;      \
  } while (0)

#define LW_ASSIGN_OR_RETURN(lhs, expr) \
  LW_ASSIGN_OR_RETURN_IMPL_(LW_STATUS_CONCAT_(lw_statusor_, __LINE__), lhs, expr)

#define LW_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // LOCKWARDEN_COMMON_STATUS_MACROS_H_
