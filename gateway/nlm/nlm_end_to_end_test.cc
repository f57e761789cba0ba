// End to end on loopback: libtirpc NLM clients -> NlmService on an RpcServer
// -> ServerClient -> a real LockServer (MemoryStore); grants delivered back
// to a fake client NLM found through its (embedded) portmapper.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gateway/nlm/nlm_args.h"
#include "gateway/nlm/nlm_test_client.h"
#include "gateway/nlm/nlm_test_env.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nlm {
namespace {

class NlmEndToEndTest : public ::testing::TestWithParam<bool> {};

TEST_P(NlmEndToEndTest, TestLockUnlockAndConflictsBetweenOwners) {
  const bool tcp = GetParam();
  NlmTestEnv env;
  CLIENT* c = env.Client(tcp, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  Spec a;  // client-1, svid 1
  Spec b = a;
  b.svid = 2;  // another process on the same host: another owner
  b.oh = "oh-2";

  EXPECT_EQ(Test4(c, a), NLM4_GRANTED);
  EXPECT_EQ(Lock4(c, a), NLM4_GRANTED);
  // The owner's own lock never conflicts; the other owner's does.
  EXPECT_EQ(Test4(c, a), NLM4_GRANTED);
  nlm4_holder holder{};
  EXPECT_EQ(Test4(c, b, &holder), NLM4_DENIED);
  EXPECT_EQ(holder.svid, 1);
  EXPECT_EQ(holder.l_offset, 0u);
  EXPECT_EQ(holder.l_len, 100u);
  EXPECT_TRUE(holder.exclusive);
  EXPECT_EQ(Lock4(c, b), NLM4_DENIED);

  // One owner's overlapping locks merge into one.
  Spec a2 = a;
  a2.offset = 50;
  a2.length = 100;
  EXPECT_EQ(Lock4(c, a2), NLM4_GRANTED);
  std::vector<v1::Lock> locks = env.ListLocks();
  ASSERT_EQ(locks.size(), 1u);
  EXPECT_EQ(locks[0].range().offset(), 0u);
  EXPECT_EQ(locks[0].range().length(), 150u);
  EXPECT_EQ(locks[0].owner().client_name(), "client-1");
  EXPECT_EQ(locks[0].owner().svid(), 1u);
  EXPECT_EQ(locks[0].owner().oh(), "oh-1");
  // (Lock.monitored is not asserted: the server does not record
  // LockRequest.monitored yet; the gateway sets it, see SendLock.)
  EXPECT_EQ(locks[0].gateway_id(), "gw.test");

  EXPECT_EQ(Unlock4(c, a2), NLM4_GRANTED);  // releases [50, 150)
  EXPECT_EQ(Unlock4(c, a), NLM4_GRANTED);
  EXPECT_TRUE(env.ListLocks().empty());
  EXPECT_EQ(Lock4(c, b), NLM4_GRANTED);
  // UNLOCK of nothing held still answers GRANTED.
  EXPECT_EQ(Unlock4(c, a), NLM4_GRANTED);

  // Monitored: one Mon for the host, however many LOCKs.
  EXPECT_EQ(env.nlm().stats().mon_calls, 1u);
  bool recorded = false;
  for (const auto& [name, addr] : env.recorded_addresses()) {
    if (name == "client-1" && addr == "127.0.0.1") recorded = true;
  }
  EXPECT_TRUE(recorded);
  clnt_destroy(c);
}

TEST_P(NlmEndToEndTest, BlockedLockIsGrantedThroughGrantedMsg) {
  const bool tcp = GetParam();
  NlmTestEnv env;
  CLIENT* c = env.Client(tcp, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  Spec a;
  Spec b = a;
  b.svid = 2;
  b.oh = "oh-2";
  b.block = true;
  b.cookie = "blocked-cookie";
  EXPECT_EQ(Lock4(c, a), NLM4_GRANTED);
  EXPECT_EQ(Lock4(c, b), NLM4_BLOCKED);
  ASSERT_EQ(env.ListWaiters().size(), 1u);
  EXPECT_EQ(Unlock4(c, a), NLM4_GRANTED);

  // The gateway sends GRANTED_MSG to the client's NLM (port from the
  // client's portmapper); the fake client answers GRANTED_RES; the ack
  // confirms the lock.
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_GRANTED_MSG, absl::Seconds(10)));
  ClientNlmEvent granted;
  for (const auto& e : env.client_events()) {
    if (e.proc == NLMPROC4_GRANTED_MSG) granted = e;
  }
  EXPECT_EQ(granted.svid, 2u);
  EXPECT_EQ(granted.offset, 0u);
  EXPECT_EQ(granted.length, 100u);
  EXPECT_EQ(granted.caller_name, "gw.test");
  ASSERT_EQ(granted.cookie.size(), 8u);
  EXPECT_TRUE(GrantDelivery::SequenceFromCookie(granted.cookie).has_value());
  EXPECT_TRUE(Eventually([&] {
    std::vector<v1::Lock> locks = env.ListLocks();
    return locks.size() == 1 && locks[0].owner().svid() == 2 &&
           locks[0].confirmed();
  })) << "the granted lock was not confirmed";
  EXPECT_EQ(env.grants().stats().delivered, 1u);
  EXPECT_EQ(env.nlm().stats().granted_res, 1u);
  clnt_destroy(c);
}

TEST_P(NlmEndToEndTest, CancelRemovesABlockedRequest) {
  NlmTestEnv env;
  CLIENT* c = env.Client(GetParam(), NLM4_VERS);
  ASSERT_NE(c, nullptr);
  Spec a;
  Spec b = a;
  b.svid = 2;
  b.oh = "oh-2";
  b.block = true;
  EXPECT_EQ(Lock4(c, a), NLM4_GRANTED);
  EXPECT_EQ(Lock4(c, b), NLM4_BLOCKED);
  EXPECT_EQ(Cancel4(c, b), NLM4_GRANTED);
  EXPECT_TRUE(env.ListWaiters().empty());
  // Nothing left to cancel.
  EXPECT_EQ(Cancel4(c, b), NLM4_DENIED);
  EXPECT_EQ(Unlock4(c, a), NLM4_GRANTED);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(env.ListLocks().empty());
  EXPECT_EQ(env.grants().stats().events_received, 0u);
  clnt_destroy(c);
}

INSTANTIATE_TEST_SUITE_P(UdpAndTcp, NlmEndToEndTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Tcp" : "Udp";
                         });

