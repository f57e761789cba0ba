// Cross-checks the hand-written RPC header code against libtirpc's own
// xdr_callmsg / xdr_replymsg in both directions.
#include "gateway/rpc/rpc_message.h"

#include <rpc/rpc.h>

#include <cstring>
#include <string>

#include "common/status_matchers.h"
#include "gateway/rpc/xdr_wire.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::lockwarden::testing::StatusIs;

nlm4_lockargs SampleLockArgs() {
  static char name[] = "client-a";
  static char bytes[] = "cookieXXfilehandleowner";
  nlm4_lockargs a{};
  a.cookie = {6, bytes};
  a.block = TRUE;
  a.exclusive = TRUE;
  a.alock.caller_name = name;
  a.alock.fh = {10, bytes + 8};
  a.alock.oh = {5, bytes + 18};
  a.alock.svid = 4242;
  a.alock.l_offset = 1ull << 33;
  a.alock.l_len = 0;
  a.state = 3;
  return a;
}

// A call built by libtirpc: xdr_callmsg with an authunix credential.
std::string TirpcCall(uint32_t xid, AUTH* auth) {
  rpc_msg msg{};
  msg.rm_xid = xid;
  msg.rm_direction = CALL;
  msg.rm_call.cb_rpcvers = 2;
  msg.rm_call.cb_prog = NLM_PROG;
  msg.rm_call.cb_vers = NLM4_VERS;
  msg.rm_call.cb_proc = NLMPROC4_LOCK;
  msg.rm_call.cb_cred = auth->ah_cred;
  msg.rm_call.cb_verf = auth->ah_verf;
  char buf[2048];
  XDR xdrs;
  xdrmem_create(&xdrs, buf, sizeof(buf), XDR_ENCODE);
  nlm4_lockargs args = SampleLockArgs();
  EXPECT_TRUE(xdr_callmsg(&xdrs, &msg));
  EXPECT_TRUE(xdr_nlm4_lockargs(&xdrs, &args));
  std::string out(buf, xdr_getpos(&xdrs));
  XDR_DESTROY(&xdrs);
  return out;
}

TEST(RpcMessageTest, DecodesTirpcCallWithAuthSys) {
  gid_t gids[] = {10, 20, 30};
  AUTH* auth = authunix_create(const_cast<char*>("nfs-client-7"), 1000, 100,
                               3, gids);
  ASSERT_NE(auth, nullptr);
  const std::string wire = TirpcCall(0xdeadbeef, auth);
  auth_destroy(auth);

  DecodedCall d = DecodeCall(wire);
  ASSERT_EQ(d.outcome, DecodedCall::Outcome::kOk) << d.reason;
  EXPECT_EQ(d.header.xid, 0xdeadbeefu);
  EXPECT_EQ(d.header.prog, uint32_t{NLM_PROG});
  EXPECT_EQ(d.header.vers, uint32_t{NLM4_VERS});
  EXPECT_EQ(d.header.proc, uint32_t{NLMPROC4_LOCK});
  EXPECT_EQ(d.header.cred_flavor, uint32_t{AUTH_SYS});
  ASSERT_TRUE(d.header.auth_sys.has_value());
  EXPECT_EQ(d.header.auth_sys->machine_name, "nfs-client-7");
  EXPECT_EQ(d.header.auth_sys->uid, 1000u);
  EXPECT_EQ(d.header.auth_sys->gid, 100u);
  EXPECT_EQ(d.header.auth_sys->gids, (std::vector<uint32_t>{10, 20, 30}));

  XdrObject<nlm4_lockargs> args(XdrProc(xdr_nlm4_lockargs));
  LW_ASSERT_OK(args.Decode(absl::string_view(wire).substr(d.header.args_offset)));
  EXPECT_STREQ(args.value().alock.caller_name, "client-a");
  EXPECT_EQ(args.value().alock.l_offset, 1ull << 33);
  EXPECT_EQ(args.value().alock.svid, 4242);
}

TEST(RpcMessageTest, DecodesAuthNoneCall) {
  AUTH* auth = authnone_create();
  const std::string wire = TirpcCall(7, auth);
  DecodedCall d = DecodeCall(wire);
  ASSERT_EQ(d.outcome, DecodedCall::Outcome::kOk);
  EXPECT_EQ(d.header.cred_flavor, uint32_t{AUTH_NONE});
  EXPECT_FALSE(d.header.auth_sys.has_value());
}

