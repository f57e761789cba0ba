// The seed of a randomised integration test: `--seed=N` on the test's
// command line (gtest passes unknown flags through), else $LW_SEED, else a
// fresh random one. The caller prints it so a failure can be replayed.
//
// Thread-safety: call from the test's main thread (reads gtest's argv).

#ifndef LOCKWARDEN_TESTS_COMMON_TEST_SEED_H_
#define LOCKWARDEN_TESTS_COMMON_TEST_SEED_H_

#include <cstdint>

namespace lockwarden::testing {

uint64_t TestSeed();

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_COMMON_TEST_SEED_H_
