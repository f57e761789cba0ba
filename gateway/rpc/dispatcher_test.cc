#include "gateway/rpc/dispatcher.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gateway/rpc/xdr_wire.h"
#include "gateway/xdr/nlm_prot.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::lockwarden::testing::StatusIs;

// Collects what the dispatcher hands to the transport.
struct Sink {
  std::vector<std::optional<std::string>> replies;
  ReplySink fn() {
    return [this](std::optional<std::string> r) { replies.push_back(r); };
  }
};

CallContext Udp() {
  CallContext c;
  c.peer_address = "192.0.2.9";
  c.peer_port = 800;
  return c;
}

nlm4_lockargs LockArgs() {
  static char name[] = "host";
  static char obj[] = "0123456789";
  nlm4_lockargs a{};
  a.cookie = {4, obj};
  a.alock.caller_name = name;
  a.alock.fh = {8, obj};
  a.alock.oh = {2, obj};
  a.alock.svid = 1;
  a.alock.l_len = 100;
  return a;
}

std::string Call(uint32_t xid, uint32_t vers, uint32_t proc,
                 xdrproc_t enc = XdrProc(xdr_nlm4_lockargs),
                 const void* args = nullptr) {
  nlm4_lockargs a = LockArgs();
  absl::StatusOr<std::string> wire =
      EncodeCall(xid, CallTarget{NLM_PROG, vers, proc},
                 CallCredentials::None(), enc, args ? args : &a);
  EXPECT_TRUE(wire.ok());
  return *wire;
}

ReplyHeader Header(const std::optional<std::string>& reply) {
  EXPECT_TRUE(reply.has_value());
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(reply.value_or(""));
  EXPECT_TRUE(h.ok()) << h.status();
  return h.value_or(ReplyHeader{});
}

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() : dispatcher_(DispatcherOptions{&drc_, nullptr}) {
    // LOCK answers later: the handler parks the call.
    LW_EXPECT_OK(dispatcher_.RegisterProcedure(
        NLM_PROG, NLM4_VERS, NLMPROC4_LOCK,
        MakeProcedure("NLMPROC4_LOCK", xdr_nlm4_lockargs, xdr_nlm4_res,
                      [this](std::unique_ptr<RpcCall> call) {
                        ++executions_;
                        parked_.push_back(std::move(call));
                      })));
    LW_EXPECT_OK(dispatcher_.RegisterProcedure(
        NLM_PROG, NLM4_VERS, NLMPROC4_LOCK_MSG,
        MakeVoidResultProcedure("NLMPROC4_LOCK_MSG", xdr_nlm4_lockargs,
                                [this](std::unique_ptr<RpcCall> call) {
                                  ++executions_;
                                  LW_EXPECT_OK(call->ReplyNone());
                                })));
    LW_EXPECT_OK(dispatcher_.RegisterProcedure(
        NLM_PROG, NLM_VERS, NLMPROC_NULL,
        MakeVoidProcedure("NLMPROC_NULL", [](std::unique_ptr<RpcCall> call) {
          LW_EXPECT_OK(call->Reply(nullptr));
        })));
  }

  void AnswerParked(size_t i, nlm4_stats stat) {
    nlm4_lockargs* args = parked_[i]->args<nlm4_lockargs>();
    ASSERT_NE(args, nullptr);
    nlm4_res res{args->cookie, {stat}};
    LW_ASSERT_OK(parked_[i]->Reply(&res));
  }

  // Declared before parked_: a parked call reports to the sink when it is
  // destroyed, so the sink must outlive it.
  Sink sink_;
  DuplicateRequestCache drc_;
  Dispatcher dispatcher_;
  int executions_ = 0;
  std::vector<std::unique_ptr<RpcCall>> parked_;
};