TEST(NlmVersionsEndToEndTest, V1AndV3Use32BitRanges) {
  NlmTestEnv env;
  CLIENT* c4 = env.Client(false, NLM4_VERS);
  CLIENT* c1 = env.Client(false, NLM_VERS);
  CLIENT* c3 = env.Client(true, NLM_VERSX);
  ASSERT_TRUE(c4 && c1 && c3);

  // v1: offset + len > 2^32 is taken as "to end of file".
  Spec v1 = Spec();
  v1.caller = "old-client";
  v1.offset = 10;
  v1.length = 0xffffffff;
  EXPECT_EQ(Lock1(c1, v1), LCK_GRANTED);
  std::vector<v1::Lock> locks = env.ListLocks();
  ASSERT_EQ(locks.size(), 1u);
  EXPECT_EQ(locks[0].range().offset(), 10u);
  EXPECT_EQ(locks[0].range().length(), 0u);

  // A v4 owner conflicts far past 4 GiB; v4 sees the EOF lock as held.
  Spec big;
  big.fh = "file-1";
  big.offset = 1ull << 40;
  big.length = 10;
  nlm4_holder h4{};
  EXPECT_EQ(Test4(c4, big, &h4), NLM4_DENIED);
  EXPECT_EQ(h4.l_offset, 10u);
  EXPECT_EQ(h4.l_len, 0u);

  // On another file: a v4 lock that starts past 2^32 - 1 cannot be named to a
  // v3 client: its TEST answers DENIED_NOLOCKS (FBIG has no v1/v3 code).
  Spec far = big;
  far.fh = "file-2";
  EXPECT_EQ(Lock4(c4, far), NLM4_GRANTED);
  Spec v3 = Spec();
  v3.fh = "file-2";
  v3.caller = "old-client";
  v3.offset = 0;
  v3.length = 0;  // to EOF: conflicts with the lock at 2^40
  EXPECT_EQ(Test1(c3, v3), LCK_DENIED_NOLOCKS);

  // A v4 lock from below 2^32 to past it is reported with length 0.
  Spec straddle = Spec();
  straddle.fh = "file-3";
  straddle.offset = 100;
  straddle.length = 1ull << 40;
  EXPECT_EQ(Lock4(c4, straddle), NLM4_GRANTED);
  v3.fh = "file-3";
  nlm_holder h1{};
  EXPECT_EQ(Test1(c3, v3, &h1), LCK_DENIED);
  EXPECT_EQ(h1.l_offset, 100u);
  EXPECT_EQ(h1.l_len, 0u);
  clnt_destroy(c4);
  clnt_destroy(c1);
  clnt_destroy(c3);
}

