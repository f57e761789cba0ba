// Test fixture for the gRPC services: a LockServer on a loopback port over a
// store the test keeps (so it can restart the server on the same state or
// inject faults), with stubs for every service and small request builders.
#ifndef LOCKWARDEN_SERVER_SERVICE_SERVICE_TEST_UTIL_H_
#define LOCKWARDEN_SERVER_SERVICE_SERVICE_TEST_UTIL_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"
#include "server/service/lock_server.h"
#include "server/store/borrowed_store.h"
#include "server/store/state_store.h"

namespace lockwarden::service::testing {

using store::BorrowedStore;

class ServiceTest : public ::testing::Test {
 protected:
  // Starts (or restarts) the server on `store`.
  void StartServer(store::StateStore* store, LockServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    if (options.core.grant_timeout_ms == 60000) options.core.grant_timeout_ms = 2000;
    if (options.core.grace_period_ms == 90000) options.core.grace_period_ms = 3000;
    auto server = LockServer::Start(options, std::make_unique<BorrowedStore>(store), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    lock_ = v1::LockService::NewStub(channel);
    monitor_ = v1::MonitorService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
  }

  void StopServer() {
    lock_.reset();
    monitor_.reset();
    admin_.reset();
    server_.reset();
  }

  void TearDown() override { StopServer(); }

  static std::unique_ptr<grpc::ClientContext> Ctx(int timeout_ms = 5000) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(timeout_ms));
    return ctx;
  }

  std::string NextRequestId() { return absl::StrCat("req-", ++request_seq_); }

  v1::LockRequest LockReq(const std::string& client, uint32_t svid,
                          const std::string& fh, uint64_t offset, uint64_t length,
                          bool exclusive = true, bool block = false) {
    v1::LockRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_file_handle(fh);
    r.mutable_owner()->set_client_name(client);
    r.mutable_owner()->set_svid(svid);
    r.mutable_owner()->set_oh(absl::StrCat("oh-", client, "-", svid));
    r.mutable_range()->set_offset(offset);
    r.mutable_range()->set_length(length);
    r.set_exclusive(exclusive);
    r.set_block(block);
    r.set_client_state(1);
    r.set_monitored(true);
    r.mutable_callback()->set_client_address("198.18.0.9");
    r.mutable_callback()->set_nlm_version(4);
    r.set_cookie("cookie");
    return r;
  }

  v1::LockStatus Lock(const v1::LockRequest& r, v1::LockResponse* out = nullptr) {
    v1::LockResponse resp;
    grpc::Status s = lock_->Lock(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (out != nullptr) *out = resp;
    return resp.status();
  }

  v1::LockStatus Unlock(const std::string& client, uint32_t svid, const std::string& fh,
                        uint64_t offset, uint64_t length) {
    v1::LockRequest l = LockReq(client, svid, fh, offset, length);
    v1::UnlockRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_file_handle(fh);
    *r.mutable_owner() = l.owner();
    *r.mutable_range() = l.range();
    v1::UnlockResponse resp;
    grpc::Status s = lock_->Unlock(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  }

  // SM_MON on gw-a for `mon_name`, registering lockd's callback (100021 v4
  // proc 16) at `my_name` with a 16-byte priv.
  v1::MonResponse Mon(const std::string& mon_name, const std::string& my_name = "localhost") {
    v1::MonRequest r;
    r.set_request_id(NextRequestId());
    r.set_gateway_id("gw-a");
    r.set_mon_name(mon_name);
    r.mutable_my_id()->set_my_name(my_name);
    r.mutable_my_id()->set_my_prog(100021);
    r.mutable_my_id()->set_my_vers(4);
    r.mutable_my_id()->set_my_proc(16);
    r.set_priv(std::string(16, '\x07'));
    v1::MonResponse resp;
    grpc::Status s = monitor_->Mon(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  v1::ListLocksResponse ListLocks(const std::string& fh = "") {
    v1::ListLocksRequest r;
    r.mutable_filter()->set_file_handle(fh);
    r.set_page_size(1000);
    v1::ListLocksResponse resp;
    grpc::Status s = admin_->ListLocks(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // The server's grpc.health.v1 status for `service`.
  grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
      const std::string& service) {
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                            grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest r;
    r.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(Ctx().get(), r, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  }

  FakeClock clock_;
  std::unique_ptr<LockServer> server_;
  std::unique_ptr<v1::LockService::Stub> lock_;
  std::unique_ptr<v1::MonitorService::Stub> monitor_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::atomic<int> request_seq_{0};
};

}  // namespace lockwarden::service::testing

#endif  // LOCKWARDEN_SERVER_SERVICE_SERVICE_TEST_UTIL_H_
