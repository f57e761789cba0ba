// Test helper: loads the API's FileDescriptorSet (with comments) that the
// :api_descriptor_set genrule writes, from the test's runfiles.
//
// Thread safety: the functions are pure apart from reading one file; call
// them from any thread.
#ifndef LOCKWARDEN_PROTO_TEST_DESCRIPTOR_SET_H_
#define LOCKWARDEN_PROTO_TEST_DESCRIPTOR_SET_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.pb.h"

namespace lockwarden::proto_test {

// The package every lockwarden API file belongs to.
inline constexpr char kApiPackage[] = "lockwarden.v1";

// Reads proto/api_descriptor_set.pb from the runfiles ($TEST_SRCDIR and
// $TEST_WORKSPACE, as set by `bazel test`). NotFound if the file is missing,
// DataLoss if it does not parse.
absl::StatusOr<google::protobuf::FileDescriptorSet> LoadApiDescriptorSet();

// Names ("lockwarden/v1/common.proto", ...) of the files in `set` whose
// package is `package`, in the order protoc wrote them.
std::vector<std::string> FileNamesInPackage(
    const google::protobuf::FileDescriptorSet& set, const std::string& package);

}  // namespace lockwarden::proto_test

#endif  // LOCKWARDEN_PROTO_TEST_DESCRIPTOR_SET_H_
