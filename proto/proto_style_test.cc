// Checks the API's conventions on the .proto sources themselves (through the
// FileDescriptorSet protoc writes with --include_source_info): every
// service, RPC, message, field, oneof, enum and enum value has a leading doc
// comment, every file opens with a banner, RPCs take <Rpc>Request and return
// <Rpc>Response, enums are prefixed and start with _UNSPECIFIED = 0, and
// every mutation carries a request_id (and the scope fields it needs).
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"
#include "proto/test_descriptor_set.h"

namespace lockwarden::proto_test {
namespace {

using google::protobuf::DescriptorProto;
using google::protobuf::EnumDescriptorProto;
using google::protobuf::FieldDescriptorProto;
using google::protobuf::FileDescriptorProto;
using google::protobuf::FileDescriptorSet;
using google::protobuf::ServiceDescriptorProto;

// Field numbers of descriptor.proto used to build SourceCodeInfo paths.
constexpr int kFileMessageType = 4;
constexpr int kFileEnumType = 5;
constexpr int kFileService = 6;
constexpr int kFileSyntax = 12;
constexpr int kMessageField = 2;
constexpr int kMessageNestedType = 3;
constexpr int kMessageEnumType = 4;
constexpr int kMessageOneofDecl = 8;
constexpr int kEnumValue = 2;
constexpr int kServiceMethod = 2;

// Files checked: the lockwarden API and our copy of the health API.
std::vector<const FileDescriptorProto*> CheckedFiles(
    const FileDescriptorSet& set) {
  std::vector<const FileDescriptorProto*> files;
  for (const FileDescriptorProto& file : set.file()) {
    if (file.package() == kApiPackage || file.package() == "grpc.health.v1") {
      files.push_back(&file);
    }
  }
  return files;
}

FileDescriptorSet LoadOrDie() {
  auto set = LoadApiDescriptorSet();
  if (!set.ok()) {
    ADD_FAILURE() << set.status();
    return FileDescriptorSet();
  }
  return *std::move(set);
}

std::string PathKey(const std::vector<int>& path) {
  return absl::StrJoin(path, ".");
}

// Collects, for one file, the names of elements without a leading comment.
class DocChecker {
 public:
  explicit DocChecker(const FileDescriptorProto& file) : file_(file) {
    for (const auto& location : file.source_code_info().location()) {
      if (!absl::StripAsciiWhitespace(location.leading_comments()).empty()) {
        documented_.insert(PathKey({location.path().begin(),
                                    location.path().end()}));
      }
      if (location.path_size() == 1 && location.path(0) == kFileSyntax &&
          location.leading_detached_comments_size() +
                  (location.has_leading_comments() ? 1 : 0) >
              0) {
        has_banner_ = true;
      }
    }
  }

  bool has_banner() const { return has_banner_; }

  std::vector<std::string> Undocumented() {
    missing_.clear();
    const std::string prefix = file_.package() + ".";
    for (int i = 0; i < file_.message_type_size(); ++i) {
      CheckMessage(file_.message_type(i), {kFileMessageType, i}, prefix);
    }
    for (int i = 0; i < file_.enum_type_size(); ++i) {
      CheckEnum(file_.enum_type(i), {kFileEnumType, i}, prefix);
    }
    for (int i = 0; i < file_.service_size(); ++i) {
      const ServiceDescriptorProto& service = file_.service(i);
      Require({kFileService, i}, prefix + service.name());
      for (int m = 0; m < service.method_size(); ++m) {
        Require({kFileService, i, kServiceMethod, m},
                prefix + service.name() + "." + service.method(m).name());
      }
    }
    return missing_;
  }

 private:
  void Require(const std::vector<int>& path, const std::string& name) {
    if (documented_.count(PathKey(path)) == 0) missing_.push_back(name);
  }

  static std::vector<int> Append(std::vector<int> path, int a, int b) {
    path.push_back(a);
    path.push_back(b);
    return path;
  }

