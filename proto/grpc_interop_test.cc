// Exercises the generated gRPC stubs end to end through an in-process
// channel: our grpc.health.v1 client stub against grpc++'s built-in health
// service (the combination the server and lockwardenctl use), and a minimal
// LockService to show the generated method paths, unary and streaming
// calls, and status propagation work as documented.
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::proto_test {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// A LockService that grants every request whose file handle is non-empty,
// and streams one grant event per WatchGrants call.
class FakeLockService final : public lockwarden::v1::LockService::Service {
 public:
  grpc::Status Lock(grpc::ServerContext*,
                    const lockwarden::v1::LockRequest* request,
                    lockwarden::v1::LockResponse* response) override {
    if (request->file_handle().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "file_handle: empty");
    }
    response->set_status(lockwarden::v1::LOCK_STATUS_GRANTED);
    response->set_fencing_token(42);
    return grpc::Status::OK;
  }

  grpc::Status WatchGrants(
      grpc::ServerContext*, const lockwarden::v1::WatchGrantsRequest* request,
      grpc::ServerWriter<lockwarden::v1::WatchGrantsResponse>* writer)
      override {
    lockwarden::v1::WatchGrantsResponse message;
    lockwarden::v1::GrantEvent* event = message.add_events();
    event->set_sequence(request->after_sequence() + 1);
    event->set_gateway_id(request->gateway_id());
    writer->Write(message);
    return grpc::Status::OK;
  }
};

class GrpcInteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.RegisterService(&lock_service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  FakeLockService lock_service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(GrpcInteropTest, HealthStubTalksToBuiltInHealthService) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  ASSERT_NE(health, nullptr);
  health->SetServingStatus("lockwarden.v1.LockService", false);
  std::unique_ptr<Health::Stub> stub = Health::NewStub(channel_);

  HealthCheckRequest request;
  HealthCheckResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext context;
    request.set_service("lockwarden.v1.LockService");
    ASSERT_TRUE(stub->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  }
  {
    grpc::ClientContext context;
    request.set_service("no.such.Service");
    EXPECT_EQ(stub->Check(&context, request, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(GrpcInteropTest, HealthWatchStreamsStatusChanges) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  ASSERT_NE(health, nullptr);
  health->SetServingStatus("lockwarden.v1.LockService", false);
  std::unique_ptr<Health::Stub> stub = Health::NewStub(channel_);

  grpc::ClientContext context;
  HealthCheckRequest request;
  request.set_service("lockwarden.v1.LockService");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> reader =
      stub->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health->SetServingStatus("lockwarden.v1.LockService", true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(GrpcInteropTest, LockServiceUnaryCallCarriesStatusAndToken) {
  std::unique_ptr<lockwarden::v1::LockService::Stub> stub =
      lockwarden::v1::LockService::NewStub(channel_);
  lockwarden::v1::LockRequest request;
  request.set_request_id("r1");
  request.set_gateway_id("nfs.example");
  request.set_file_handle(std::string("\x01\x02", 2));
  lockwarden::v1::LockResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Lock(&context, request, &response).ok());
  EXPECT_EQ(response.status(), lockwarden::v1::LOCK_STATUS_GRANTED);
  EXPECT_EQ(response.fencing_token(), 42u);

  grpc::ClientContext bad_context;
  request.clear_file_handle();
  grpc::Status status = stub->Lock(&bad_context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "file_handle: empty");
}

TEST_F(GrpcInteropTest, UnimplementedRpcAnswersUnimplemented) {
  std::unique_ptr<lockwarden::v1::LockService::Stub> stub =
      lockwarden::v1::LockService::NewStub(channel_);
  lockwarden::v1::TestRequest request;
  lockwarden::v1::TestResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->Test(&context, request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(GrpcInteropTest, WatchGrantsStreamsEvents) {
  std::unique_ptr<lockwarden::v1::LockService::Stub> stub =
      lockwarden::v1::LockService::NewStub(channel_);
  lockwarden::v1::WatchGrantsRequest request;
  request.set_gateway_id("nfs.example");
  request.set_after_sequence(7);
  grpc::ClientContext context;
  auto reader = stub->WatchGrants(&context, request);
  lockwarden::v1::WatchGrantsResponse message;
  ASSERT_TRUE(reader->Read(&message));
  ASSERT_EQ(message.events_size(), 1);
  EXPECT_EQ(message.events(0).sequence(), 8u);
  EXPECT_EQ(message.events(0).gateway_id(), "nfs.example");
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_TRUE(reader->Finish().ok());
}

}  // namespace
}  // namespace lockwarden::proto_test
