#include "cli/format.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"

namespace lockwarden::cli {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// "LockStatus" -> "LOCK_STATUS_": the prefix buf/AIP style puts on values.
std::string EnumValuePrefix(absl::string_view type_name) {
  std::string prefix;
  for (size_t i = 0; i < type_name.size(); ++i) {
    const char c = type_name[i];
    if (absl::ascii_isupper(c) && i > 0) prefix.push_back('_');
    prefix.push_back(absl::ascii_toupper(c));
  }
  prefix.push_back('_');
  return prefix;
}

bool IsTimestamp(const google::protobuf::Descriptor* type) {
  return type->full_name() == "google.protobuf.Timestamp";
}

nlohmann::json SingularToJson(const Message& message,
                              const FieldDescriptor* field);
nlohmann::json RepeatedElementToJson(const Message& message,
                                     const FieldDescriptor* field, int index);

nlohmann::json SubMessageToJson(const Message& sub) {
  if (IsTimestamp(sub.GetDescriptor())) {
    google::protobuf::Timestamp timestamp;
    timestamp.CopyFrom(sub);
    return TimestampToRfc3339(timestamp);
  }
  return MessageToJson(sub);
}

nlohmann::json SingularToJson(const Message& message,
                              const FieldDescriptor* field) {
  const Reflection* reflection = message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return reflection->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return reflection->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return reflection->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return reflection->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return reflection->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return reflection->GetFloat(message, field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return reflection->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto* value = reflection->GetEnum(message, field);
      return value->name();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string text = reflection->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return ToHex(text);
      return text;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return SubMessageToJson(reflection->GetMessage(message, field));
  }
  return nullptr;
}

nlohmann::json RepeatedElementToJson(const Message& message,
                                     const FieldDescriptor* field, int index) {
  const Reflection* reflection = message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return reflection->GetRepeatedInt32(message, field, index);
    case FieldDescriptor::CPPTYPE_INT64:
      return reflection->GetRepeatedInt64(message, field, index);
    case FieldDescriptor::CPPTYPE_UINT32:
      return reflection->GetRepeatedUInt32(message, field, index);
    case FieldDescriptor::CPPTYPE_UINT64:
      return reflection->GetRepeatedUInt64(message, field, index);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return reflection->GetRepeatedDouble(message, field, index);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return reflection->GetRepeatedFloat(message, field, index);
    case FieldDescriptor::CPPTYPE_BOOL:
      return reflection->GetRepeatedBool(message, field, index);
    case FieldDescriptor::CPPTYPE_ENUM:
      return reflection->GetRepeatedEnum(message, field, index)->name();
    case FieldDescriptor::CPPTYPE_STRING: {
      const std::string text =
          reflection->GetRepeatedString(message, field, index);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return ToHex(text);
      return text;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return SubMessageToJson(
          reflection->GetRepeatedMessage(message, field, index));
  }
  return nullptr;
}

}  // namespace

std::string ToHex(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char byte : bytes) {
    hex.push_back(kDigits[byte >> 4]);
    hex.push_back(kDigits[byte & 0x0f]);
  }
  return hex;
}

std::string HexOrDash(absl::string_view bytes) {
  return bytes.empty() ? "-" : ToHex(bytes);
}

std::string FormatRange(const lockwarden::v1::ByteRange& range) {
  if (range.length() == 0) return absl::StrCat(range.offset(), "+EOF");
  return absl::StrCat(range.offset(), "+", range.length());
}

std::string FormatMode(bool exclusive) { return exclusive ? "EX" : "SH"; }

std::string FormatOwner(const lockwarden::v1::LockOwner& owner) {
  return absl::StrCat(owner.client_name(), "/", owner.svid(), "/",
                      HexOrDash(owner.oh()));
}

std::string TimestampToRfc3339(const google::protobuf::Timestamp& timestamp) {
  const absl::Time time = absl::FromUnixSeconds(timestamp.seconds()) +
                          absl::Nanoseconds(timestamp.nanos());
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", time, absl::UTCTimeZone());
}

std::string FormatTimestamp(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  return TimestampToRfc3339(timestamp);
}

std::string ShortEnumName(const google::protobuf::EnumDescriptor* type,
                          int number) {
  const auto* value = type->FindValueByNumber(number);
  if (value == nullptr) return absl::StrCat(number);
  absl::string_view name = value->name();
  const std::string prefix = EnumValuePrefix(type->name());
  if (absl::StartsWith(name, prefix)) name.remove_prefix(prefix.size());
  return std::string(name);
}

nlohmann::json MessageToJson(const Message& message) {
  nlohmann::json object = nlohmann::json::object();
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) {
      nlohmann::json array = nlohmann::json::array();
      const int size = reflection->FieldSize(message, field);
      for (int j = 0; j < size; ++j) {
        array.push_back(RepeatedElementToJson(message, field, j));
      }
      object[field->name()] = std::move(array);
      continue;
    }
    // Sub-messages, oneof members and proto3 `optional` fields have
    // presence: leave them out when unset, so "absent" stays distinguishable
    // from "zero".
    if (field->has_presence() && !reflection->HasField(message, field)) {
      continue;
    }
    object[field->name()] = SingularToJson(message, field);
  }
  return object;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::AddRow(std::vector<std::string> cells) {
  if (rows_.size() >= kTableRowsMax) {
    ++rows_dropped_;
    return;
  }
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      widths[i] = std::max(widths[i], cells[i].size());
    }
  };
  measure(headers_);
  for (const auto& row : rows_) measure(row);
  std::string out;
  auto render_line = [&out, &widths](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      absl::StrAppend(&out, cells[i]);
      if (i + 1 < cells.size()) {
        out.append(widths[i] - cells[i].size() + 2, ' ');
      }
    }
    out.push_back('\n');
  };
  render_line(headers_);
  for (const auto& row : rows_) render_line(row);
  if (rows_dropped_ > 0) {
    absl::StrAppend(&out, "... ", rows_dropped_, " more rows not shown\n");
  }
  return out;
}

void KeyValueList::Add(absl::string_view key, std::string value) {
  items_.emplace_back(std::string(key), std::move(value));
}

void KeyValueList::AddAll(const KeyValueList& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

std::string KeyValueList::Render() const {
  size_t width = 0;
  for (const auto& item : items_) width = std::max(width, item.first.size());
  std::string out;
  for (const auto& [key, value] : items_) {
    absl::StrAppend(&out, key, ":", std::string(width - key.size() + 2, ' '),
                    value, "\n");
  }
  return out;
}

}  // namespace lockwarden::cli