  void CheckMessage(const DescriptorProto& message, const std::vector<int>& path,
                    const std::string& scope) {
    const std::string name = scope + message.name();
    Require(path, name);
    for (int i = 0; i < message.field_size(); ++i) {
      Require(Append(path, kMessageField, i),
              name + "." + message.field(i).name());
    }
    for (int i = 0; i < message.oneof_decl_size(); ++i) {
      // proto3 `optional` makes a synthetic oneof named "_<field>": it has
      // no source of its own to document.
      if (absl::StartsWith(message.oneof_decl(i).name(), "_")) continue;
      Require(Append(path, kMessageOneofDecl, i),
              name + ".(oneof " + message.oneof_decl(i).name() + ")");
    }
    for (int i = 0; i < message.nested_type_size(); ++i) {
      CheckMessage(message.nested_type(i),
                   Append(path, kMessageNestedType, i), name + ".");
    }
    for (int i = 0; i < message.enum_type_size(); ++i) {
      CheckEnum(message.enum_type(i), Append(path, kMessageEnumType, i),
                name + ".");
    }
  }

  void CheckEnum(const EnumDescriptorProto& e, const std::vector<int>& path,
                 const std::string& scope) {
    Require(path, scope + e.name());
    for (int i = 0; i < e.value_size(); ++i) {
      Require(Append(path, kEnumValue, i), scope + e.value(i).name());
    }
  }

  const FileDescriptorProto& file_;
  std::set<std::string> documented_;
  std::vector<std::string> missing_;
  bool has_banner_ = false;
};

TEST(ProtoStyleTest, DescriptorSetHoldsTheApi) {
  FileDescriptorSet set = LoadOrDie();
  EXPECT_EQ(FileNamesInPackage(set, kApiPackage).size(), 6u);
  EXPECT_EQ(FileNamesInPackage(set, "grpc.health.v1").size(), 1u);
}

TEST(ProtoStyleTest, EveryElementHasALeadingDocComment) {
  FileDescriptorSet set = LoadOrDie();
  for (const FileDescriptorProto* file : CheckedFiles(set)) {
    ASSERT_TRUE(file->has_source_code_info()) << file->name();
    DocChecker checker(*file);
    EXPECT_TRUE(checker.has_banner()) << file->name() << " has no banner";
    std::vector<std::string> missing = checker.Undocumented();
    EXPECT_TRUE(missing.empty()) << file->name() << " lacks doc comments on: "
                                 << absl::StrJoin(missing, ", ");
  }
}

// "LockService" -> false; "lock_status" -> true.
bool IsLowerSnakeCase(const std::string& s) {
  if (s.empty() || !absl::ascii_islower(s[0])) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_')) {
      return false;
    }
  }
  return !absl::StrContains(s, "__") && s.back() != '_';
}

// "LockStatus" -> "LOCK_STATUS".
std::string UpperSnake(const std::string& camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    if (i > 0 && absl::ascii_isupper(camel[i])) out += '_';
    out += absl::ascii_toupper(camel[i]);
  }
  return out;
}

void CheckEnumNaming(const EnumDescriptorProto& e) {
  const std::string prefix = UpperSnake(e.name()) + "_";
  ASSERT_GT(e.value_size(), 0) << e.name();
  EXPECT_EQ(e.value(0).number(), 0) << e.name();
  EXPECT_EQ(e.value(0).name(), prefix + "UNSPECIFIED") << e.name();
  for (const auto& value : e.value()) {
    EXPECT_TRUE(absl::StartsWith(value.name(), prefix))
        << value.name() << " lacks prefix " << prefix;
  }
}

void CheckMessageNaming(const DescriptorProto& message) {
  std::set<int> numbers;
  for (const FieldDescriptorProto& field : message.field()) {
    EXPECT_TRUE(IsLowerSnakeCase(field.name()))
        << message.name() << "." << field.name();
    EXPECT_TRUE(numbers.insert(field.number()).second)
        << message.name() << "." << field.name();
  }
  for (const DescriptorProto& nested : message.nested_type()) {
    CheckMessageNaming(nested);
  }
  for (const EnumDescriptorProto& e : message.enum_type()) CheckEnumNaming(e);
}

