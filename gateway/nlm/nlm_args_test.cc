#include "gateway/nlm/nlm_args.h"

#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nlm {
namespace {

nlm4_lockargs Lock4(const char* caller, std::string& fh, std::string& oh,
                    int svid, uint64_t off, uint64_t len) {
  nlm4_lockargs a{};
  a.block = 1;
  a.exclusive = 1;
  a.alock.caller_name = const_cast<char*>(caller);
  a.alock.fh = NetobjOf(fh);
  a.alock.oh = NetobjOf(oh);
  a.alock.svid = svid;
  a.alock.l_offset = off;
  a.alock.l_len = len;
  a.reclaim = 0;
  a.state = 3;
  return a;
}

TEST(NlmArgsTest, V4LockArgsAreNormalised) {
  std::string fh = "fh1", oh = "owner";
  nlm4_lockargs a = Lock4("client-a", fh, oh, 42, ~0ull - 1, 10);
  NlmArgs n = FromWire(a);
  EXPECT_EQ(n.vers, 4u);
  EXPECT_TRUE(n.block);
  EXPECT_TRUE(n.exclusive);
  EXPECT_EQ(n.state, 3);
  EXPECT_EQ(n.lock.caller_name, "client-a");
  EXPECT_EQ(n.lock.fh, "fh1");
  EXPECT_EQ(n.lock.oh, "owner");
  EXPECT_EQ(n.lock.svid, 42u);
  // Clamped to end at 2^64 - 1.
  EXPECT_EQ(n.lock.range, (Range64{~0ull - 1, 2}));
}

TEST(NlmArgsTest, V3LockArgsUse32BitRules) {
  std::string fh = "fh1", oh = "owner";
  nlm_lockargs a{};
  a.alock.caller_name = const_cast<char*>("client-b");
  a.alock.fh = NetobjOf(fh);
  a.alock.oh = NetobjOf(oh);
  a.alock.svid = -1;  // svid is an XDR int; kept bit for bit
  a.alock.l_offset = 0xfffffff0u;
  a.alock.l_len = 0x100;
  NlmArgs n = FromWire(a, 3);
  EXPECT_EQ(n.vers, 3u);
  EXPECT_EQ(n.lock.svid, 0xffffffffu);
  EXPECT_EQ(n.lock.range, (Range64{0xfffffff0u, 0}));  // overflow -> EOF
}

TEST(NlmArgsTest, OwnerIsCallerNameSvidAndOh) {
  NlmLock l;
  l.caller_name = "host1";
  l.svid = 7;
  l.oh = std::string("\x00\x01", 2);
  v1::LockOwner o = OwnerOf(l);
  EXPECT_EQ(o.client_name(), "host1");
  EXPECT_EQ(o.svid(), 7u);
  EXPECT_EQ(o.oh(), std::string("\x00\x01", 2));
  // Two processes of one host are two owners.
  NlmLock other = l;
  other.svid = 8;
  EXPECT_NE(OwnerOf(other).SerializeAsString(), o.SerializeAsString());

  NlmShareArgs s;
  s.caller_name = "host1";
  s.oh = "oh";
  v1::ShareOwner so = ShareOwnerOf(s);
  EXPECT_EQ(so.client_name(), "host1");
  EXPECT_EQ(so.oh(), "oh");
}

TEST(NlmArgsTest, ShareModesMapToTheProtoEnums) {
  EXPECT_EQ(ShareAccessOf(fsa_NONE), v1::SHARE_ACCESS_NONE);
  EXPECT_EQ(ShareAccessOf(fsa_RW), v1::SHARE_ACCESS_READ_WRITE);
  EXPECT_EQ(ShareAccessOf(9), v1::SHARE_ACCESS_UNSPECIFIED);
  EXPECT_EQ(ShareDenyOf(fsm_DN), v1::SHARE_DENY_NONE);
  EXPECT_EQ(ShareDenyOf(fsm_DW), v1::SHARE_DENY_WRITE);
  EXPECT_EQ(ShareDenyOf(4), v1::SHARE_DENY_UNSPECIFIED);
}

// Encodes through WithWireResult and decodes with `T`'s routine.
template <typename T>
T Encode(ResultKind kind, uint32_t vers, const NlmOutcome& o,
         bool_t (*decode)(XDR*, T*), std::string* bytes) {
  EXPECT_TRUE(WithWireResult(kind, vers, "ck", o,
                             [&](xdrproc_t enc, const void* r) {
                               auto b = XdrEncode(enc, r);
                               if (!b.ok()) return b.status();
                               *bytes = *b;
                               return absl::OkStatus();
                             })
                  .ok());
  T out{};
  EXPECT_TRUE(XdrDecode(XdrProc(decode), *bytes, &out).ok());
  return out;
}

TEST(NlmArgsTest, V4TestHolderIsReportedAsHeld) {
  NlmOutcome o;
  o.status = v1::LOCK_STATUS_DENIED;
  o.holder = NlmHolder{true, 9, "ohx", Range64{1ull << 33, 0}};
  std::string bytes;
  nlm4_testres r = Encode(ResultKind::kTestRes, 4, o, xdr_nlm4_testres, &bytes);
  EXPECT_EQ(r.stat.stat, NLM4_DENIED);
  EXPECT_EQ(NetobjBytes(r.cookie), "ck");
  EXPECT_TRUE(r.stat.nlm4_testrply_u.holder.exclusive);
  EXPECT_EQ(r.stat.nlm4_testrply_u.holder.svid, 9);
  EXPECT_EQ(r.stat.nlm4_testrply_u.holder.l_offset, 1ull << 33);
  EXPECT_EQ(NetobjBytes(r.stat.nlm4_testrply_u.holder.oh), "ohx");
  XdrFree(XdrProc(xdr_nlm4_testres), &r);
}

TEST(NlmArgsTest, V3TestHolderPast32BitsIsDeniedNolocks) {
  NlmOutcome o;
  o.status = v1::LOCK_STATUS_DENIED;
  o.holder = NlmHolder{true, 9, "ohx", Range64{1ull << 33, 10}};
  std::string bytes;
  nlm_testres r = Encode(ResultKind::kTestRes, 3, o, xdr_nlm_testres, &bytes);
  EXPECT_EQ(r.test_stat.stat, LCK_DENIED_NOLOCKS);
  XdrFree(XdrProc(xdr_nlm_testres), &r);
}

TEST(NlmArgsTest, V1TestHolderEndingPast32BitsHasLengthZero) {
  NlmOutcome o;
  o.status = v1::LOCK_STATUS_DENIED;
  o.holder = NlmHolder{false, 3, "o", Range64{100, 1ull << 40}};
  std::string bytes;
  nlm_testres r = Encode(ResultKind::kTestRes, 1, o, xdr_nlm_testres, &bytes);
  EXPECT_EQ(r.test_stat.stat, LCK_DENIED);
  EXPECT_EQ(r.test_stat.nlm_testrply_u.holder.l_offset, 100u);
  EXPECT_EQ(r.test_stat.nlm_testrply_u.holder.l_len, 0u);
  EXPECT_FALSE(r.test_stat.nlm_testrply_u.holder.exclusive);
  XdrFree(XdrProc(xdr_nlm_testres), &r);
}

TEST(NlmArgsTest, ResAndShareResFollowTheVersion) {
  NlmOutcome o;
  o.status = v1::LOCK_STATUS_DEADLOCK;
  std::string bytes;
  nlm4_res r4 = Encode(ResultKind::kRes, 4, o, xdr_nlm4_res, &bytes);
  EXPECT_EQ(r4.stat.stat, NLM4_DEADLCK);
  XdrFree(XdrProc(xdr_nlm4_res), &r4);
  nlm_res r1 = Encode(ResultKind::kRes, 1, o, xdr_nlm_res, &bytes);
  EXPECT_EQ(r1.stat.stat, LCK_DENIED);
  XdrFree(XdrProc(xdr_nlm_res), &r1);

  o.status = v1::LOCK_STATUS_GRANTED;
  nlm4_shareres s4 = Encode(ResultKind::kShareRes, 4, o, xdr_nlm4_shareres,
                            &bytes);
  EXPECT_EQ(s4.stat, NLM4_GRANTED);
  EXPECT_EQ(s4.sequence, 0);
  XdrFree(XdrProc(xdr_nlm4_shareres), &s4);
  nlm_shareres s3 = Encode(ResultKind::kShareRes, 3, o, xdr_nlm_shareres,
                           &bytes);
  EXPECT_EQ(s3.stat, LCK_GRANTED);
  XdrFree(XdrProc(xdr_nlm_shareres), &s3);
}

}  // namespace
}  // namespace lockwarden::gateway::nlm
