// Runs every file of the seed corpus through LLVMFuzzerTestOneInput without
// libFuzzer: a regular unit test (any compiler) that the seeds decode,
// dispatch and answer without tripping the fuzzer's invariants.
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string CorpusDir() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return std::string(srcdir) + "/" + workspace + "/tests/fuzz/corpus";
  }
  return "tests/fuzz/corpus";
}

TEST(RpcFuzzerCorpusTest, EverySeedRunsCleanly) {
  const std::string dir = CorpusDir();
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  int seeds = 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::ifstream in(dir + "/" + name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)),
                            std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()),
                           bytes.size());
    ++seeds;
  }
  closedir(d);
  EXPECT_GE(seeds, 50);
}

}  // namespace