TEST(ProtoStyleTest, NamesFollowAipConventions) {
  FileDescriptorSet set = LoadOrDie();
  for (const FileDescriptorProto& file : set.file()) {
    if (file.package() != kApiPackage) continue;  // Upstream health differs.
    EXPECT_EQ(file.syntax(), "proto3") << file.name();
    for (const DescriptorProto& message : file.message_type()) {
      CheckMessageNaming(message);
    }
    for (const EnumDescriptorProto& e : file.enum_type()) CheckEnumNaming(e);
    for (const ServiceDescriptorProto& service : file.service()) {
      for (const auto& method : service.method()) {
        const std::string package_prefix = "." + file.package() + ".";
        EXPECT_EQ(method.input_type(),
                  package_prefix + method.name() + "Request")
            << service.name() << "." << method.name();
        EXPECT_EQ(method.output_type(),
                  package_prefix + method.name() + "Response")
            << service.name() << "." << method.name();
      }
    }
  }
}

const DescriptorProto* FindMessage(const FileDescriptorSet& set,
                                   const std::string& full_name) {
  for (const FileDescriptorProto& file : set.file()) {
    for (const DescriptorProto& message : file.message_type()) {
      if ("." + file.package() + "." + message.name() == full_name) {
        return &message;
      }
    }
  }
  return nullptr;
}

const FieldDescriptorProto* FindField(const DescriptorProto& message,
                                      const std::string& name) {
  for (const FieldDescriptorProto& field : message.field()) {
    if (field.name() == name) return &field;
  }
  return nullptr;
}

// Read-only RPCs: everything else changes state and must be idempotent.
bool IsReadOnly(const std::string& method) {
  for (const char* prefix : {"List", "Get", "Watch", "Export"}) {
    if (absl::StartsWith(method, prefix)) return true;
  }
  return method == "Test" || method == "Stat";
}

TEST(ProtoStyleTest, EveryMutationCarriesRequestIdAndItsScope) {
  FileDescriptorSet set = LoadOrDie();
  int mutations = 0;
  for (const FileDescriptorProto& file : set.file()) {
    if (file.package() != kApiPackage) continue;
    for (const ServiceDescriptorProto& service : file.service()) {
      const bool gateway_scoped = service.name() != "AdminService";
      for (const auto& method : service.method()) {
        const DescriptorProto* request = FindMessage(set, method.input_type());
        ASSERT_NE(request, nullptr) << method.input_type();
        const std::string where = service.name() + "." + method.name();
        // A bidirectional session's envelope (LockService.Session) carries
        // the requests of the unary RPCs, which are checked as those RPCs.
        if (method.client_streaming() && method.server_streaming()) continue;
        if (gateway_scoped) {
          // Every gateway call names the gateway identity it concerns.
          EXPECT_NE(FindField(*request, "gateway_id"), nullptr) << where;
        }
        if (IsReadOnly(method.name())) {
          EXPECT_EQ(FindField(*request, "request_id"), nullptr) << where;
          continue;
        }
        ++mutations;
        const FieldDescriptorProto* id = FindField(*request, "request_id");
        ASSERT_NE(id, nullptr) << where << " is a mutation without request_id";
        EXPECT_EQ(id->number(), 1) << where;
        EXPECT_EQ(id->type(), FieldDescriptorProto::TYPE_STRING) << where;
        if (!gateway_scoped) {
          EXPECT_NE(FindField(*request, "reason"), nullptr)
              << where << " is an admin mutation without an audit reason";
        }
      }
    }
  }
  // Lock: Lock Cancel Unlock Share Unshare FreeAll AckGrant (7); Monitor:
  // Mon Unmon UnmonAll Notify SimuCrash AckNotification (6); Admin:
  // ForceRelease SimulateClientReboot ResetGateway EndGrace StepDown
  // DrainGateway ImportSnapshot (7).
  EXPECT_EQ(mutations, 20);
}

}  // namespace
}  // namespace lockwarden::proto_test