TEST(NlmVersionsEndToEndTest, OversizeFileHandleIsRefusedAtTheEdge) {
  NlmTestEnv env;
  CLIENT* c4 = env.Client(false, NLM4_VERS);
  CLIENT* c3 = env.Client(false, NLM_VERSX);
  Spec s;
  s.fh = std::string(65, 'f');
  EXPECT_EQ(Lock4(c4, s), NLM4_STALE_FH);
  EXPECT_EQ(Lock1(c3, s), LCK_DENIED_NOLOCKS);
  EXPECT_EQ(env.nlm().stats().edge_rejections, 2u);
  EXPECT_TRUE(env.ListLocks().empty());
  clnt_destroy(c4);
  clnt_destroy(c3);
}

// Sends one raw UDP datagram from `sock` and waits for a reply (or not).
std::optional<std::string> UdpExchange(int sock, uint16_t port,
                                       const std::string& message,
                                       int wait_ms) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(sendto(sock, message.data(), message.size(), 0,
                   reinterpret_cast<sockaddr*>(&to), sizeof(to)),
            static_cast<ssize_t>(message.size()));
  timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
  setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[65536];
  const ssize_t n = recv(sock, buf, sizeof(buf), 0);
  if (n <= 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

TEST(NlmDrcEndToEndTest, RetransmittedLockIsAnsweredFromTheCache) {
  NlmTestEnv env;
  Spec s;
  nlm4_lockargs a = LockArgs4(s);
  absl::StatusOr<std::string> call =
      EncodeCall(0x5eed, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_LOCK},
                 CallCredentials::Sys(AuthSysParams{0, "client-1", 1000, 100,
                                                    {}}),
                 XdrProc(xdr_nlm4_lockargs), &a);
  ASSERT_TRUE(call.ok());
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(sock, 0);
  std::optional<std::string> first =
      UdpExchange(sock, env.gateway_port(), *call, 5000);
  ASSERT_TRUE(first.has_value());
  const uint64_t calls = env.nlm().stats().calls;
  std::optional<std::string> second =
      UdpExchange(sock, env.gateway_port(), *call, 5000);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(env.drc().stats().hits, 1u);
  EXPECT_EQ(env.nlm().stats().calls, calls);  // not executed again
  nlm4_res r{};
  ASSERT_TRUE(
      DecodeReply(*second, 0x5eed, XdrProc(xdr_nlm4_res), &r).ok());
  EXPECT_EQ(r.stat.stat, NLM4_GRANTED);
  XdrFree(XdrProc(xdr_nlm4_res), &r);
  EXPECT_EQ(env.ListLocks().size(), 1u);
  close(sock);
}

TEST(NlmAsyncEndToEndTest, LockMsgIsAnsweredWithLockRes) {
  NlmTestEnv env;
  Spec s;
  s.cookie = "msg-cookie";
  nlm4_lockargs a = LockArgs4(s);
  absl::StatusOr<std::string> call = EncodeCall(
      77, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_LOCK_MSG},
      CallCredentials::None(), XdrProc(xdr_nlm4_lockargs), &a);
  ASSERT_TRUE(call.ok());
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(sock, 0);
  // No RPC reply to a _MSG call.
  EXPECT_FALSE(UdpExchange(sock, env.gateway_port(), *call, 300).has_value());
  ASSERT_TRUE(env.WaitForClientEvent(NLMPROC4_LOCK_RES, absl::Seconds(10)));
  for (const auto& e : env.client_events()) {
    if (e.proc != NLMPROC4_LOCK_RES) continue;
    EXPECT_EQ(e.cookie, "msg-cookie");
    EXPECT_EQ(e.stat, static_cast<uint32_t>(NLM4_GRANTED));
  }
  EXPECT_EQ(env.ListLocks().size(), 1u);
  EXPECT_TRUE(Eventually([&] { return env.nlm().stats().res_sent == 1; }));
  close(sock);
}

