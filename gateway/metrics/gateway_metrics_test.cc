#include "gateway/metrics/gateway_metrics.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/metrics/reply_classifier.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/duplicate_request_cache.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::metrics {
namespace {

// The value of the sample `name{labels...}` in a text exposition, where
// every "k=\"v\"" in `labels` must appear; nullopt if no such line.
std::optional<double> Sample(const std::string& text, const std::string& name,
                             const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(name, "{")) &&
        !absl::StartsWith(line, absl::StrCat(name, " "))) {
      continue;
    }
    bool all = true;
    for (const std::string& l : labels) {
      if (line.find(l) == absl::string_view::npos) all = false;
    }
    if (!all) continue;
    const size_t space = line.rfind(' ');
    return std::stod(std::string(line.substr(space + 1)));
  }
  return std::nullopt;
}

std::string TestCall(uint32_t xid, int32_t svid) {
  nlm4_testargs args{};
  static char caller[] = "client.example";
  static char fh[] = "fh";
  static char oh[] = "oh";
  args.alock.caller_name = caller;
  args.alock.fh = {2, fh};
  args.alock.oh = {2, oh};
  args.alock.svid = svid;
  args.alock.l_len = 10;
  absl::StatusOr<std::string> m =
      EncodeCall(xid, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_TEST},
                 CallCredentials::None(), XdrProc(xdr_nlm4_testargs), &args);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

class GatewayMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = GatewayMetrics::Start("");
    ASSERT_TRUE(m.ok()) << m.status();
    metrics_ = *std::move(m);
    dispatcher_ = std::make_unique<Dispatcher>(
        DispatcherOptions{&drc_, nullptr, metrics_.get()});
    // svid 1: GRANTED; svid 2: DENIED_NOLOCKS; svid 3: dropped unanswered.
    ASSERT_TRUE(
        dispatcher_
            ->RegisterProcedure(
                NLM_PROG, NLM4_VERS, NLMPROC4_TEST,
                MakeProcedure("NLM4_TEST", xdr_nlm4_testargs, xdr_nlm4_testres,
                              [](std::unique_ptr<RpcCall> call) {
                                const int32_t svid =
                                    call->args<nlm4_testargs>()->alock.svid;
                                if (svid == 3) return;  // dropped
                                nlm4_testres res{};
                                res.stat.stat = svid == 2 ? NLM4_DENIED_NOLOCKS
                                                          : NLM4_GRANTED;
                                ASSERT_TRUE(call->Reply(&res).ok());
                              }))
            .ok());
  }

  void Dispatch(const std::string& message,
                TransportKind transport = TransportKind::kUdp) {
    CallContext ctx;
    ctx.transport = transport;
    ctx.peer_address = "192.0.2.1";
    dispatcher_->Dispatch(ctx, message, [](std::optional<std::string>) {});
  }

  DuplicateRequestCache drc_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(GatewayMetricsTest, CountsCallsByOutcomeAndTimesThem) {
  Dispatch(TestCall(1, 1));
  Dispatch(TestCall(2, 1), TransportKind::kTcp);
  Dispatch(TestCall(3, 2));
  Dispatch(TestCall(4, 3));
  const std::string text = metrics_->Serialize();
  const std::string requests = "lockwarden_gateway_rpc_requests_total";
  const std::vector<std::string> test4 = {"program=\"nlm\"", "version=\"4\"",
                                          "procedure=\"NLM4_TEST\""};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), test4.begin(), test4.end());
    return more;
  };
  EXPECT_EQ(Sample(text, requests,
                   with({"transport=\"udp\"", "outcome=\"success\""})),
            2.0);
  EXPECT_EQ(Sample(text, requests,
                   with({"transport=\"tcp\"", "outcome=\"success\""})),
            1.0);
  EXPECT_EQ(Sample(text, requests,
                   with({"transport=\"udp\"", "outcome=\"dropped\""})),
            1.0);
  EXPECT_EQ(
      Sample(text, "lockwarden_gateway_rpc_request_duration_seconds_count",
             test4),
      4.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_nlm_denied_nolocks_total",
                   {"procedure=\"NLM4_TEST\"", "form=\"reply\""}),
            1.0);
}

