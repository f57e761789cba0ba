// Round-trips every message type of the lockwarden.v1 API through the binary
// wire format with every field set to a non-default value (filled through
// reflection, so new messages and fields are covered without editing this
// test), and pins the grpc.health.v1 names and wire format that Kubernetes
// probes and grpc++'s built-in health service depend on.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"
#include "proto/test_descriptor_set.h"

namespace lockwarden::proto_test {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Nesting depth beyond which message fields are left unset, so a recursive
// message type cannot make the filler recurse forever. The API has no
// recursive types and is at most four levels deep.
constexpr int kFillDepthMax = 8;

// Bytes that are not valid UTF-8 (a lone continuation byte, 0xff, a NUL):
// `bytes` fields must carry them unchanged.
const std::string& NonUtf8Bytes() {
  static const std::string* bytes = new std::string("\x80\xff\x00\xfe\xc3", 5);
  return *bytes;
}

// Fills every field of a message with a non-default value. For each real
// oneof the member with index `oneof_choice` (if the oneof has that many
// members, else the first one) is set in the top-level message; nested
// messages always get their first member (they are round-tripped as
// top-level messages of their own too).
class MessageFiller {
 public:
  void Fill(Message* message, int oneof_choice) {
    FillAt(message, oneof_choice, /*depth=*/0);
  }

 private:
  void FillAt(Message* message, int oneof_choice, int depth) {
    const Descriptor* descriptor = message->GetDescriptor();
    for (int i = 0; i < descriptor->field_count(); ++i) {
      const FieldDescriptor* field = descriptor->field(i);
      const OneofDescriptor* oneof = field->real_containing_oneof();
      if (oneof != nullptr) {
        int choice = oneof_choice < oneof->field_count() ? oneof_choice : 0;
        if (oneof->field(choice) != field) continue;
      }
      if (field->is_repeated()) {
        for (int n = 0; n < 2; ++n) AddValue(message, field, depth, n);
      } else {
        SetValue(message, field, depth);
      }
    }
  }

  // A value that differs per field, element and depth and is never the
  // default; large enough to need multi-byte varints.
  static int64_t Number(const FieldDescriptor* field, int depth, int n) {
    return 1000003LL * (field->number() + 1) + 101 * depth + 7 * n + 1;
  }

  static const google::protobuf::EnumValueDescriptor* NonZeroEnumValue(
      const FieldDescriptor* field, int n) {
    const google::protobuf::EnumDescriptor* type = field->enum_type();
    for (int i = type->value_count() - 1 - n; i >= 0; --i) {
      if (type->value(i)->number() != 0) return type->value(i);
    }
    return type->value(type->value_count() - 1);
  }

  std::string StringValue(const FieldDescriptor* field, int depth,
                          int n) const {
    if (field->type() == FieldDescriptor::TYPE_BYTES) {
      return absl::StrCat(NonUtf8Bytes(), field->name(), depth, n);
    }
    return absl::StrCat("\xc3\xa9t\xc3\xa9-", field->name(), "-", depth, "-",
                        n);  // "été-<field>-...": multi-byte UTF-8.
  }

  void SetValue(Message* message, const FieldDescriptor* field, int depth) {
    const Reflection* r = message->GetReflection();
    const int64_t v = Number(field, depth, 0);
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(message, field, -static_cast<int32_t>(v % 2000000000));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(message, field, -v * 1000000007LL);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(message, field, static_cast<uint32_t>(v) | 0x80000000u);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(message, field, static_cast<uint64_t>(v) | (1ULL << 63));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(message, field, 0.25 + static_cast<double>(v));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(message, field, 0.5f + static_cast<float>(v % 1000));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(message, field, true);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnum(message, field, NonZeroEnumValue(field, 0));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(message, field, StringValue(field, depth, 0));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < kFillDepthMax) {
          FillAt(r->MutableMessage(message, field), 0, depth + 1);
        }
        break;
    }
  }

  void AddValue(Message* message, const FieldDescriptor* field, int depth,
                int n) {
    const Reflection* r = message->GetReflection();
    const int64_t v = Number(field, depth, n);
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(message, field, -static_cast<int32_t>(v % 2000000000));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(message, field, -v * 1000000007LL);
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->AddUInt32(message, field, static_cast<uint32_t>(v) | 0x80000000u);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->AddUInt64(message, field, static_cast<uint64_t>(v) | (1ULL << 63));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->AddDouble(message, field, 0.25 + static_cast<double>(v));
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->AddFloat(message, field, 0.5f + static_cast<float>(v % 1000));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->AddBool(message, field, n % 2 == 0);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->AddEnum(message, field, NonZeroEnumValue(field, n));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(message, field, StringValue(field, depth, n));
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < kFillDepthMax) {
          FillAt(r->AddMessage(message, field), 0, depth + 1);
        }
        break;
    }
  }
};

