#include "cli/connection.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

// A LockService whose Unlock answers with a programmed status (and optional
// leader metadata), counting calls and remembering request ids.
class ScriptedLockService final : public v1::LockService::Service {
 public:
  ScriptedLockService(grpc::Status answer, std::string leader,
                      absl::Duration delay = absl::ZeroDuration())
      : answer_(std::move(answer)), leader_(std::move(leader)), delay_(delay) {}

  grpc::Status Unlock(grpc::ServerContext* context,
                      const v1::UnlockRequest* request,
                      v1::UnlockResponse* response) override {
    {
      absl::MutexLock lock(&mutex_);
      request_ids_.push_back(request->request_id());
    }
    if (delay_ > absl::ZeroDuration()) absl::SleepFor(delay_);
    if (!leader_.empty()) {
      context->AddTrailingMetadata(kLeaderAddressMetadataKey, leader_);
    }
    if (answer_.ok()) response->set_status(v1::LOCK_STATUS_GRANTED);
    return answer_;
  }

  std::vector<std::string> request_ids() const {
    absl::MutexLock lock(&mutex_);
    return request_ids_;
  }

 private:
  const grpc::Status answer_;
  const std::string leader_;
  const absl::Duration delay_;
  mutable absl::Mutex mutex_;
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mutex_);
};

// One scripted server on 127.0.0.1:<ephemeral>.
struct ScriptedServer {
  ScriptedServer(grpc::Status answer, std::string leader,
                 absl::Duration delay = absl::ZeroDuration())
      : service(std::move(answer), std::move(leader), delay) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
  }
  ~ScriptedServer() {
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }

  ScriptedLockService service;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

const grpc::Status kNotLeader(grpc::StatusCode::FAILED_PRECONDITION,
                              "not the leader; leader is elsewhere");

std::unique_ptr<Connection> Connect(std::vector<std::string> addresses,
                                    absl::Duration timeout = absl::Seconds(5)) {
  ConnectionOptions options;
  options.addresses = std::move(addresses);
  options.rpc_timeout = timeout;
  absl::StatusOr<std::unique_ptr<Connection>> connection =
      Connection::Create(std::move(options));
  EXPECT_TRUE(connection.ok()) << connection.status();
  return *std::move(connection);
}

absl::Status Unlock(Connection& connection, const std::string& request_id,
                    CallOptions options = CallOptions()) {
  v1::UnlockRequest request;
  request.set_request_id(request_id);
  v1::UnlockResponse response;
  return connection.Call(
      "Unlock",
      [&](grpc::ClientContext* context,
          const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Unlock(context, request,
                                                         &response);
      },
      options);
}

std::string DeadAddress() {
  // Port 1 on loopback: nothing listens there (not root-only to connect).
  return "127.0.0.1:1";
}

TEST(ConnectionTest, StandbyRedirectIsFollowedWithTheSameRequestId) {
  ScriptedServer leader(grpc::Status::OK, "");
  ScriptedServer standby(kNotLeader, leader.address());
  std::unique_ptr<Connection> connection = Connect({standby.address()});
  ASSERT_TRUE(Unlock(*connection, "id-1").ok());
  EXPECT_EQ(connection->answered_address(), leader.address());
  EXPECT_EQ(standby.service.request_ids(), std::vector<std::string>{"id-1"});
  EXPECT_EQ(leader.service.request_ids(), std::vector<std::string>{"id-1"});
}

TEST(ConnectionTest, UnavailableWithALeaderAddressIsRedirectedToo) {
  ScriptedServer leader(grpc::Status::OK, "");
  ScriptedServer recovering(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "taking over"),
      leader.address());
  std::unique_ptr<Connection> connection = Connect({recovering.address()});
  ASSERT_TRUE(Unlock(*connection, "id-2").ok());
  EXPECT_EQ(leader.service.request_ids().size(), 1u);
}

TEST(ConnectionTest, TheAnswerAfterOneRedirectIsFinal) {
  ScriptedServer second_standby(kNotLeader, "127.0.0.1:2");
  ScriptedServer standby(kNotLeader, second_standby.address());
  std::unique_ptr<Connection> connection = Connect({standby.address()});
  absl::Status status = Unlock(*connection, "id-3");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(status.message(), second_standby.address()))
      << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "FAILED_PRECONDITION"));
}

TEST(ConnectionTest, NotLeaderWithoutAddressAndUnreachableMoveToTheNext) {
  ScriptedServer leader(grpc::Status::OK, "");
  ScriptedServer standby(kNotLeader, "");
  std::unique_ptr<Connection> connection =
      Connect({DeadAddress(), standby.address(), leader.address()});
  ASSERT_TRUE(Unlock(*connection, "id-4").ok());
  EXPECT_EQ(connection->answered_address(), leader.address());
  // The next call starts at the server that answered.
  ASSERT_TRUE(Unlock(*connection, "id-5").ok());
  EXPECT_EQ(standby.service.request_ids(), std::vector<std::string>{"id-4"});
}

TEST(ConnectionTest, OtherErrorsAreFinalAndNameServerRpcAndCode) {
  ScriptedServer refusing(
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "store not empty"),
      "");
  ScriptedServer never_asked(grpc::Status::OK, "");
  std::unique_ptr<Connection> connection =
      Connect({refusing.address(), never_asked.address()});
  absl::Status status = Unlock(*connection, "id-6");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            absl::StrCat("server ", refusing.address(),
                         ": Unlock: FAILED_PRECONDITION: store not empty"));
  EXPECT_TRUE(never_asked.service.request_ids().empty());
}

TEST(ConnectionTest, UnimplementedSaysSoPlainly) {
  ScriptedServer server(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), "");
  std::unique_ptr<Connection> connection = Connect({server.address()});
  absl::Status status = Unlock(*connection, "id-7");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(status.message(),
            absl::StrCat("server ", server.address(),
                         " does not implement Unlock yet (UNIMPLEMENTED)"));
}

TEST(ConnectionTest, DeadlineMovesOnOnlyWhenAllowed) {
  ScriptedServer slow(grpc::Status::OK, "", absl::Seconds(2));
  ScriptedServer fast(grpc::Status::OK, "");
  std::unique_ptr<Connection> connection =
      Connect({slow.address(), fast.address()}, absl::Milliseconds(300));
  CallOptions final_deadline;
  final_deadline.next_address_on_deadline = false;
  absl::Status status = Unlock(*connection, "id-8", final_deadline);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(fast.service.request_ids().empty());
  ASSERT_TRUE(Unlock(*connection, "id-9").ok());
  EXPECT_EQ(fast.service.request_ids(), std::vector<std::string>{"id-9"});
}

TEST(ConnectionTest, AllAddressesDownReportsTheLastOne) {
  std::unique_ptr<Connection> connection =
      Connect({"127.0.0.1:1", "127.0.0.1:2"});
  absl::Status status = Unlock(*connection, "id-10");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(status.message(), "server 127.0.0.1:2: Unlock"))
      << status;
}

TEST(ConnectionTest, CreateRejectsHalfAClientCertificate) {
  ConnectionOptions options;
  options.addresses = {"127.0.0.1:1"};
  options.tls_key_file = "/dev/null";
  EXPECT_EQ(Connection::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.addresses.clear();
  options.tls_key_file.clear();
  EXPECT_EQ(Connection::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lockwarden::cli
