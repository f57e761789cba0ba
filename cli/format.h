// Output rendering for lockwardenctl: aligned text tables for people and one
// JSON document per invocation for scripts, plus the small value formatters
// both share (hex bytes, byte ranges, enum names, timestamps).
//
// JSON shape (what scripts may rely on): a protobuf message becomes an
// object keyed by the proto field names (snake_case); every scalar field is
// present (defaults included), unset sub-messages and unset oneof members are
// omitted, repeated fields are arrays (possibly empty), `bytes` are lowercase
// hex strings (unlike proto3 JSON's base64: file handles are read as hex
// everywhere else too), enums are their full proto names
// ("LOCK_STATUS_GRANTED"), 64-bit integers are JSON numbers, and
// google.protobuf.Timestamp is an RFC 3339 UTC string. Keys print in
// alphabetical order (nlohmann::json objects are sorted maps).
//
// Thread safety: Table is a plain value type (not synchronised); the free
// functions are pure.
#ifndef LOCKWARDEN_CLI_FORMAT_H_
#define LOCKWARDEN_CLI_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "lockwarden/v1/common.pb.h"
#include "nlohmann/json.hpp"

namespace lockwarden::cli {

// Output format selected by --output.
enum class OutputFormat { kTable, kJson };

// Bytes as lowercase hex ("" for no bytes).
std::string ToHex(absl::string_view bytes);

// "-" for empty bytes, else ToHex: table cells are never blank.
std::string HexOrDash(absl::string_view bytes);

// A range for people: "0+100" (offset+length) or "0+EOF" for length 0.
std::string FormatRange(const lockwarden::v1::ByteRange& range);

// "EX" for exclusive, "SH" for shared.
std::string FormatMode(bool exclusive);

// An owner for people: "client/svid/oh-hex" ("-" for an empty oh).
std::string FormatOwner(const lockwarden::v1::LockOwner& owner);

// RFC 3339 UTC with milliseconds: "2026-11-26T13:50:50.123Z".
std::string TimestampToRfc3339(const google::protobuf::Timestamp& timestamp);

// TimestampToRfc3339, or "-" when unset (zero), for table cells.
std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp);

// The enum value's name without its type prefix: LOCK_STATUS_DENIED ->
// "DENIED", SERVER_ROLE_LEADER -> "LEADER". Unknown numbers print as digits.
std::string ShortEnumName(const google::protobuf::EnumDescriptor* type,
                          int number);
template <typename Enum>
std::string ShortEnumName(Enum value) {
  return ShortEnumName(google::protobuf::GetEnumDescriptor<Enum>(),
                       static_cast<int>(value));
}

// The message as JSON, per the shape documented at the top of this file.
nlohmann::json MessageToJson(const google::protobuf::Message& message);

// Lines a table prints at most, so that a huge listing cannot exhaust
// memory by padding: rows beyond it are counted in a final "... N more" line.
inline constexpr size_t kTableRowsMax = 100000;

// An aligned text table: a header row and data rows, columns separated by
// two spaces and padded to the widest cell (the last column is not padded,
// so lines carry no trailing blanks).
class Table {
 public:
  explicit Table(std::vector<std::string> headers);

  // Adds a row; missing cells print empty, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);

  size_t row_count() const { return rows_.size() + rows_dropped_; }

  // The table, one line per row, each ending in '\n'.
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
  size_t rows_dropped_ = 0;
};

// Key/value lines for single objects ("status" and friends):
//   role:            LEADER
//   leader_address:  10.0.0.1:7420
// Keys are padded to the longest one.
class KeyValueList {
 public:
  void Add(absl::string_view key, std::string value);
  // Appends all of `other`'s lines.
  void AddAll(const KeyValueList& other);
  std::string Render() const;

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

}  // namespace lockwarden::cli

#endif  // LOCKWARDEN_CLI_FORMAT_H_