TEST_F(DispatcherTest, AsynchronousHandlerRepliesLater) {
  dispatcher_.Dispatch(Udp(), Call(1, NLM4_VERS, NLMPROC4_LOCK), sink_.fn());
  ASSERT_EQ(parked_.size(), 1u);
  EXPECT_TRUE(sink_.replies.empty());
  EXPECT_STREQ(parked_[0]->args<nlm4_lockargs>()->alock.caller_name, "host");
  AnswerParked(0, NLM4_GRANTED);
  ASSERT_EQ(sink_.replies.size(), 1u);
  nlm4_res res{};
  LW_ASSERT_OK(DecodeReply(*sink_.replies[0], 1, XdrProc(xdr_nlm4_res), &res));
  EXPECT_EQ(res.stat.stat, NLM4_GRANTED);
  XdrFree(XdrProc(xdr_nlm4_res), &res);
  // A second answer is refused and sends nothing.
  EXPECT_THAT(parked_[0]->ReplyNone(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(sink_.replies.size(), 1u);
}

TEST_F(DispatcherTest, ManyCallsInFlightAnswerInAnyOrder) {
  for (uint32_t xid = 10; xid < 20; ++xid) {
    dispatcher_.Dispatch(Udp(), Call(xid, NLM4_VERS, NLMPROC4_LOCK), sink_.fn());
  }
  ASSERT_EQ(parked_.size(), 10u);
  for (size_t i = 10; i-- > 0;) AnswerParked(i, NLM4_DENIED);
  ASSERT_EQ(sink_.replies.size(), 10u);
  EXPECT_EQ(Header(sink_.replies[0]).xid, 19u);
}

TEST_F(DispatcherTest, UnknownProgramVersionAndProcedure) {
  std::string wire;
  nlm4_lockargs a = LockArgs();
  wire = *EncodeCall(1, CallTarget{100099, 1, 0}, CallCredentials::None(),
                     XdrProc(xdr_nlm4_lockargs), &a);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  EXPECT_EQ(Header(sink_.replies.back()).accept_stat, AcceptStat::kProgUnavail);

  dispatcher_.Dispatch(Udp(), Call(2, 2, NLMPROC4_LOCK), sink_.fn());
  ReplyHeader h = Header(sink_.replies.back());
  EXPECT_EQ(h.accept_stat, AcceptStat::kProgMismatch);
  EXPECT_EQ(h.mismatch_low, 1u);
  EXPECT_EQ(h.mismatch_high, 4u);

  dispatcher_.Dispatch(Udp(), Call(3, NLM4_VERS, 99), sink_.fn());
  EXPECT_EQ(Header(sink_.replies.back()).accept_stat, AcceptStat::kProcUnavail);
  EXPECT_EQ(executions_, 0);
  EXPECT_EQ(dispatcher_.stats().prog_mismatch, 1u);
}

TEST_F(DispatcherTest, UndecodableArgumentsAreGarbageArgs) {
  std::string wire = Call(4, NLM4_VERS, NLMPROC4_LOCK);
  wire.resize(wire.size() - 4);  // drop the last word of the arguments
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  EXPECT_EQ(Header(sink_.replies.back()).accept_stat, AcceptStat::kGarbageArgs);
  EXPECT_EQ(executions_, 0);
  // Not cached: a corrected retransmission with the same xid executes.
  dispatcher_.Dispatch(Udp(), Call(4, NLM4_VERS, NLMPROC4_LOCK), sink_.fn());
  EXPECT_EQ(executions_, 1);
}

TEST_F(DispatcherTest, AuthAndRpcVersionErrors) {
  std::string wire = Call(5, NLM4_VERS, NLMPROC4_LOCK);
  std::string bad_version = wire;
  bad_version[11] = 3;  // rpcvers word
  dispatcher_.Dispatch(Udp(), bad_version, sink_.fn());
  ReplyHeader h = Header(sink_.replies.back());
  EXPECT_FALSE(h.accepted);
  EXPECT_EQ(h.reject_stat, RejectStat::kRpcMismatch);
  std::string gss = wire;
  gss[27] = 6;  // credential flavor word -> RPCSEC_GSS
  dispatcher_.Dispatch(Udp(), gss, sink_.fn());
  h = Header(sink_.replies.back());
  EXPECT_EQ(h.reject_stat, RejectStat::kAuthError);
  EXPECT_EQ(h.auth_stat, AuthStat::kBadCred);
  dispatcher_.Dispatch(Udp(), "junk", sink_.fn());
  EXPECT_FALSE(sink_.replies.back().has_value());
}

TEST_F(DispatcherTest, RetransmissionsAreAbsorbedThenReplayed) {
  const std::string wire = Call(6, NLM4_VERS, NLMPROC4_LOCK);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());  // in progress: absorbed
  ASSERT_EQ(sink_.replies.size(), 1u);
  EXPECT_FALSE(sink_.replies[0].has_value());
  AnswerParked(0, NLM4_BLOCKED);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());  // completed: replayed
  ASSERT_EQ(sink_.replies.size(), 3u);
  EXPECT_EQ(sink_.replies[2], sink_.replies[1]);
  EXPECT_EQ(executions_, 1);
  EXPECT_EQ(dispatcher_.stats().drc_replays, 1u);
}

TEST_F(DispatcherTest, MessageProceduresSendNoReplyAndAreNotReexecuted) {
  const std::string wire = Call(7, NLM4_VERS, NLMPROC4_LOCK_MSG);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  ASSERT_EQ(sink_.replies.size(), 2u);
  EXPECT_FALSE(sink_.replies[0].has_value());
  EXPECT_FALSE(sink_.replies[1].has_value());
  EXPECT_EQ(executions_, 1);
}

TEST_F(DispatcherTest, DroppedCallIsForgottenAndReportedToTransport) {
  const std::string wire = Call(8, NLM4_VERS, NLMPROC4_LOCK);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  parked_.clear();  // handler gave up without answering
  ASSERT_EQ(sink_.replies.size(), 1u);
  EXPECT_FALSE(sink_.replies[0].has_value());
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  EXPECT_EQ(executions_, 2);
}

TEST_F(DispatcherTest, NullProcedureAndRegistrationErrors) {
  std::string wire = *EncodeCall(9, CallTarget{NLM_PROG, NLM_VERS, NLMPROC_NULL},
                                 CallCredentials::None(), XdrVoid(), nullptr);
  dispatcher_.Dispatch(Udp(), wire, sink_.fn());
  EXPECT_EQ(Header(sink_.replies.back()).accept_stat, AcceptStat::kSuccess);
  EXPECT_THAT(dispatcher_.RegisterProcedure(
                  NLM_PROG, NLM_VERS, NLMPROC_NULL,
                  MakeVoidProcedure("dup", [](std::unique_ptr<RpcCall>) {})),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(dispatcher_.RegisterProcedure(1, 1, 1, ProcedureSpec{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(dispatcher_.VersionRange(NLM_PROG),
            std::make_pair(uint32_t{1}, uint32_t{4}));
}

}  // namespace
}  // namespace lockwarden::gateway
