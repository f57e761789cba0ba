// Test-only: libtirpc NLM client calls against the gateway, with the
// request fields in one struct (Spec) that owns the bytes the rpcgen
// structs point into.
//
// Thread safety: a CLIENT* is used by one thread at a time.
#ifndef LOCKWARDEN_GATEWAY_NLM_NLM_TEST_CLIENT_H_
#define LOCKWARDEN_GATEWAY_NLM_NLM_TEST_CLIENT_H_

#include <rpc/rpc.h>

#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/nlm/nlm_args.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway::nlm {

inline const timeval kTimeout{10, 0};

// One lock request's fields, owning the bytes the wire structs point into.
struct Spec {
  std::string caller = "client-1";
  std::string fh = "file-1";
  std::string oh = "oh-1";
  int svid = 1;
  uint64_t offset = 0;
  uint64_t length = 100;
  bool exclusive = true;
  bool block = false;
  std::string cookie = "cookie-1";
  int state = 1;
};

// The rpcgen structs of v1/v3 and v4 have the same field names; only the
// widths differ (v1/v3 offsets and lengths are 32-bit), so one template per
// argument shape serves both versions.
template <typename Lock>
Lock LockOf(Spec& s) {
  Lock l{};
  l.caller_name = s.caller.data();
  l.fh = NetobjOf(s.fh);
  l.oh = NetobjOf(s.oh);
  l.svid = s.svid;
  l.l_offset = static_cast<decltype(l.l_offset)>(s.offset);
  l.l_len = static_cast<decltype(l.l_len)>(s.length);
  return l;
}
inline nlm4_lock Lock4Of(Spec& s) { return LockOf<nlm4_lock>(s); }
inline nlm_lock Lock1Of(Spec& s) { return LockOf<nlm_lock>(s); }

template <typename LockArgs>
LockArgs LockArgsOf(Spec& s) {
  LockArgs a{};
  a.cookie = NetobjOf(s.cookie);
  a.block = s.block;
  a.exclusive = s.exclusive;
  a.alock = LockOf<decltype(a.alock)>(s);
  a.state = s.state;
  return a;
}
inline nlm4_lockargs LockArgs4(Spec& s) { return LockArgsOf<nlm4_lockargs>(s); }

template <typename UnlockArgs>
UnlockArgs UnlockArgsOf(Spec& s) {
  UnlockArgs a{};
  a.cookie = NetobjOf(s.cookie);
  a.alock = LockOf<decltype(a.alock)>(s);
  return a;
}

template <typename CancArgs>
CancArgs CancArgsOf(Spec& s) {
  CancArgs a{};
  a.cookie = NetobjOf(s.cookie);
  a.block = s.block;
  a.exclusive = s.exclusive;
  a.alock = LockOf<decltype(a.alock)>(s);
  return a;
}

template <typename TestArgs>
TestArgs TestArgsOf(Spec& s) {
  TestArgs a{};
  a.cookie = NetobjOf(s.cookie);
  a.exclusive = s.exclusive;
  a.alock = LockOf<decltype(a.alock)>(s);
  return a;
}

// Calls `proc` with `args`, hands the decoded reply to `read` and frees it;
// returns what `read` returns. A failed call fails the test (the reply is
// then zeroed).
template <typename Args, typename Res, typename Read>
auto CallAndRead(CLIENT* c, rpcproc_t proc, bool_t (*xdr_args)(XDR*, Args*),
                 Args& args, bool_t (*xdr_res)(XDR*, Res*), Read read) {
  Res r{};
  const clnt_stat st =
      clnt_call(c, proc, XdrProc(xdr_args), reinterpret_cast<caddr_t>(&args),
                XdrProc(xdr_res), reinterpret_cast<caddr_t>(&r), kTimeout);
  EXPECT_EQ(st, RPC_SUCCESS) << clnt_sperrno(st);
  auto out = read(r);
  XdrFree(XdrProc(xdr_res), &r);
  return out;
}

// The status of an nlm4_res / nlm_res reply.
inline constexpr auto kResStat = [](const auto& r) { return r.stat.stat; };

inline nlm4_stats Lock4(CLIENT* c, Spec s, uint32_t proc = NLMPROC4_LOCK) {
  nlm4_lockargs a = LockArgs4(s);
  return CallAndRead(c, proc, xdr_nlm4_lockargs, a, xdr_nlm4_res,
                     [&](const nlm4_res& r) {
                       EXPECT_EQ(NetobjBytes(r.cookie), s.cookie);
                       return r.stat.stat;
                     });
}

inline nlm4_stats Unlock4(CLIENT* c, Spec s) {
  nlm4_unlockargs a = UnlockArgsOf<nlm4_unlockargs>(s);
  return CallAndRead(c, NLMPROC4_UNLOCK, xdr_nlm4_unlockargs, a, xdr_nlm4_res,
                     kResStat);
}

inline nlm4_stats Cancel4(CLIENT* c, Spec s) {
  nlm4_cancargs a = CancArgsOf<nlm4_cancargs>(s);
  return CallAndRead(c, NLMPROC4_CANCEL, xdr_nlm4_cancargs, a, xdr_nlm4_res,
                     kResStat);
}

// TEST v4; `holder` receives the conflicting lock when DENIED.
inline nlm4_stats Test4(CLIENT* c, Spec s, nlm4_holder* holder = nullptr) {
  nlm4_testargs a = TestArgsOf<nlm4_testargs>(s);
  return CallAndRead(c, NLMPROC4_TEST, xdr_nlm4_testargs, a, xdr_nlm4_testres,
                     [&](const nlm4_testres& r) {
                       const nlm4_stats out = r.stat.stat;
                       if (holder != nullptr && out == NLM4_DENIED) {
                         *holder = r.stat.nlm4_testrply_u.holder;
                         holder->oh = {0, nullptr};
                       }
                       return out;
                     });
}

inline nlm_stats Lock1(CLIENT* c, Spec s) {
  nlm_lockargs a = LockArgsOf<nlm_lockargs>(s);
  return CallAndRead(c, NLMPROC_LOCK, xdr_nlm_lockargs, a, xdr_nlm_res,
                     kResStat);
}

inline nlm_stats Unlock1(CLIENT* c, Spec s) {
  nlm_unlockargs a = UnlockArgsOf<nlm_unlockargs>(s);
  return CallAndRead(c, NLMPROC_UNLOCK, xdr_nlm_unlockargs, a, xdr_nlm_res,
                     kResStat);
}

// TEST v1/v3; `holder` receives the conflicting lock when DENIED.
inline nlm_stats Test1(CLIENT* c, Spec s, nlm_holder* holder = nullptr) {
  nlm_testargs a = TestArgsOf<nlm_testargs>(s);
  return CallAndRead(c, NLMPROC_TEST, xdr_nlm_testargs, a, xdr_nlm_testres,
                     [&](const nlm_testres& r) {
                       const nlm_stats out = r.test_stat.stat;
                       if (holder != nullptr && out == LCK_DENIED) {
                         *holder = r.test_stat.nlm_testrply_u.holder;
                         holder->oh = {0, nullptr};
                       }
                       return out;
                     });
}

// Polls `pred` every 20 ms for at most `timeout`.
template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return pred();
}

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_NLM_TEST_CLIENT_H_