std::string RawCallHeader(uint32_t rpcvers, uint32_t flavor,
                          absl::string_view cred_body) {
  std::string out;
  XdrWriter(&out).U32(99).U32(0).U32(rpcvers).U32(100021).U32(4).U32(0);
  XdrWriter(&out).U32(flavor).Opaque(cred_body).U32(0).U32(0);
  return out;
}

TEST(RpcMessageTest, RejectsWrongRpcVersionWithMismatch) {
  DecodedCall d = DecodeCall(RawCallHeader(3, 0, ""));
  EXPECT_EQ(d.outcome, DecodedCall::Outcome::kRpcMismatch);
  EXPECT_EQ(d.header.xid, 99u);
}

TEST(RpcMessageTest, RejectsUnsupportedFlavorAsBadCred) {
  DecodedCall d = DecodeCall(RawCallHeader(2, 6 /* RPCSEC_GSS */, "abcd"));
  EXPECT_EQ(d.outcome, DecodedCall::Outcome::kAuthError);
  EXPECT_EQ(d.auth_stat, AuthStat::kBadCred);
}

TEST(RpcMessageTest, RejectsMalformedAuthSys) {
  std::string body;
  XdrWriter w(&body);
  w.U32(0).Opaque("host").U32(0).U32(0).U32(17);  // 17 gids > 16
  for (int i = 0; i < 17; ++i) w.U32(i);
  DecodedCall d = DecodeCall(RawCallHeader(2, 1, body));
  EXPECT_EQ(d.outcome, DecodedCall::Outcome::kAuthError);
  EXPECT_EQ(d.auth_stat, AuthStat::kBadCred);
}

TEST(RpcMessageTest, OversizeCredentialIsAuthError) {
  DecodedCall d = DecodeCall(RawCallHeader(2, 1, std::string(401, 'x')));
  EXPECT_EQ(d.outcome, DecodedCall::Outcome::kAuthError);
}

TEST(RpcMessageTest, DropsTruncatedAndNonCallMessages) {
  const std::string full = RawCallHeader(2, 0, "");
  for (size_t n : {0, 4, 7, 12, 20}) {
    EXPECT_EQ(DecodeCall(full.substr(0, n)).outcome,
              DecodedCall::Outcome::kDrop)
        << n;
  }
  std::string reply = EncodeAcceptedError(5, AcceptStat::kSystemErr);
  EXPECT_EQ(DecodeCall(reply).outcome, DecodedCall::Outcome::kDrop);
}

// Decodes one of our replies with libtirpc.
rpc_msg TirpcReply(const std::string& wire, xdrproc_t results, void* where) {
  rpc_msg msg{};
  msg.acpted_rply.ar_results.where = static_cast<caddr_t>(where);
  msg.acpted_rply.ar_results.proc = results;
  XDR xdrs;
  xdrmem_create(&xdrs, const_cast<char*>(wire.data()), wire.size(),
                XDR_DECODE);
  EXPECT_TRUE(xdr_replymsg(&xdrs, &msg));
  XDR_DESTROY(&xdrs);
  return msg;
}

TEST(RpcMessageTest, SuccessReplyDecodesWithTirpc) {
  static char cookie[] = "ck";
  nlm4_res res{{2, cookie}, {NLM4_BLOCKED}};
  LW_ASSERT_OK_AND_ASSIGN(
      std::string wire, EncodeSuccessReply(77, XdrProc(xdr_nlm4_res), &res));
  nlm4_res out{};
  rpc_msg msg = TirpcReply(wire, XdrProc(xdr_nlm4_res), &out);
  EXPECT_EQ(msg.rm_xid, 77u);
  EXPECT_EQ(msg.rm_reply.rp_stat, MSG_ACCEPTED);
  EXPECT_EQ(msg.acpted_rply.ar_stat, SUCCESS);
  EXPECT_EQ(out.stat.stat, NLM4_BLOCKED);
  XdrFree(XdrProc(xdr_nlm4_res), &out);
}

