// BorrowedStore: a StateStore that forwards every call to a store it does
// not own. Tests use it to restart a server on the same underlying store, or
// to put a wrapper (a fault injector) in front of the store under test.
// Wrappers derive from it and override only the calls they change
// (FaultInjectingStore, the session test's GatedStore).
//
// Thread-safety: exactly that of the borrowed store; it must outlive this.

#ifndef LOCKWARDEN_SERVER_STORE_BORROWED_STORE_H_
#define LOCKWARDEN_SERVER_STORE_BORROWED_STORE_H_

#include <optional>
#include <string>

#include "server/store/state_store.h"

namespace lockwarden::store {

class BorrowedStore : public StateStore {
 public:
  explicit BorrowedStore(StateStore* base) : base_(base) {}
  absl::Status Commit(const Delta& batch) override {
    return base_->Commit(batch);
  }
  absl::Status Scan(absl::string_view prefix,
                    const ScanFn& fn) const override {
    return base_->Scan(prefix, fn);
  }
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override {
    return base_->Get(key);
  }
  uint64_t FencingToken() const override { return base_->FencingToken(); }
  std::string BackendName() const override { return base_->BackendName(); }
  absl::Status Health() const override { return base_->Health(); }
  StoreLimits Limits() const override { return base_->Limits(); }

 private:
  StateStore* const base_;
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_BORROWED_STORE_H_
