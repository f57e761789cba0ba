// Checks that a proto in another package can import lockwarden.v1 through
// lw_proto_library(proto_deps = ...) and that its generated code links.
#include "gtest/gtest.h"
#include "importer/v1/importer.pb.h"
#include "lockwarden/v1/common.pb.h"

namespace lockwarden::proto_test {
namespace {

TEST(ProtoDepsTest, ImportedApiTypesRoundTrip) {
  lockwarden::testdata::importer::v1::Record record;
  record.mutable_owner()->set_client_name("client-a");
  record.mutable_owner()->set_svid(7);
  record.mutable_range()->set_length(0);
  record.mutable_range()->set_offset(1ULL << 40);
  lockwarden::testdata::importer::v1::Record parsed;
  ASSERT_TRUE(parsed.ParseFromString(record.SerializeAsString()));
  EXPECT_EQ(parsed.owner().client_name(), "client-a");
  EXPECT_EQ(parsed.owner().svid(), 7u);
  EXPECT_EQ(parsed.range().offset(), 1ULL << 40);
  EXPECT_EQ(parsed.owner().GetDescriptor(),
            lockwarden::v1::LockOwner::descriptor());
}

}  // namespace
}  // namespace lockwarden::proto_test
