// The "admin_audit" log lines of the mutating AdminService calls, to the
// byte (timestamp and the caller's ephemeral port aside), together with the
// replies: one line when a call completes (ok or not), one when it is refused
// before admission (authorisation, reason), one when an admitted request's
// own validation rejects it before it reaches the core (an operator's refused
// attempt belongs in the audit log), none for a validate_only ForceRelease
// that passes (a dry run changes nothing).
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/service/service_test_util.h"
#include "server/store/memory_store.h"

namespace lockwarden::service::testing {
namespace {

class AdminAuditTest : public ServiceTest {
 protected:
  void SetUp() override { StartServer(&store_); }

  // The audit lines `call` writes to stderr, without the timestamp and with
  // the caller's port as PORT.
  static std::vector<std::string> AuditLinesOf(
      const std::function<void()>& call) {
    ::testing::internal::CaptureStderr();
    call();
    const std::string err = ::testing::internal::GetCapturedStderr();
    static const std::regex kPort("caller=ipv4:127\\.0\\.0\\.1:[0-9]+");
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(err, '\n')) {
      if (line.find(" admin_audit ") == absl::string_view::npos) continue;
      const std::string rest(
          line.substr(line.find(' ') + 1));  // Drop the timestamp.
      lines.push_back(
          std::regex_replace(rest, kPort, "caller=ipv4:127.0.0.1:PORT"));
    }
    return lines;
  }

  void HoldALockOnGatewayA() {
    ASSERT_EQ(Lock(LockReq("alice", 1, "f1", 0, 10)), v1::LOCK_STATUS_GRANTED);
  }

  template <typename Request>
  Request WithReason(Request r, const std::string& reason = "audit test") {
    r.set_request_id(NextRequestId());
    r.set_reason(reason);
    return r;
  }

  store::MemoryStore store_;
};

TEST_F(AdminAuditTest, DrainGatewayAuditsItsOutcome) {
  HoldALockOnGatewayA();
  v1::DrainGatewayRequest r = WithReason(v1::DrainGatewayRequest());
  r.set_gateway_id("gw-a");
  r.set_drain(true);
  v1::DrainGatewayResponse resp;
  grpc::Status s;
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->DrainGateway(Ctx().get(), r, &resp); }),
      std::vector<std::string>{
          "INFO admin_audit call=DrainGateway caller=ipv4:127.0.0.1:PORT "
          "reason=\"audit test\" target=\"gateway gw-a drain\" outcome=ok"});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.draining());

  r = WithReason(r, "undrain nobody");
  r.set_gateway_id("gw-nobody");
  r.set_drain(false);
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->DrainGateway(Ctx().get(), r, &resp); }),
      std::vector<std::string>{
          "WARN admin_audit call=DrainGateway caller=ipv4:127.0.0.1:PORT "
          "reason=\"undrain nobody\" target=\"gateway gw-nobody undrain\" "
          "outcome=\"NOT_FOUND: gateway_id: unknown gateway identity "
          "'gw-nobody'\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(),
            "gateway_id: unknown gateway identity 'gw-nobody'");

  // An empty gateway_id is rejected after admission, before the core: the
  // refused attempt is audited too.
  r = WithReason(r);
  r.set_gateway_id("");
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->DrainGateway(Ctx().get(), r, &resp); }),
      std::vector<std::string>{
          "WARN admin_audit call=DrainGateway caller=ipv4:127.0.0.1:PORT "
          "reason=\"audit test\" target=\"gateway  undrain\" "
          "outcome=\"INVALID_ARGUMENT: gateway_id: 1..1024 bytes required\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "gateway_id: 1..1024 bytes required");
}

