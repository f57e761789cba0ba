#include "proto/test_descriptor_set.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lockwarden::proto_test {

absl::StatusOr<google::protobuf::FileDescriptorSet> LoadApiDescriptorSet() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) {
    return absl::FailedPreconditionError(
        "TEST_SRCDIR/TEST_WORKSPACE unset: run under `bazel test`");
  }
  const std::string path =
      absl::StrCat(srcdir, "/", workspace, "/proto/api_descriptor_set.pb");
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream bytes;
  bytes << in.rdbuf();
  google::protobuf::FileDescriptorSet set;
  if (!set.ParseFromString(bytes.str())) {
    return absl::DataLossError(absl::StrCat("cannot parse ", path));
  }
  return set;
}

std::vector<std::string> FileNamesInPackage(
    const google::protobuf::FileDescriptorSet& set,
    const std::string& package) {
  std::vector<std::string> names;
  for (const google::protobuf::FileDescriptorProto& file : set.file()) {
    if (file.package() == package) names.push_back(file.name());
  }
  return names;
}

}  // namespace lockwarden::proto_test
