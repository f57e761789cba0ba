// Round trip of the arguments and results of every NLM (v1, v3, v4) and NSM
// procedure through the rpcgen routines and xdrmem, plus bound checks:
// maximum-length names and netobjs pass, one byte more is rejected on
// decode without a leak (run under --config=asan to check the latter).
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/sm_inter.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

static_assert(MAXNETOBJ_SZ == MAX_NETOBJ_SZ,
              "nlm_prot.x netobj bound must match libtirpc's xdr_netobj");

// Keeps the bytes that sample objects point into alive for a test.
class Pool {
 public:
  char* Str(size_t n, char fill) {
    strings_.emplace_back(n, fill);
    return strings_.back().data();
  }
  netobj Obj(size_t n, char fill) {
    netobj o;
    o.n_len = static_cast<u_int>(n);
    o.n_bytes = n == 0 ? nullptr : Str(n, fill);
    return o;
  }

 private:
  std::deque<std::string> strings_;
};

// Sizes of the variable-length fields: small, or the maximum the .x allows.
struct Sizes {
  size_t name;
  size_t notify_name;
  size_t obj;
};
Sizes SizesFor(bool max) {
  return max ? Sizes{LM_MAXSTRLEN, LM_MAXNAMELEN, MAXNETOBJ_SZ}
             : Sizes{9, 9, 8};
}

