#include "cli/format.h"

#include <string>

#include "gtest/gtest.h"
#include "lockwarden/v1/admin_resources.pb.h"
#include "lockwarden/v1/admin_service.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

TEST(ToHexTest, LowercaseTwoDigitsPerByte) {
  EXPECT_EQ(ToHex(std::string("\x00\x0a\xff", 3)), "000aff");
  EXPECT_EQ(ToHex(""), "");
  EXPECT_EQ(HexOrDash(""), "-");
}

TEST(FormatRangeTest, LengthZeroIsToEndOfFile) {
  v1::ByteRange range;
  range.set_offset(10);
  EXPECT_EQ(FormatRange(range), "10+EOF");
  range.set_length(5);
  EXPECT_EQ(FormatRange(range), "10+5");
}

TEST(FormatOwnerTest, ClientSvidAndHexHandle) {
  v1::LockOwner owner;
  owner.set_client_name("nfs1");
  owner.set_svid(42);
  EXPECT_EQ(FormatOwner(owner), "nfs1/42/-");
  owner.set_oh("\x01\x02");
  EXPECT_EQ(FormatOwner(owner), "nfs1/42/0102");
}

TEST(ShortEnumNameTest, StripsTheTypePrefix) {
  EXPECT_EQ(ShortEnumName(v1::LOCK_STATUS_GRACE_PERIOD), "GRACE_PERIOD");
  EXPECT_EQ(ShortEnumName(v1::SERVER_ROLE_LEADER), "LEADER");
  EXPECT_EQ(ShortEnumName(v1::SHARE_ACCESS_READ_WRITE), "READ_WRITE");
  EXPECT_EQ(ShortEnumName(static_cast<v1::LockStatus>(99)), "99");
}

TEST(FormatTimestampTest, Rfc3339UtcAndDashWhenUnset) {
  google::protobuf::Timestamp timestamp;
  EXPECT_EQ(FormatTimestamp(timestamp), "-");
  timestamp.set_seconds(1700000000);
  timestamp.set_nanos(123000000);
  EXPECT_EQ(FormatTimestamp(timestamp), "2023-11-14T22:13:20.123Z");
}

TEST(TableTest, ColumnsAreAlignedWithoutTrailingBlanks) {
  Table table({"A", "LONG_HEADER", "C"});
  table.AddRow({"xxxx", "y", "z"});
  table.AddRow({"1"});  // missing cells print empty
  EXPECT_EQ(table.Render(),
            "A     LONG_HEADER  C\n"
            "xxxx  y            z\n"
            "1                  \n");
  EXPECT_EQ(table.row_count(), 2u);
}

TEST(KeyValueListTest, KeysArePadded) {
  KeyValueList list;
  list.Add("status", "GRANTED");
  list.Add("fencing_token", "7");
  EXPECT_EQ(list.Render(),
            "status:         GRANTED\n"
            "fencing_token:  7\n");
}

TEST(MessageToJsonTest, LockHasHexBytesEnumNamesAndAllScalars) {
  v1::Lock lock;
  lock.set_file_handle("\x0a\x0b");
  lock.mutable_owner()->set_client_name("c1");
  lock.mutable_owner()->set_svid(7);
  lock.mutable_owner()->set_oh("\xff");
  lock.mutable_range()->set_offset(100);
  lock.set_exclusive(true);
  lock.set_fencing_token(18446744073709551615ull);
  lock.mutable_granted_at()->set_seconds(1700000000);
  const nlohmann::json json = MessageToJson(lock);
  EXPECT_EQ(json["file_handle"], "0a0b");
  EXPECT_EQ(json["owner"]["client_name"], "c1");
  EXPECT_EQ(json["owner"]["svid"], 7);
  EXPECT_EQ(json["owner"]["oh"], "ff");
  EXPECT_EQ(json["range"]["offset"], 100);
  EXPECT_EQ(json["range"]["length"], 0);  // defaults are present
  EXPECT_EQ(json["exclusive"], true);
  EXPECT_EQ(json["fencing_token"].get<uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(json["granted_at"], "2023-11-14T22:13:20.000Z");
  EXPECT_EQ(json["confirmed"], false);
  // Unset sub-messages are absent.
  EXPECT_FALSE(json.contains("confirm_deadline"));
}

TEST(MessageToJsonTest, RepeatedEnumsAndOneofs) {
  v1::GetServerStatusResponse status;
  status.set_role(v1::SERVER_ROLE_STANDBY);
  nlohmann::json json = MessageToJson(status);
  EXPECT_EQ(json["role"], "SERVER_ROLE_STANDBY");
  EXPECT_EQ(json["store_backend"], "STORE_BACKEND_UNSPECIFIED");

  v1::Waiter waiter;
  json = MessageToJson(waiter);
  ASSERT_TRUE(json["blocked_by"].is_array());
  EXPECT_TRUE(json["blocked_by"].empty());
  waiter.add_blocked_by()->mutable_owner()->set_client_name("h");
  json = MessageToJson(waiter);
  EXPECT_EQ(json["blocked_by"][0]["owner"]["client_name"], "h");

  v1::ForceReleaseRequest release;
  release.set_client_name("c9");
  json = MessageToJson(release);
  EXPECT_EQ(json["client_name"], "c9");
  EXPECT_FALSE(json.contains("file_handle"));  // the other oneof members
  EXPECT_FALSE(json.contains("owner"));

  v1::SimulateClientRebootRequest reboot;
  json = MessageToJson(reboot);
  EXPECT_FALSE(json.contains("new_state"));  // proto3 optional, unset
  reboot.set_new_state(0);
  json = MessageToJson(reboot);
  EXPECT_EQ(json["new_state"], 0);
}

}  // namespace
}  // namespace lockwarden::cli
