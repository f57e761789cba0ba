#include "tests/common/test_pki.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/common/spawn.h"

namespace lockwarden::testing {

TestPki::TestPki(const std::string& subdir)
    : dir_(absl::StrCat(TestTempRoot(), "/", subdir)) {
  Run(absl::StrCat("rm -rf ", dir_, " && mkdir -p ", dir_));
}

void TestPki::MakeCa(const std::string& name) {
  Run(absl::StrCat("cd ", dir_,
                   " && openssl req -x509 -newkey ec -pkeyopt "
                   "ec_paramgen_curve:prime256v1 -nodes -keyout ",
                   name, ".key -out ", name, ".pem -days 1 -subj /CN=", name));
}

void TestPki::MakeLeaf(const std::string& name, const std::string& ca,
                       const std::string& cn, const std::string& extension) {
  Run(absl::StrCat(
      "cd ", dir_, " && printf '%s\\n' '", extension, "' > ", name,
      ".ext && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 ",
      "-nodes -keyout ", name, ".key -out ", name, ".csr -subj /CN=", cn,
      " && openssl x509 -req -in ", name, ".csr -CA ", ca, ".pem -CAkey ", ca,
      ".key -CAcreateserial -out ", name, ".pem -days 1 -extfile ", name,
      ".ext"));
}

std::string TestPki::Path(const std::string& file) const {
  return absl::StrCat(dir_, "/", file);
}

std::string TestPki::Pem(const std::string& file) const {
  std::ifstream in(Path(file));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void TestPki::Run(const std::string& command) {
  if (std::system(absl::StrCat(command, " >/dev/null 2>&1").c_str()) != 0) {
    ADD_FAILURE() << "command failed: " << command;
    ok_ = false;
  }
}

}  // namespace lockwarden::testing
