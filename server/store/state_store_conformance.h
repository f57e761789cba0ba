// The StateStore contract as one parameterized suite, shared by every
// backend's test binary so no backend's copy of the cases can drift: batches
// (order, overwrite, delete), prefix scans (order and boundaries, 0xff
// prefixes), limits, persistence where the backend has any, atomicity under
// injected failures and under concurrency. The cases live in
// state_store_conformance.cc; a test binary links that library and
// instantiates the suite with its backends:
//
//   INSTANTIATE_TEST_SUITE_P(
//       Backends, StateStoreConformanceTest,
//       ::testing::Values(ConformanceBackend{
//           "Memory", [] { return std::make_unique<MyHarness>(); }}),
//       ConformanceBackendName);
//
// Thread safety: a harness is used by the one test that made it; the store
// it owns must itself be safe from any thread (the concurrency case writes
// from several).
#ifndef LOCKWARDEN_SERVER_STORE_STATE_STORE_CONFORMANCE_H_
#define LOCKWARDEN_SERVER_STORE_STATE_STORE_CONFORMANCE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "server/store/borrowed_store.h"
#include "server/store/state_store.h"

namespace lockwarden::store::testing {

// Owns one store under test and describes what the shared cases may expect
// of its backend.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  virtual StateStore& store() = 0;
  // Durable backends: Reopen() closes the store, does whatever the backend's
  // worst survivable outage is (etcd: kill -9 of the server), and opens it
  // again on the same data.
  virtual bool CanReopen() const { return false; }
  virtual absl::Status Reopen() { return absl::UnimplementedError("reopen"); }
  // The BackendName() the store must report; empty accepts any non-empty
  // name (wrappers report their own).
  virtual std::string ExpectedBackendName() const { return ""; }
  // Batches each writer commits in ConcurrentBatchesAreEachAtomic; a backend
  // whose commits cost a network round trip and an fsync asks for fewer.
  virtual int ConcurrentBatchesPerWriter() const { return 50; }
};

struct ConformanceBackend {
  std::string name;
  std::function<std::unique_ptr<StoreHarness>()> make;
};

inline void PrintTo(const ConformanceBackend& backend, std::ostream* os) {
  *os << backend.name;
}

// The parameter-name generator for INSTANTIATE_TEST_SUITE_P.
inline std::string ConformanceBackendName(
    const ::testing::TestParamInfo<ConformanceBackend>& info) {
  return info.param.name;
}

class StateStoreConformanceTest
    : public ::testing::TestWithParam<ConformanceBackend> {
 public:
  using KV = std::vector<std::pair<std::string, std::string>>;

 protected:
  void SetUp() override;
  StateStore& store() { return harness_->store(); }

  // Every pair under `prefix`; an error fails the test and yields nothing.
  KV All(absl::string_view prefix = "");
  // The value of `key`; an error fails the test and yields nullopt.
  std::optional<std::string> GetOrDie(absl::string_view key);

  std::unique_ptr<StoreHarness> harness_;
};

}  // namespace lockwarden::store::testing

#endif  // LOCKWARDEN_SERVER_STORE_STATE_STORE_CONFORMANCE_H_