// All message types declared in `file`, nested ones included.
std::vector<const Descriptor*> MessageTypes(const FileDescriptor* file) {
  std::vector<const Descriptor*> out;
  std::vector<const Descriptor*> todo;
  for (int i = 0; i < file->message_type_count(); ++i) {
    todo.push_back(file->message_type(i));
  }
  while (!todo.empty()) {
    const Descriptor* d = todo.back();
    todo.pop_back();
    out.push_back(d);
    for (int i = 0; i < d->nested_type_count(); ++i) {
      todo.push_back(d->nested_type(i));
    }
  }
  return out;
}

// Number of variants needed so that every member of every real oneof is set
// once: the size of the largest oneof (at least 1).
int OneofVariantCount(const Descriptor* d) {
  int count = 1;
  for (int i = 0; i < d->oneof_decl_count(); ++i) {
    const OneofDescriptor* oneof = d->oneof_decl(i);
    if (oneof->is_synthetic()) continue;  // proto3 `optional`, not a oneof.
    count = std::max(count, oneof->field_count());
  }
  return count;
}

// The API's files as the generated (linked-in) pool knows them. The list of
// names comes from the descriptor set protoc wrote for all .proto sources of
// the package, so a file missing from the C++ library is caught here.
std::vector<const FileDescriptor*> ApiFiles() {
  // Touch one type per file so a static link keeps every generated file.
  (void)lockwarden::v1::LockOwner::descriptor();
  (void)lockwarden::v1::LockRequest::descriptor();
  (void)lockwarden::v1::MonRequest::descriptor();
  (void)lockwarden::v1::Lock::descriptor();
  (void)lockwarden::v1::SnapshotChunk::descriptor();
  (void)lockwarden::v1::ListLocksRequest::descriptor();

  auto set = LoadApiDescriptorSet();
  EXPECT_TRUE(set.ok()) << set.status();
  std::vector<const FileDescriptor*> files;
  if (!set.ok()) return files;
  for (const std::string& name : FileNamesInPackage(*set, kApiPackage)) {
    const FileDescriptor* file =
        DescriptorPool::generated_pool()->FindFileByName(name);
    EXPECT_NE(file, nullptr) << name << " is not in the generated pool";
    if (file != nullptr) files.push_back(file);
  }
  return files;
}

TEST(ProtoRoundtripTest, ApiFilesAreAllLinked) {
  std::vector<const FileDescriptor*> files = ApiFiles();
  // The six files of lockwarden.v1; a new file must be added to BUILD.bazel.
  EXPECT_EQ(files.size(), 6u);
}

// Checks that `message` has exactly the fields the filler was asked to set:
// every field outside a oneof, and the chosen member of each oneof.
void ExpectFullySet(const Message& message, int oneof_choice) {
  const Descriptor* d = message.GetDescriptor();
  const Reflection* r = message.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* field = d->field(i);
    const bool set = field->is_repeated() ? r->FieldSize(message, field) == 2
                                          : r->HasField(message, field);
    const OneofDescriptor* oneof = field->real_containing_oneof();
    bool want = true;
    if (oneof != nullptr) {
      int choice = oneof_choice < oneof->field_count() ? oneof_choice : 0;
      want = oneof->field(choice) == field;
    }
    EXPECT_EQ(set, want) << field->full_name() << " in variant "
                         << oneof_choice;
  }
}

TEST(ProtoRoundtripTest, EveryMessageSurvivesTheWireWithEveryFieldSet) {
  int messages = 0;
  int variants = 0;
  for (const FileDescriptor* file : ApiFiles()) {
    for (const Descriptor* d : MessageTypes(file)) {
      ++messages;
      const Message* prototype =
          MessageFactory::generated_factory()->GetPrototype(d);
      ASSERT_NE(prototype, nullptr) << d->full_name();
      for (int choice = 0; choice < OneofVariantCount(d); ++choice) {
        ++variants;
        std::unique_ptr<Message> original(prototype->New());
        MessageFiller().Fill(original.get(), choice);
        ExpectFullySet(*original, choice);

        std::string wire;
        ASSERT_TRUE(original->SerializeToString(&wire)) << d->full_name();
        if (d->field_count() > 0) {
          EXPECT_FALSE(wire.empty()) << d->full_name();
        }

        std::unique_ptr<Message> parsed(prototype->New());
        ASSERT_TRUE(parsed->ParseFromString(wire)) << d->full_name();
        std::string diff;
        google::protobuf::util::MessageDifferencer differencer;
        differencer.ReportDifferencesToString(&diff);
        EXPECT_TRUE(differencer.Compare(*original, *parsed))
            << d->full_name() << " variant " << choice << ":\n" << diff;
        // Parsing must not have dropped anything into unknown fields.
        EXPECT_EQ(parsed->SerializeAsString(), wire) << d->full_name();
      }
    }
  }
  // Guards against the loop silently covering nothing.
  EXPECT_GT(messages, 100);
  EXPECT_GT(variants, messages);
}