TEST(RpcMessageTest, ErrorRepliesDecodeWithTirpc) {
  rpc_msg m = TirpcReply(EncodeProgMismatch(1, 1, 4), nullptr, nullptr);
  EXPECT_EQ(m.acpted_rply.ar_stat, PROG_MISMATCH);
  EXPECT_EQ(m.acpted_rply.ar_vers.low, 1u);
  EXPECT_EQ(m.acpted_rply.ar_vers.high, 4u);

  m = TirpcReply(EncodeAcceptedError(2, AcceptStat::kGarbageArgs), nullptr,
                 nullptr);
  EXPECT_EQ(m.acpted_rply.ar_stat, GARBAGE_ARGS);

  m = TirpcReply(EncodeRpcMismatch(3), nullptr, nullptr);
  EXPECT_EQ(m.rm_reply.rp_stat, MSG_DENIED);
  EXPECT_EQ(m.rjcted_rply.rj_stat, RPC_MISMATCH);
  EXPECT_EQ(m.rjcted_rply.rj_vers.low, 2u);
  EXPECT_EQ(m.rjcted_rply.rj_vers.high, 2u);

  m = TirpcReply(EncodeAuthError(4, AuthStat::kBadCred), nullptr, nullptr);
  EXPECT_EQ(m.rjcted_rply.rj_stat, AUTH_ERROR);
  EXPECT_EQ(m.rjcted_rply.rj_why, AUTH_BADCRED);
}

TEST(RpcMessageTest, EncodedCallDecodesWithTirpcAndUs) {
  AuthSysParams p;
  p.machine_name = "gateway-0";
  p.uid = 0;
  p.gid = 0;
  p.gids = {1, 2};
  nlm4_lockargs args = SampleLockArgs();
  LW_ASSERT_OK_AND_ASSIGN(
      std::string wire,
      EncodeCall(1234, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED_MSG},
                 CallCredentials::Sys(p), XdrProc(xdr_nlm4_lockargs), &args));
  rpc_msg msg{};
  XDR xdrs;
  xdrmem_create(&xdrs, wire.data(), wire.size(), XDR_DECODE);
  char cred_area[2 * MAX_AUTH_BYTES];
  msg.rm_call.cb_cred.oa_base = cred_area;
  msg.rm_call.cb_verf.oa_base = cred_area + MAX_AUTH_BYTES;
  ASSERT_TRUE(xdr_callmsg(&xdrs, &msg));
  EXPECT_EQ(msg.rm_xid, 1234u);
  EXPECT_EQ(msg.rm_call.cb_proc, uint32_t{NLMPROC4_GRANTED_MSG});
  EXPECT_EQ(msg.rm_call.cb_cred.oa_flavor, AUTH_SYS);
  XDR_DESTROY(&xdrs);

  DecodedCall d = DecodeCall(wire);
  ASSERT_EQ(d.outcome, DecodedCall::Outcome::kOk);
  EXPECT_EQ(d.header.auth_sys->machine_name, "gateway-0");
  EXPECT_EQ(d.header.auth_sys->gids, (std::vector<uint32_t>{1, 2}));
}

TEST(RpcMessageTest, EncodeCallRejectsTooManyGids) {
  AuthSysParams p;
  p.gids.assign(17, 1);
  EXPECT_THAT(EncodeCall(1, CallTarget{1, 1, 0}, CallCredentials::Sys(p),
                         XdrVoid(), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RpcMessageTest, DecodeReplyChecksXidAndMapsErrors) {
  static char cookie[] = "c";
  nlm4_res res{{1, cookie}, {NLM4_GRANTED}};
  LW_ASSERT_OK_AND_ASSIGN(std::string wire,
                          EncodeSuccessReply(9, XdrProc(xdr_nlm4_res), &res));
  nlm4_res out{};
  LW_ASSERT_OK(DecodeReply(wire, 9, XdrProc(xdr_nlm4_res), &out));
  EXPECT_EQ(out.stat.stat, NLM4_GRANTED);
  XdrFree(XdrProc(xdr_nlm4_res), &out);
  EXPECT_THAT(DecodeReply(wire, 10, XdrProc(xdr_nlm4_res), &out),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(DecodeReply(EncodeAcceptedError(9, AcceptStat::kProcUnavail), 9,
                          XdrProc(xdr_nlm4_res), &out),
              StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(DecodeReply(EncodeAcceptedError(9, AcceptStat::kSystemErr), 9,
                          XdrProc(xdr_nlm4_res), &out),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(DecodeReply(EncodeAuthError(9, AuthStat::kTooWeak), 9,
                          XdrProc(xdr_nlm4_res), &out),
              StatusIs(absl::StatusCode::kPermissionDenied));
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(EncodeProgMismatch(9, 1, 4));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->mismatch_high, 4u);
}

TEST(RpcMessageTest, PeekDistinguishesCallsAndReplies) {
  EXPECT_TRUE(PeekMessage(RawCallHeader(2, 0, ""))->is_call);
  EXPECT_FALSE(PeekMessage(EncodeRpcMismatch(1))->is_call);
  EXPECT_FALSE(PeekMessage("abc").has_value());
}

}  // namespace
}  // namespace lockwarden::gateway