nlm4_stats Share4(CLIENT* c, uint32_t proc, const std::string& oh,
                  fsh_access access, fsh_mode mode) {
  std::string caller = "client-1", fh = "file-s", oh_bytes = oh,
              cookie = "share";
  nlm4_shareargs a{};
  a.cookie = NetobjOf(cookie);
  a.share.caller_name = caller.data();
  a.share.fh = NetobjOf(fh);
  a.share.oh = NetobjOf(oh_bytes);
  a.share.mode = mode;
  a.share.access = access;
  nlm4_shareres r{};
  EXPECT_EQ(clnt_call(c, proc, XdrProc(xdr_nlm4_shareargs),
                      reinterpret_cast<caddr_t>(&a),
                      XdrProc(xdr_nlm4_shareres),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(NetobjBytes(r.cookie), "share");
  const nlm4_stats out = r.stat;
  XdrFree(XdrProc(xdr_nlm4_shareres), &r);
  return out;
}

TEST(NlmSharesEndToEndTest, ShareReservationsConflictAndRelease) {
  NlmTestEnv env;
  CLIENT* c = env.Client(true, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(Share4(c, NLMPROC4_SHARE, "oh-a", fsa_RW, fsm_DW), NLM4_GRANTED);
  // Another owner wanting write access is denied by the deny-write.
  EXPECT_EQ(Share4(c, NLMPROC4_SHARE, "oh-b", fsa_W, fsm_DN), NLM4_DENIED);
  EXPECT_EQ(Share4(c, NLMPROC4_UNSHARE, "oh-a", fsa_RW, fsm_DW), NLM4_GRANTED);
  EXPECT_EQ(Share4(c, NLMPROC4_SHARE, "oh-b", fsa_W, fsm_DN), NLM4_GRANTED);
  clnt_destroy(c);
}

TEST(NlmFreeAllEndToEndTest, NmLockIsUnmonitoredAndFreeAllReleasesIt) {
  NlmTestEnv env;
  CLIENT* c = env.Client(false, NLM_VERSX);
  CLIENT* c4 = env.Client(false, NLM4_VERS);
  ASSERT_TRUE(c && c4);
  Spec s;
  EXPECT_EQ(Lock4(c4, s, NLMPROC4_NM_LOCK), NLM4_GRANTED);
  // NM_LOCK does not register the host for monitoring.
  EXPECT_EQ(env.nlm().stats().mon_calls, 0u);
  ASSERT_EQ(env.ListLocks().size(), 1u);
  std::string name = "client-1";
  nlm_notify n{};
  n.name = name.data();
  n.state = 5;
  EXPECT_EQ(clnt_call(c, NLMPROC_FREE_ALL, XdrProc(xdr_nlm_notify),
                      reinterpret_cast<caddr_t>(&n), XdrVoid(), nullptr,
                      kTimeout),
            RPC_SUCCESS);
  EXPECT_TRUE(env.ListLocks().empty());
  clnt_destroy(c);
  clnt_destroy(c4);
}

TEST(NlmCallbacksEndToEndTest, GrantedToTheGatewayIsDeniedAndStatdCallbackIgnored) {
  NlmTestEnv env;
  CLIENT* c = env.Client(false, NLM4_VERS);
  ASSERT_NE(c, nullptr);
  Spec s;
  nlm4_testargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.alock = Lock4Of(s);
  nlm4_res r{};
  EXPECT_EQ(clnt_call(c, NLMPROC4_GRANTED, XdrProc(xdr_nlm4_testargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm4_res),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(r.stat.stat, NLM4_DENIED);
  XdrFree(XdrProc(xdr_nlm4_res), &r);

  std::string mon = "client-1";
  nlm_sm_status st{};
  st.mon_name = mon.data();
  st.state = 3;
  EXPECT_EQ(clnt_call(c, kNlmStatusCallbackProc, XdrProc(xdr_nlm_sm_status),
                      reinterpret_cast<caddr_t>(&st), XdrVoid(), nullptr,
                      kTimeout),
            RPC_SUCCESS);
  EXPECT_TRUE(env.ListLocks().empty());
  clnt_destroy(c);
}

TEST(NlmServerDownTest, AnswersDeniedNolocksAfterTheFailoverWait) {
  NlmTestEnvOptions o;
  o.server_down = true;
  o.failover_wait_ms = 300;
  o.rpc_timeout_ms = 100;
  NlmTestEnv env(o);
  CLIENT* c4 = env.Client(true, NLM4_VERS);
  CLIENT* c1 = env.Client(true, NLM_VERS);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Lock4(c4, Spec()), NLM4_DENIED_NOLOCKS);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, std::chrono::milliseconds(300));
  EXPECT_LT(took, std::chrono::milliseconds(5000));
  EXPECT_EQ(Test4(c4, Spec()), NLM4_DENIED_NOLOCKS);
  EXPECT_EQ(Lock1(c1, Spec()), LCK_DENIED_NOLOCKS);
  EXPECT_GE(env.nlm().stats().server_errors, 3u);
  clnt_destroy(c4);
  clnt_destroy(c1);
}

}  // namespace
}  // namespace lockwarden::gateway::nlm