TEST(ProtoRoundtripTest, NonUtf8BytesSurviveInOpaqueFields) {
  lockwarden::v1::LockRequest request;
  request.set_file_handle(NonUtf8Bytes());
  request.mutable_owner()->set_oh(NonUtf8Bytes());
  request.set_cookie(NonUtf8Bytes());
  lockwarden::v1::LockRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(request.SerializeAsString()));
  EXPECT_EQ(parsed.file_handle(), NonUtf8Bytes());
  EXPECT_EQ(parsed.owner().oh(), NonUtf8Bytes());
  EXPECT_EQ(parsed.cookie(), NonUtf8Bytes());
}

TEST(ProtoRoundtripTest, LockStatusIsNlm4StatsPlusOne) {
  // The gateway maps LockStatus to nlm4_stats by subtracting one.
  using lockwarden::v1::LockStatus;
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_GRANTED - 1, 0);       // nlm4_granted
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_DENIED - 1, 1);        // nlm4_denied
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_NO_LOCKS - 1, 2);      // denied_nolocks
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_BLOCKED - 1, 3);       // nlm4_blocked
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_GRACE_PERIOD - 1, 4);  // denied_grace
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_DEADLOCK - 1, 5);      // nlm4_deadlck
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_READ_ONLY_FS - 1, 6);  // nlm4_rofs
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_STALE_FH - 1, 7);      // nlm4_stale_fh
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_FBIG - 1, 8);          // nlm4_fbig
  EXPECT_EQ(lockwarden::v1::LOCK_STATUS_FAILED - 1, 9);        // nlm4_failed
  EXPECT_EQ(lockwarden::v1::LockStatus_descriptor()->value_count(), 11);
}

TEST(HealthProtoTest, ServiceAndMethodNamesMatchUpstream) {
  EXPECT_STREQ(grpc::health::v1::Health::service_full_name(),
               "grpc.health.v1.Health");
  const google::protobuf::ServiceDescriptor* service =
      DescriptorPool::generated_pool()->FindServiceByName(
          "grpc.health.v1.Health");
  ASSERT_NE(service, nullptr);
  ASSERT_EQ(service->method_count(), 2);
  std::set<std::string> paths;
  for (int i = 0; i < service->method_count(); ++i) {
    paths.insert(
        absl::StrCat("/", service->full_name(), "/", service->method(i)->name()));
  }
  EXPECT_EQ(paths, (std::set<std::string>{"/grpc.health.v1.Health/Check",
                                          "/grpc.health.v1.Health/Watch"}));
  const google::protobuf::MethodDescriptor* check =
      service->FindMethodByName("Check");
  const google::protobuf::MethodDescriptor* watch =
      service->FindMethodByName("Watch");
  ASSERT_NE(check, nullptr);
  ASSERT_NE(watch, nullptr);
  EXPECT_FALSE(check->client_streaming());
  EXPECT_FALSE(check->server_streaming());
  EXPECT_FALSE(watch->client_streaming());
  EXPECT_TRUE(watch->server_streaming());
  EXPECT_EQ(check->input_type()->full_name(),
            "grpc.health.v1.HealthCheckRequest");
  EXPECT_EQ(check->output_type()->full_name(),
            "grpc.health.v1.HealthCheckResponse");
  EXPECT_EQ(watch->input_type(), check->input_type());
  EXPECT_EQ(watch->output_type(), check->output_type());
}

TEST(HealthProtoTest, WireFormatMatchesUpstream) {
  // Upstream: HealthCheckRequest.service = 1 (string),
  // HealthCheckResponse.status = 1 (enum UNKNOWN 0, SERVING 1,
  // NOT_SERVING 2, SERVICE_UNKNOWN 3).
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("x");
  EXPECT_EQ(request.SerializeAsString(), std::string("\x0a\x01x", 3));
  grpc::health::v1::HealthCheckResponse response;
  response.set_status(grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(response.SerializeAsString(), std::string("\x08\x02", 2));
  EXPECT_EQ(grpc::health::v1::HealthCheckResponse::UNKNOWN, 0);
  EXPECT_EQ(grpc::health::v1::HealthCheckResponse::SERVING, 1);
  EXPECT_EQ(grpc::health::v1::HealthCheckResponse::NOT_SERVING, 2);
  EXPECT_EQ(grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN, 3);
}

}  // namespace
}  // namespace lockwarden::proto_test
