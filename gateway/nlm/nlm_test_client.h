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

inline nlm4_lock Lock4Of(Spec& s) {
  nlm4_lock l{};
  l.caller_name = s.caller.data();
  l.fh = NetobjOf(s.fh);
  l.oh = NetobjOf(s.oh);
  l.svid = s.svid;
  l.l_offset = s.offset;
  l.l_len = s.length;
  return l;
}

inline nlm_lock Lock1Of(Spec& s) {
  nlm_lock l{};
  l.caller_name = s.caller.data();
  l.fh = NetobjOf(s.fh);
  l.oh = NetobjOf(s.oh);
  l.svid = s.svid;
  l.l_offset = static_cast<u_int>(s.offset);
  l.l_len = static_cast<u_int>(s.length);
  return l;
}

inline nlm4_lockargs LockArgs4(Spec& s) {
  nlm4_lockargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.block = s.block;
  a.exclusive = s.exclusive;
  a.alock = Lock4Of(s);
  a.state = s.state;
  return a;
}

inline nlm4_stats Lock4(CLIENT* c, Spec s, uint32_t proc = NLMPROC4_LOCK) {
  nlm4_lockargs a = LockArgs4(s);
  nlm4_res r{};
  clnt_stat st = clnt_call(c, proc, XdrProc(xdr_nlm4_lockargs),
                           reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm4_res),
                           reinterpret_cast<caddr_t>(&r), kTimeout);
  EXPECT_EQ(st, RPC_SUCCESS) << clnt_sperrno(st);
  EXPECT_EQ(NetobjBytes(r.cookie), s.cookie);
  const nlm4_stats out = r.stat.stat;
  XdrFree(XdrProc(xdr_nlm4_res), &r);
  return out;
}

inline nlm4_stats Unlock4(CLIENT* c, Spec s) {
  nlm4_unlockargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.alock = Lock4Of(s);
  nlm4_res r{};
  EXPECT_EQ(clnt_call(c, NLMPROC4_UNLOCK, XdrProc(xdr_nlm4_unlockargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm4_res),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm4_stats out = r.stat.stat;
  XdrFree(XdrProc(xdr_nlm4_res), &r);
  return out;
}

inline nlm4_stats Cancel4(CLIENT* c, Spec s) {
  nlm4_cancargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.block = s.block;
  a.exclusive = s.exclusive;
  a.alock = Lock4Of(s);
  nlm4_res r{};
  EXPECT_EQ(clnt_call(c, NLMPROC4_CANCEL, XdrProc(xdr_nlm4_cancargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm4_res),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm4_stats out = r.stat.stat;
  XdrFree(XdrProc(xdr_nlm4_res), &r);
  return out;
}

// TEST v4; `holder` receives the conflicting lock when DENIED.
inline nlm4_stats Test4(CLIENT* c, Spec s, nlm4_holder* holder = nullptr) {
  nlm4_testargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.exclusive = s.exclusive;
  a.alock = Lock4Of(s);
  nlm4_testres r{};
  EXPECT_EQ(clnt_call(c, NLMPROC4_TEST, XdrProc(xdr_nlm4_testargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm4_testres),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm4_stats out = r.stat.stat;
  if (holder != nullptr && out == NLM4_DENIED) {
    *holder = r.stat.nlm4_testrply_u.holder;
    holder->oh = {0, nullptr};
  }
  XdrFree(XdrProc(xdr_nlm4_testres), &r);
  return out;
}

inline nlm_stats Lock1(CLIENT* c, Spec s) {
  nlm_lockargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.block = s.block;
  a.exclusive = s.exclusive;
  a.alock = Lock1Of(s);
  a.state = s.state;
  nlm_res r{};
  EXPECT_EQ(clnt_call(c, NLMPROC_LOCK, XdrProc(xdr_nlm_lockargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm_res),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm_stats out = r.stat.stat;
  XdrFree(XdrProc(xdr_nlm_res), &r);
  return out;
}

inline nlm_stats Unlock1(CLIENT* c, Spec s) {
  nlm_unlockargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.alock = Lock1Of(s);
  nlm_res r{};
  EXPECT_EQ(clnt_call(c, NLMPROC_UNLOCK, XdrProc(xdr_nlm_unlockargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm_res),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm_stats out = r.stat.stat;
  XdrFree(XdrProc(xdr_nlm_res), &r);
  return out;
}

inline nlm_stats Test1(CLIENT* c, Spec s, nlm_holder* holder = nullptr) {
  nlm_testargs a{};
  a.cookie = NetobjOf(s.cookie);
  a.exclusive = s.exclusive;
  a.alock = Lock1Of(s);
  nlm_testres r{};
  EXPECT_EQ(clnt_call(c, NLMPROC_TEST, XdrProc(xdr_nlm_testargs),
                      reinterpret_cast<caddr_t>(&a), XdrProc(xdr_nlm_testres),
                      reinterpret_cast<caddr_t>(&r), kTimeout),
            RPC_SUCCESS);
  const nlm_stats out = r.test_stat.stat;
  if (holder != nullptr && out == LCK_DENIED) {
    *holder = r.test_stat.nlm_testrply_u.holder;
    holder->oh = {0, nullptr};
  }
  XdrFree(XdrProc(xdr_nlm_testres), &r);
  return out;
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
