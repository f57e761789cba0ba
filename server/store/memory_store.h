// MemoryStore: a StateStore in a std::map, for unit tests only. Commits are
// atomic (one mutex) but nothing is durable; FencingToken() is 0.
//
// Thread safety: all methods may be called concurrently. Scan() copies the
// matching range under the mutex and calls fn without it, so fn may call
// back into the store.
#ifndef LOCKWARDEN_SERVER_STORE_MEMORY_STORE_H_
#define LOCKWARDEN_SERVER_STORE_MEMORY_STORE_H_

#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

class MemoryStore : public StateStore {
 public:
  explicit MemoryStore(StoreLimits limits = StoreLimits()) : limits_(limits) {}

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override;
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override;
  uint64_t FencingToken() const override { return 0; }
  std::string BackendName() const override { return "memory"; }
  absl::Status Health() const override { return absl::OkStatus(); }
  StoreLimits Limits() const override { return limits_; }

 private:
  const StoreLimits limits_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> data_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_MEMORY_STORE_H_