// Encodes, decodes, re-encodes and compares; truncated input must fail.
template <typename T>
void ExpectRoundTrip(bool_t (*fn)(XDR*, T*), const T& original) {
  const xdrproc_t proc = XdrProc(fn);
  LW_ASSERT_OK_AND_ASSIGN(std::string bytes, XdrEncode(proc, &original));
  EXPECT_EQ(bytes.size() % 4, 0u);
  T decoded{};
  size_t consumed = 0;
  LW_ASSERT_OK(XdrDecode(proc, bytes, &decoded, &consumed));
  EXPECT_EQ(consumed, bytes.size());
  LW_ASSERT_OK_AND_ASSIGN(std::string again, XdrEncode(proc, &decoded));
  EXPECT_EQ(again, bytes);
  XdrFree(proc, &decoded);
  ASSERT_FALSE(bytes.empty());
  T truncated{};
  EXPECT_THAT(XdrDecode(proc, bytes.substr(0, bytes.size() - 1), &truncated),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---- v1/v3 samples ----
nlm_lock MakeLock(Pool& p, bool max) {
  Sizes s = SizesFor(max);
  return nlm_lock{p.Str(s.name, 'c'), p.Obj(s.obj, 'f'), p.Obj(s.obj, 'o'),
                  -7, 0xfffffff0u, 0xffffffffu};
}
nlm_testargs MakeTestArgs(Pool& p, bool max) {
  return nlm_testargs{p.Obj(SizesFor(max).obj, 'k'), TRUE, MakeLock(p, max)};
}
nlm_lockargs MakeLockArgs(Pool& p, bool max) {
  return nlm_lockargs{p.Obj(SizesFor(max).obj, 'k'), TRUE, FALSE,
                      MakeLock(p, max), TRUE, 41};
}
nlm_cancargs MakeCancArgs(Pool& p, bool max) {
  return nlm_cancargs{p.Obj(SizesFor(max).obj, 'k'), FALSE, TRUE,
                      MakeLock(p, max)};
}
nlm_unlockargs MakeUnlockArgs(Pool& p, bool max) {
  return nlm_unlockargs{p.Obj(SizesFor(max).obj, 'k'), MakeLock(p, max)};
}
nlm_res MakeRes(Pool& p, bool max) {
  return nlm_res{p.Obj(SizesFor(max).obj, 'k'), {LCK_BLOCKED}};
}
nlm_testres MakeTestRes(Pool& p, bool max) {
  nlm_testres r{};
  r.cookie = p.Obj(SizesFor(max).obj, 'k');
  r.test_stat.stat = LCK_DENIED;
  r.test_stat.nlm_testrply_u.holder =
      nlm_holder{TRUE, 12, p.Obj(SizesFor(max).obj, 'h'), 100, 0};
  return r;
}
nlm_shareargs MakeShareArgs(Pool& p, bool max) {
  Sizes s = SizesFor(max);
  return nlm_shareargs{
      p.Obj(s.obj, 'k'),
      nlm_share{p.Str(s.name, 'c'), p.Obj(s.obj, 'f'), p.Obj(s.obj, 'o'),
                fsm_DW, fsa_RW},
      FALSE};
}
nlm_shareres MakeShareRes(Pool& p, bool max) {
  return nlm_shareres{p.Obj(SizesFor(max).obj, 'k'), LCK_GRANTED, 3};
}
nlm_notify MakeNotify(Pool& p, bool max) {
  return nlm_notify{p.Str(SizesFor(max).notify_name, 'n'), 5};
}
nlm_sm_status MakeSmStatus(Pool& p, bool max) {
  nlm_sm_status st{};
  st.mon_name = p.Str(max ? SM_MAXSTRLEN : 6, 'm');
  st.state = 9;
  for (int i = 0; i < SM_PRIV_SIZE; ++i) st.priv[i] = static_cast<char>(i);
  return st;
}

// ---- v4 samples ----
nlm4_lock MakeLock4(Pool& p, bool max) {
  Sizes s = SizesFor(max);
  return nlm4_lock{p.Str(s.name, 'c'), p.Obj(s.obj, 'f'), p.Obj(s.obj, 'o'),
                   77, 0xfffffffffffffff0ull, 0x100000000ull};
}
nlm4_testargs MakeTestArgs4(Pool& p, bool max) {
  return nlm4_testargs{p.Obj(SizesFor(max).obj, 'k'), FALSE, MakeLock4(p, max)};
}
nlm4_lockargs MakeLockArgs4(Pool& p, bool max) {
  return nlm4_lockargs{p.Obj(SizesFor(max).obj, 'k'), TRUE, TRUE,
                       MakeLock4(p, max), FALSE, 3};
}
nlm4_cancargs MakeCancArgs4(Pool& p, bool max) {
  return nlm4_cancargs{p.Obj(SizesFor(max).obj, 'k'), TRUE, FALSE,
                       MakeLock4(p, max)};
}
nlm4_unlockargs MakeUnlockArgs4(Pool& p, bool max) {
  return nlm4_unlockargs{p.Obj(SizesFor(max).obj, 'k'), MakeLock4(p, max)};
}
nlm4_res MakeRes4(Pool& p, bool max) {
  return nlm4_res{p.Obj(SizesFor(max).obj, 'k'), {NLM4_DEADLCK}};
}
nlm4_testres MakeTestRes4(Pool& p, bool max) {
  nlm4_testres r{};
  r.cookie = p.Obj(SizesFor(max).obj, 'k');
  r.stat.stat = NLM4_DENIED;
  r.stat.nlm4_testrply_u.holder = nlm4_holder{
      FALSE, 1, p.Obj(SizesFor(max).obj, 'h'), 1ull << 40, 0};
  return r;
}
nlm4_shareargs MakeShareArgs4(Pool& p, bool max) {
  Sizes s = SizesFor(max);
  return nlm4_shareargs{
      p.Obj(s.obj, 'k'),
      nlm4_share{p.Str(s.name, 'c'), p.Obj(s.obj, 'f'), p.Obj(s.obj, 'o'),
                 fsm_DRW, fsa_R},
      TRUE};
}
nlm4_shareres MakeShareRes4(Pool& p, bool max) {
  return nlm4_shareres{p.Obj(SizesFor(max).obj, 'k'), NLM4_FAILED, 0};
}
nlm4_notify MakeNotify4(Pool& p, bool max) {
  return nlm4_notify{p.Str(SizesFor(max).notify_name, 'n'), 7};
}

// ---- NSM samples ----
my_id MakeMyId(Pool& p, bool max) {
  return my_id{p.Str(max ? SM_MAXSTRLEN : 9, 'y'), 100021, 3, 16};
}
mon_id MakeMonId(Pool& p, bool max) {
  return mon_id{p.Str(max ? SM_MAXSTRLEN : 7, 'm'), MakeMyId(p, max)};
}
mon MakeMon(Pool& p, bool max) {
  mon m{};
  m.mon_id = MakeMonId(p, max);
  std::memset(m.priv, 0xab, sizeof(m.priv));
  return m;
}

// One procedure: its number and a round trip of its arguments and result.
// A null function means `void`.
struct ProcCase {
  const char* name;
  uint32_t proc;
  std::function<void(Pool&, bool)> args;
  std::function<void(Pool&, bool)> res;
};

#define LW_RT(fn, maker) \
  [](Pool& p, bool max) { ExpectRoundTrip(fn, maker(p, max)); }

std::vector<ProcCase> NlmV1Cases() {
  return {
      {"NULL", NLMPROC_NULL, nullptr, nullptr},
      {"TEST", NLMPROC_TEST, LW_RT(xdr_nlm_testargs, MakeTestArgs),
       LW_RT(xdr_nlm_testres, MakeTestRes)},
      {"LOCK", NLMPROC_LOCK, LW_RT(xdr_nlm_lockargs, MakeLockArgs),
       LW_RT(xdr_nlm_res, MakeRes)},
      {"CANCEL", NLMPROC_CANCEL, LW_RT(xdr_nlm_cancargs, MakeCancArgs),
       LW_RT(xdr_nlm_res, MakeRes)},
      {"UNLOCK", NLMPROC_UNLOCK, LW_RT(xdr_nlm_unlockargs, MakeUnlockArgs),
       LW_RT(xdr_nlm_res, MakeRes)},
      {"GRANTED", NLMPROC_GRANTED, LW_RT(xdr_nlm_testargs, MakeTestArgs),
       LW_RT(xdr_nlm_res, MakeRes)},
      {"TEST_MSG", NLMPROC_TEST_MSG, LW_RT(xdr_nlm_testargs, MakeTestArgs),
       nullptr},
      {"LOCK_MSG", NLMPROC_LOCK_MSG, LW_RT(xdr_nlm_lockargs, MakeLockArgs),
       nullptr},
      {"CANCEL_MSG", NLMPROC_CANCEL_MSG, LW_RT(xdr_nlm_cancargs, MakeCancArgs),
       nullptr},
      {"UNLOCK_MSG", NLMPROC_UNLOCK_MSG,
       LW_RT(xdr_nlm_unlockargs, MakeUnlockArgs), nullptr},
      {"GRANTED_MSG", NLMPROC_GRANTED_MSG, LW_RT(xdr_nlm_testargs, MakeTestArgs),
       nullptr},
      {"TEST_RES", NLMPROC_TEST_RES, LW_RT(xdr_nlm_testres, MakeTestRes),
       nullptr},
      {"LOCK_RES", NLMPROC_LOCK_RES, LW_RT(xdr_nlm_res, MakeRes), nullptr},
      {"CANCEL_RES", NLMPROC_CANCEL_RES, LW_RT(xdr_nlm_res, MakeRes), nullptr},
      {"UNLOCK_RES", NLMPROC_UNLOCK_RES, LW_RT(xdr_nlm_res, MakeRes), nullptr},
      {"GRANTED_RES", NLMPROC_GRANTED_RES, LW_RT(xdr_nlm_res, MakeRes), nullptr},
      {"SM_NOTIFY", NLMPROC_SM_NOTIFY, LW_RT(xdr_nlm_sm_status, MakeSmStatus),
       nullptr},
  };
}

std::vector<ProcCase> NlmV3Cases() {
  std::vector<ProcCase> cases = NlmV1Cases();
  cases.push_back({"SHARE", NLMPROC_SHARE, LW_RT(xdr_nlm_shareargs, MakeShareArgs),
                   LW_RT(xdr_nlm_shareres, MakeShareRes)});
  cases.push_back({"UNSHARE", NLMPROC_UNSHARE,
                   LW_RT(xdr_nlm_shareargs, MakeShareArgs),
                   LW_RT(xdr_nlm_shareres, MakeShareRes)});
  cases.push_back({"NM_LOCK", NLMPROC_NM_LOCK,
                   LW_RT(xdr_nlm_lockargs, MakeLockArgs),
                   LW_RT(xdr_nlm_res, MakeRes)});
  cases.push_back({"FREE_ALL", NLMPROC_FREE_ALL, LW_RT(xdr_nlm_notify, MakeNotify),
                   nullptr});
  return cases;
}

std::vector<ProcCase> NlmV4Cases() {
  return {
      {"NULL", NLMPROC4_NULL, nullptr, nullptr},
      {"TEST", NLMPROC4_TEST, LW_RT(xdr_nlm4_testargs, MakeTestArgs4),
       LW_RT(xdr_nlm4_testres, MakeTestRes4)},
      {"LOCK", NLMPROC4_LOCK, LW_RT(xdr_nlm4_lockargs, MakeLockArgs4),
       LW_RT(xdr_nlm4_res, MakeRes4)},
      {"CANCEL", NLMPROC4_CANCEL, LW_RT(xdr_nlm4_cancargs, MakeCancArgs4),
       LW_RT(xdr_nlm4_res, MakeRes4)},
      {"UNLOCK", NLMPROC4_UNLOCK, LW_RT(xdr_nlm4_unlockargs, MakeUnlockArgs4),
       LW_RT(xdr_nlm4_res, MakeRes4)},
      {"GRANTED", NLMPROC4_GRANTED, LW_RT(xdr_nlm4_testargs, MakeTestArgs4),
       LW_RT(xdr_nlm4_res, MakeRes4)},
      {"TEST_MSG", NLMPROC4_TEST_MSG, LW_RT(xdr_nlm4_testargs, MakeTestArgs4),
       nullptr},
      {"LOCK_MSG", NLMPROC4_LOCK_MSG, LW_RT(xdr_nlm4_lockargs, MakeLockArgs4),
       nullptr},
      {"CANCEL_MSG", NLMPROC4_CANCEL_MSG, LW_RT(xdr_nlm4_cancargs, MakeCancArgs4),
       nullptr},
      {"UNLOCK_MSG", NLMPROC4_UNLOCK_MSG,
       LW_RT(xdr_nlm4_unlockargs, MakeUnlockArgs4), nullptr},
      {"GRANTED_MSG", NLMPROC4_GRANTED_MSG,
       LW_RT(xdr_nlm4_testargs, MakeTestArgs4), nullptr},
      {"TEST_RES", NLMPROC4_TEST_RES, LW_RT(xdr_nlm4_testres, MakeTestRes4),
       nullptr},
      {"LOCK_RES", NLMPROC4_LOCK_RES, LW_RT(xdr_nlm4_res, MakeRes4), nullptr},
      {"CANCEL_RES", NLMPROC4_CANCEL_RES, LW_RT(xdr_nlm4_res, MakeRes4), nullptr},
      {"UNLOCK_RES", NLMPROC4_UNLOCK_RES, LW_RT(xdr_nlm4_res, MakeRes4), nullptr},
      {"GRANTED_RES", NLMPROC4_GRANTED_RES, LW_RT(xdr_nlm4_res, MakeRes4),
       nullptr},
      {"SM_NOTIFY", NLMPROC4_SM_NOTIFY, LW_RT(xdr_nlm_sm_status, MakeSmStatus),
       nullptr},
      {"SHARE", NLMPROC4_SHARE, LW_RT(xdr_nlm4_shareargs, MakeShareArgs4),
       LW_RT(xdr_nlm4_shareres, MakeShareRes4)},
      {"UNSHARE", NLMPROC4_UNSHARE, LW_RT(xdr_nlm4_shareargs, MakeShareArgs4),
       LW_RT(xdr_nlm4_shareres, MakeShareRes4)},
      {"NM_LOCK", NLMPROC4_NM_LOCK, LW_RT(xdr_nlm4_lockargs, MakeLockArgs4),
       LW_RT(xdr_nlm4_res, MakeRes4)},
      {"FREE_ALL", NLMPROC4_FREE_ALL, LW_RT(xdr_nlm4_notify, MakeNotify4),
       nullptr},
  };
}

std::vector<ProcCase> NsmCases() {
  return {
      {"SM_NULL", SM_NULL, nullptr, nullptr},
      {"SM_STAT", SM_STAT,
       [](Pool& p, bool max) {
         ExpectRoundTrip(xdr_sm_name,
                         sm_name{p.Str(max ? SM_MAXSTRLEN : 4, 's')});
       },
       [](Pool&, bool) {
         ExpectRoundTrip(xdr_sm_stat_res, sm_stat_res{stat_fail, 0});
       }},
      {"SM_MON", SM_MON, LW_RT(xdr_mon, MakeMon),
       [](Pool&, bool) {
         ExpectRoundTrip(xdr_sm_stat_res, sm_stat_res{stat_succ, 17});
       }},
      {"SM_UNMON", SM_UNMON, LW_RT(xdr_mon_id, MakeMonId),
       [](Pool&, bool) { ExpectRoundTrip(xdr_sm_stat, sm_stat{19}); }},
      {"SM_UNMON_ALL", SM_UNMON_ALL, LW_RT(xdr_my_id, MakeMyId),
       [](Pool&, bool) { ExpectRoundTrip(xdr_sm_stat, sm_stat{21}); }},
      {"SM_SIMU_CRASH", SM_SIMU_CRASH, nullptr, nullptr},
      {"SM_NOTIFY", SM_NOTIFY,
       [](Pool& p, bool max) {
         ExpectRoundTrip(xdr_stat_chge,
                         stat_chge{p.Str(max ? SM_MAXSTRLEN : 5, 'n'), 23});
       },
       nullptr},
  };
}

void RunCases(const std::vector<ProcCase>& cases, const char* program) {
  for (const ProcCase& c : cases) {
    for (bool max : {false, true}) {
      SCOPED_TRACE(absl::StrCat(program, " ", c.name, " (", c.proc, ")",
                                max ? " max-length" : ""));
      Pool pool;
      if (c.args) c.args(pool, max);
      if (c.res) c.res(pool, max);
      if (!c.args || !c.res) {
        LW_ASSERT_OK_AND_ASSIGN(std::string v,
                                XdrEncode(XdrVoid(), nullptr));
        EXPECT_TRUE(v.empty());
      }
    }
  }
}

TEST(XdrRoundTripTest, NlmVersion1EveryProcedure) {
  RunCases(NlmV1Cases(), "NLMv1");
}
TEST(XdrRoundTripTest, NlmVersion3EveryProcedure) {
  RunCases(NlmV3Cases(), "NLMv3");
}
TEST(XdrRoundTripTest, NlmVersion4EveryProcedure) {
  RunCases(NlmV4Cases(), "NLMv4");
}
TEST(XdrRoundTripTest, NsmEveryProcedure) { RunCases(NsmCases(), "NSM"); }

TEST(XdrRoundTripTest, ProcedureNumbersMatchTheProtocol) {
  EXPECT_EQ(NLM_PROG, 100021);
  EXPECT_EQ(NLM_VERS, 1);
  EXPECT_EQ(NLM_VERSX, 3);
  EXPECT_EQ(NLM4_VERS, 4);
  EXPECT_EQ(NLMPROC_TEST_RES, 11);
  EXPECT_EQ(NLMPROC_LOCK_RES, 12);
  EXPECT_EQ(NLMPROC4_GRANTED_RES, 15);
  EXPECT_EQ(NLMPROC4_SM_NOTIFY, 16);
  EXPECT_EQ(NLMPROC4_SHARE, 20);
  EXPECT_EQ(NLMPROC4_FREE_ALL, 23);
  EXPECT_EQ(SM_PROG, 100024);
  EXPECT_EQ(SM_NOTIFY, 6);
  EXPECT_EQ(NLM4_FAILED, 9);
  // Status values are not shadowed by procedure #defines.
  EXPECT_EQ(NLM4_GRANTED, 0);
  EXPECT_EQ(NLM4_DENIED, 1);
  EXPECT_EQ(LCK_GRANTED, 0);
  EXPECT_EQ(NLMPROC4_GRANTED, 5);
  EXPECT_EQ(NLM4_STALE_FH, 7);
}

TEST(XdrRoundTripTest, Nlm4LockKeepsSixtyFourBitRangeAndUnionArm) {
  Pool pool;
  nlm4_testres res = MakeTestRes4(pool, false);
  LW_ASSERT_OK_AND_ASSIGN(std::string bytes,
                          XdrEncode(XdrProc(xdr_nlm4_testres), &res));
  XdrObject<nlm4_testres> decoded(XdrProc(xdr_nlm4_testres));
  LW_ASSERT_OK(decoded.Decode(bytes));
  EXPECT_EQ(decoded.value().stat.stat, NLM4_DENIED);
  EXPECT_EQ(decoded.value().stat.nlm4_testrply_u.holder.l_offset, 1ull << 40);
  EXPECT_EQ(std::string(decoded.value().cookie.n_bytes,
                        decoded.value().cookie.n_len),
            std::string(8, 'k'));
}

// Hand-built XDR so that a field can be one byte over its bound (the
// rpcgen encoders refuse to produce such input).
class WireWriter {
 public:
  WireWriter& U32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      bytes_.push_back(static_cast<char>((v >> shift) & 0xff));
    }
    return *this;
  }
  WireWriter& Opaque(size_t n) {
    U32(static_cast<uint32_t>(n));
    bytes_.append(n, 'x');
    bytes_.append((4 - n % 4) % 4, '\0');
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// nlm4_lockargs with the given cookie, caller_name and fh lengths.
std::string Nlm4LockArgsWire(size_t cookie, size_t name, size_t fh) {
  WireWriter w;
  w.Opaque(cookie).U32(1).U32(1);                      // cookie block excl
  w.Opaque(name).Opaque(fh).Opaque(8).U32(5);          // name fh oh svid
  w.U32(0).U32(0).U32(0).U32(10).U32(0).U32(3);        // off len reclaim st
  return w.bytes();
}

TEST(XdrBoundsTest, MaximumLengthsDecode) {
  nlm4_lockargs args{};
  LW_ASSERT_OK(XdrDecode(XdrProc(xdr_nlm4_lockargs),
                         Nlm4LockArgsWire(MAXNETOBJ_SZ, LM_MAXSTRLEN,
                                          MAXNETOBJ_SZ),
                         &args));
  EXPECT_EQ(std::strlen(args.alock.caller_name), size_t{LM_MAXSTRLEN});
  EXPECT_EQ(args.alock.fh.n_len, u_int{MAXNETOBJ_SZ});
  EXPECT_EQ(args.alock.l_len, 10u);
  XdrFree(XdrProc(xdr_nlm4_lockargs), &args);
  EXPECT_EQ(args.alock.caller_name, nullptr);
}

TEST(XdrBoundsTest, OversizeCookieCallerNameOrHandleIsRejected) {
  const std::string cases[] = {
      Nlm4LockArgsWire(MAXNETOBJ_SZ + 1, 8, 32),
      Nlm4LockArgsWire(8, LM_MAXSTRLEN + 1, 32),
      Nlm4LockArgsWire(8, 8, MAXNETOBJ_SZ + 1),
  };
  for (const std::string& wire : cases) {
    nlm4_lockargs args{};
    EXPECT_THAT(XdrDecode(XdrProc(xdr_nlm4_lockargs), wire, &args),
                testing::StatusIs(absl::StatusCode::kInvalidArgument));
    // The failed decode freed what it had allocated.
    EXPECT_EQ(args.cookie.n_bytes, nullptr);
    EXPECT_EQ(args.alock.caller_name, nullptr);
  }
}

TEST(XdrBoundsTest, OversizeNotifyAndMonitorNamesAreRejected) {
  nlm_notify notify{};
  EXPECT_FALSE(XdrDecode(XdrProc(xdr_nlm_notify),
                         WireWriter().Opaque(LM_MAXNAMELEN + 1).U32(1).bytes(),
                         &notify)
                   .ok());
  stat_chge chge{};
  EXPECT_FALSE(XdrDecode(XdrProc(xdr_stat_chge),
                         WireWriter().Opaque(SM_MAXSTRLEN + 1).U32(3).bytes(),
                         &chge)
                   .ok());
  // A length word near 2^32 must fail cleanly, not allocate.
  sm_name name{};
  EXPECT_FALSE(
      XdrDecode(XdrProc(xdr_sm_name), WireWriter().U32(0xfffffffc).bytes(),
                &name)
          .ok());
}

TEST(XdrBoundsTest, EncodingAnOversizeNameFails) {
  Pool pool;
  nlm4_lockargs args = MakeLockArgs4(pool, false);
  args.alock.caller_name = pool.Str(LM_MAXSTRLEN + 1, 'z');
  EXPECT_THAT(XdrEncode(XdrProc(xdr_nlm4_lockargs), &args),
              testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace lockwarden::gateway
