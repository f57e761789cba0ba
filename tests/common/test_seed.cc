#include "tests/common/test_seed.h"

#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace lockwarden::testing {

uint64_t TestSeed() {
  for (const std::string& arg : ::testing::internal::GetArgvs()) {
    absl::string_view v(arg);
    uint64_t seed = 0;
    if (absl::ConsumePrefix(&v, "--seed=") && absl::SimpleAtoi(v, &seed)) {
      return seed;
    }
  }
  uint64_t seed = 0;
  if (const char* env = std::getenv("LW_SEED");
      env != nullptr && absl::SimpleAtoi(env, &seed)) {
    return seed;
  }
  return std::random_device{}();
}

}  // namespace lockwarden::testing