TEST_F(GatewayMetricsTest, GarbageArgsCountedPerProcedureAndPerService) {
  std::string truncated = TestCall(9, 1);
  truncated.resize(truncated.size() - 8);
  Dispatch(truncated);
  metrics_->SetSources(GatewayMetricsSources{
      {{"nlm", dispatcher_.get(), nullptr}}, &drc_, nullptr, nullptr, nullptr});
  const std::string text = metrics_->Serialize();
  EXPECT_EQ(Sample(text, "lockwarden_gateway_rpc_requests_total",
                   {"procedure=\"NLM4_TEST\"", "outcome=\"garbage_args\""}),
            1.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_rpc_errors_total",
                   {"service=\"nlm\"", "error=\"garbage_args\""}),
            1.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_drc_misses_total", {}), 1.0);
  metrics_->ClearSources();
  EXPECT_FALSE(
      Sample(metrics_->Serialize(), "lockwarden_gateway_rpc_errors_total", {})
          .has_value());
}

TEST_F(GatewayMetricsTest, DrcReplayIsAHitNotASecondExecution) {
  const std::string call = TestCall(5, 1);
  Dispatch(call);
  Dispatch(call);
  metrics_->SetSources(
      GatewayMetricsSources{{}, &drc_, nullptr, nullptr, nullptr});
  const std::string text = metrics_->Serialize();
  EXPECT_EQ(Sample(text, "lockwarden_gateway_drc_hits_total", {}), 1.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_rpc_requests_total",
                   {"procedure=\"NLM4_TEST\"", "transport=\"udp\"",
                    "outcome=\"success\""}),
            1.0);
  metrics_->ClearSources();
}

TEST_F(GatewayMetricsTest, OutgoingResCarryingDeniedNoLocksIsCounted) {
  nlm4_res res{};
  res.stat.stat = NLM4_DENIED_NOLOCKS;
  absl::StatusOr<std::string> m =
      EncodeCall(7, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_LOCK_RES},
                 CallCredentials::None(), XdrProc(xdr_nlm4_res), &res);
  ASSERT_TRUE(m.ok());
  metrics_->OnOutgoingDone(*m, absl::OkStatus());
  metrics_->OnOutgoingDone(*m, absl::UnavailableError("ICMP"));
  const std::string text = metrics_->Serialize();
  EXPECT_EQ(Sample(text, "lockwarden_gateway_outgoing_calls_total",
                   {"procedure=\"LOCK_RES\"", "result=\"ok\""}),
            1.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_outgoing_calls_total",
                   {"procedure=\"LOCK_RES\"", "result=\"unavailable\""}),
            1.0);
  EXPECT_EQ(Sample(text, "lockwarden_gateway_nlm_denied_nolocks_total",
                   {"procedure=\"LOCK_RES\"", "form=\"res\""}),
            2.0);
}

TEST(ReplyClassifierTest, ReadsTheNlmStatusAfterTheCookie) {
  nlm4_res res{};
  static char cookie[] = "12345";  // 5 bytes: padding must be skipped
  res.cookie = {5, cookie};
  res.stat.stat = NLM4_DENIED_NOLOCKS;
  absl::StatusOr<std::string> reply =
      EncodeSuccessReply(1, XdrProc(xdr_nlm4_res), &res);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(NlmStatOfReply(*reply), kNlmDeniedNoLocks);
  EXPECT_EQ(ClassifyReply(*reply, true), CallOutcome::kSuccess);
  EXPECT_EQ(ClassifyReply(EncodeAcceptedError(1, AcceptStat::kSystemErr), true),
            CallOutcome::kSystemErr);
  EXPECT_EQ(ClassifyReply(std::nullopt, true), CallOutcome::kNoReply);
  EXPECT_FALSE(LeadingNlmStat("\x00\x00\x00\x08"
                              "abc")
                   .has_value());
}

}  // namespace
}  // namespace lockwarden::gateway::metrics