TEST_F(AdminAuditTest, ResetGatewayAndEndGraceAuditTheirOutcomes) {
  HoldALockOnGatewayA();
  v1::EndGraceRequest e = WithReason(v1::EndGraceRequest(), "end it");
  e.set_gateway_id("gw-a");
  v1::EndGraceResponse er;
  grpc::Status s;
  EXPECT_EQ(AuditLinesOf([&] { s = admin_->EndGrace(Ctx().get(), e, &er); }),
            std::vector<std::string>{
                "WARN admin_audit call=EndGrace caller=ipv4:127.0.0.1:PORT "
                "reason=\"end it\" "
                "target=\"gateway gw-a\" outcome=\"FAILED_PRECONDITION: "
                "gateway identity "
                "'gw-a' is not in a grace period\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "gateway identity 'gw-a' is not in a grace period");

  v1::ResetGatewayRequest r = WithReason(v1::ResetGatewayRequest(), "lost");
  r.set_gateway_id("gw-a");
  v1::ResetGatewayResponse rr;
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->ResetGateway(Ctx().get(), r, &rr); }),
      std::vector<std::string>{"INFO admin_audit call=ResetGateway "
                               "caller=ipv4:127.0.0.1:PORT reason=lost "
                               "target=\"gateway gw-a\" outcome=ok"});
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(rr.has_grace_ends_at());

  e = WithReason(e, "end it");
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->EndGrace(Ctx().get(), e, &er); }),
      std::vector<std::string>{"INFO admin_audit call=EndGrace "
                               "caller=ipv4:127.0.0.1:PORT reason=\"end it\" "
                               "target=\"gateway gw-a\" outcome=ok"});
  EXPECT_TRUE(s.ok()) << s.error_message();

  // An unknown identity: ResetGateway finds out before the core, EndGrace
  // from the core's reply; both are audited.
  r = WithReason(r, "lost");
  r.set_gateway_id("gw-nobody");
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->ResetGateway(Ctx().get(), r, &rr); }),
      std::vector<std::string>{"WARN admin_audit call=ResetGateway "
                               "caller=ipv4:127.0.0.1:PORT reason=lost "
                               "target=\"gateway gw-nobody\" "
                               "outcome=\"NOT_FOUND: gateway_id: unknown "
                               "gateway identity 'gw-nobody'\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  e = WithReason(e, "end it");
  e.set_gateway_id("gw-nobody");
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->EndGrace(Ctx().get(), e, &er); }),
      std::vector<std::string>{"WARN admin_audit call=EndGrace "
                               "caller=ipv4:127.0.0.1:PORT reason=\"end it\" "
                               "target=\"gateway gw-nobody\" "
                               "outcome=\"NOT_FOUND: gateway_id: unknown "
                               "gateway identity 'gw-nobody'\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(AdminAuditTest, ForceReleaseAuditsOnlyWhatItApplies) {
  HoldALockOnGatewayA();
  v1::ForceReleaseRequest r =
      WithReason(v1::ForceReleaseRequest(), "hung client");
  r.set_client_name("alice");
  r.set_validate_only(true);
  v1::ForceReleaseResponse resp;
  grpc::Status s;
  EXPECT_TRUE(AuditLinesOf([&] {
                s = admin_->ForceRelease(Ctx().get(), r, &resp);
              }).empty());
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.released_locks(), 1u);
  EXPECT_EQ(ListLocks().locks_size(), 1);

  r = WithReason(r, "hung client");
  r.set_validate_only(false);
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->ForceRelease(Ctx().get(), r, &resp); }),
      std::vector<std::string>{
          "INFO admin_audit call=ForceRelease caller=ipv4:127.0.0.1:PORT "
          "reason=\"hung client\" target=\"client alice\" outcome=ok"});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.released_locks(), 1u);
  EXPECT_EQ(ListLocks().locks_size(), 0);

  // No reason: refused before admission, and audited as such.
  r = WithReason(r, "");
  EXPECT_EQ(
      AuditLinesOf([&] { s = admin_->ForceRelease(Ctx().get(), r, &resp); }),
      std::vector<std::string>{
          "WARN admin_audit call=ForceRelease caller=ipv4:127.0.0.1:PORT "
          "reason=\"\" "
          "target=\"client alice\" outcome=\"INVALID_ARGUMENT: reason: "
          "required (it "
          "goes to the audit log)\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "reason: required (it goes to the audit log)");
}

TEST_F(AdminAuditTest, SimulateClientRebootAndStepDownAuditTheirOutcomes) {
  HoldALockOnGatewayA();
  v1::SimulateClientRebootRequest r =
      WithReason(v1::SimulateClientRebootRequest(), "drill");
  r.set_client_name("alice");
  v1::SimulateClientRebootResponse resp;
  grpc::Status s;
  EXPECT_EQ(AuditLinesOf([&] {
              s = admin_->SimulateClientReboot(Ctx().get(), r, &resp);
            }),
            std::vector<std::string>{
                "INFO admin_audit call=SimulateClientReboot "
                "caller=ipv4:127.0.0.1:PORT "
                "reason=drill target=\"client alice\" outcome=ok"});
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.released_locks(), 1u);

  v1::StepDownRequest d = WithReason(v1::StepDownRequest(), "upgrade");
  v1::StepDownResponse dr;
  EXPECT_EQ(AuditLinesOf([&] { s = admin_->StepDown(Ctx().get(), d, &dr); }),
            std::vector<std::string>{
                "WARN admin_audit call=StepDown caller=ipv4:127.0.0.1:PORT "
                "reason=upgrade "
                "target=leadership outcome=\"FAILED_PRECONDITION: no standby "
                "to take over: "
                "this server runs without leader election (single node); stop "
                "it instead\""});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(AdminAuditTest, UnauthenticatedMutationIsAuditedAsRefused) {
  StopServer();
  LockServerOptions options;
  options.admin_auth.bearer_token = "s3cret-token";
  StartServer(&store_, options);
  v1::EndGraceRequest e = WithReason(v1::EndGraceRequest());
  e.set_gateway_id("gw-a");
  v1::EndGraceResponse er;
  grpc::Status s;
  const std::vector<std::string> lines =
      AuditLinesOf([&] { s = admin_->EndGrace(Ctx().get(), e, &er); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "WARN admin_audit call=EndGrace caller=ipv4:127.0.0.1:PORT "
            "reason=\"audit test\" "
            "target=\"gateway gw-a\" outcome=\"UNAUTHENTICATED: " +
                s.error_message() + "\"");
}

}  // namespace
}  // namespace lockwarden::service::testing
