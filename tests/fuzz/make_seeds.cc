// Writes the rpc_fuzzer seed corpus: one valid call for every procedure of
// NLM v1/v3/v4, NSM v1 and portmapper v2/v3/v4 (UDP mode), a few of them
// record-marked as TCP streams (including multi-fragment), and replies.
//
//   bazel run //tests/fuzz:make_seeds -- $PWD/tests/fuzz/corpus
//
// File format: see rpc_fuzzer.cc (first byte = mode).
#include <rpc/rpc.h>  // before the other libtirpc headers
#include <rpc/pmap_prot.h>
#include <rpc/rpcb_prot.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "gateway/rpc/record_marking.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/sm_inter.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {
namespace {

char kName[] = "client.example";
char kBytes[] = "0123456789abcdef0123456789abcdef";

netobj Obj(u_int n) { return netobj{n, kBytes}; }

nlm_lock Lock() { return {kName, Obj(32), Obj(8), 42, 0, 100}; }
nlm4_lock Lock4() { return {kName, Obj(32), Obj(8), 42, 1ull << 32, 0}; }
nlm_testargs TestArgs() { return {Obj(4), TRUE, Lock()}; }
nlm_lockargs LockArgs() { return {Obj(4), TRUE, TRUE, Lock(), FALSE, 3}; }
nlm_cancargs CancArgs() { return {Obj(4), TRUE, TRUE, Lock()}; }
nlm_unlockargs UnlockArgs() { return {Obj(4), Lock()}; }
nlm_res Res() { return {Obj(4), {LCK_GRANTED}}; }
nlm_testres TestRes() {
  nlm_testres r{};
  r.cookie = Obj(4);
  r.test_stat.stat = LCK_DENIED;
  r.test_stat.nlm_testrply_u.holder = {TRUE, 7, Obj(8), 0, 10};
  return r;
}
nlm_shareargs ShareArgs() {
  return {Obj(4), {kName, Obj(32), Obj(8), fsm_DW, fsa_RW}, FALSE};
}
nlm_notify Notify() { return {kName, 5}; }
nlm_sm_status SmStatus() {
  nlm_sm_status s{};
  s.mon_name = kName;
  s.state = 3;
  return s;
}
nlm4_testargs TestArgs4() { return {Obj(4), FALSE, Lock4()}; }
nlm4_lockargs LockArgs4() { return {Obj(4), FALSE, TRUE, Lock4(), TRUE, 5}; }
nlm4_cancargs CancArgs4() { return {Obj(4), FALSE, TRUE, Lock4()}; }
nlm4_unlockargs UnlockArgs4() { return {Obj(4), Lock4()}; }
nlm4_res Res4() { return {Obj(4), {NLM4_DENIED}}; }
nlm4_testres TestRes4() {
  nlm4_testres r{};
  r.cookie = Obj(4);
  r.stat.stat = NLM4_DENIED;
  r.stat.nlm4_testrply_u.holder = {FALSE, 7, Obj(8), 1, 0};
  return r;
}
nlm4_shareargs ShareArgs4() {
  return {Obj(4), {kName, Obj(32), Obj(8), fsm_DR, fsa_R}, TRUE};
}
nlm4_notify Notify4() { return {kName, 7}; }

class SeedWriter {
 public:
  explicit SeedWriter(std::string dir) : dir_(std::move(dir)) {}

  template <typename T>
  void Call(const std::string& name, uint32_t prog, uint32_t vers,
            uint32_t proc, bool_t (*enc)(XDR*, T*), T args) {
    Write(name, prog, vers, proc, XdrProc(enc), &args);
  }
  void VoidCall(const std::string& name, uint32_t prog, uint32_t vers,
                uint32_t proc) {
    Write(name, prog, vers, proc, XdrVoid(), nullptr);
  }
  void Raw(const std::string& name, char mode, const std::string& payload) {
    std::ofstream out(dir_ + "/" + name, std::ios::binary);
    out << mode << payload;
    ++written_;
  }
  int written() const { return written_; }

 private:
  void Write(const std::string& name, uint32_t prog, uint32_t vers,
             uint32_t proc, xdrproc_t enc, const void* args) {
    CallCredentials creds = CallCredentials::None();
    if (written_ % 2 == 1) {  // half the seeds carry AUTH_SYS
      AuthSysParams p;
      p.machine_name = "client.example";
      p.uid = 1000;
      p.gid = 1000;
      p.gids = {1000, 27};
      creds = CallCredentials::Sys(p);
    }
    absl::StatusOr<std::string> msg =
        EncodeCall(0x1000 + written_, CallTarget{prog, vers, proc}, creds, enc,
                   args);
    if (!msg.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(),
                   msg.status().ToString().c_str());
      std::exit(1);
    }
    Raw("udp_" + name, '\0', *msg);
  }

  std::string dir_;
  int written_ = 0;
};

void WriteNlm13(SeedWriter& w, uint32_t v) {
  const std::string p = "nlm" + std::to_string(v) + "_";
  w.VoidCall(p + "null", NLM_PROG, v, NLMPROC_NULL);
  w.Call(p + "test", NLM_PROG, v, NLMPROC_TEST, xdr_nlm_testargs, TestArgs());
  w.Call(p + "lock", NLM_PROG, v, NLMPROC_LOCK, xdr_nlm_lockargs, LockArgs());
  w.Call(p + "cancel", NLM_PROG, v, NLMPROC_CANCEL, xdr_nlm_cancargs,
         CancArgs());
  w.Call(p + "unlock", NLM_PROG, v, NLMPROC_UNLOCK, xdr_nlm_unlockargs,
         UnlockArgs());
  w.Call(p + "granted", NLM_PROG, v, NLMPROC_GRANTED, xdr_nlm_testargs,
         TestArgs());
  w.Call(p + "test_msg", NLM_PROG, v, NLMPROC_TEST_MSG, xdr_nlm_testargs,
         TestArgs());
  w.Call(p + "lock_msg", NLM_PROG, v, NLMPROC_LOCK_MSG, xdr_nlm_lockargs,
         LockArgs());
  w.Call(p + "cancel_msg", NLM_PROG, v, NLMPROC_CANCEL_MSG, xdr_nlm_cancargs,
         CancArgs());
  w.Call(p + "unlock_msg", NLM_PROG, v, NLMPROC_UNLOCK_MSG,
         xdr_nlm_unlockargs, UnlockArgs());
  w.Call(p + "granted_msg", NLM_PROG, v, NLMPROC_GRANTED_MSG,
         xdr_nlm_testargs, TestArgs());
  w.Call(p + "test_res", NLM_PROG, v, NLMPROC_TEST_RES, xdr_nlm_testres,
         TestRes());
  w.Call(p + "lock_res", NLM_PROG, v, NLMPROC_LOCK_RES, xdr_nlm_res, Res());
  w.Call(p + "cancel_res", NLM_PROG, v, NLMPROC_CANCEL_RES, xdr_nlm_res,
         Res());
  w.Call(p + "unlock_res", NLM_PROG, v, NLMPROC_UNLOCK_RES, xdr_nlm_res,
         Res());
  w.Call(p + "granted_res", NLM_PROG, v, NLMPROC_GRANTED_RES, xdr_nlm_res,
         Res());
  w.Call(p + "sm_notify", NLM_PROG, v, NLMPROC_SM_NOTIFY, xdr_nlm_sm_status,
         SmStatus());
  if (v != NLM_VERSX) return;
  w.Call(p + "share", NLM_PROG, v, NLMPROC_SHARE, xdr_nlm_shareargs,
         ShareArgs());
  w.Call(p + "unshare", NLM_PROG, v, NLMPROC_UNSHARE, xdr_nlm_shareargs,
         ShareArgs());
  w.Call(p + "nm_lock", NLM_PROG, v, NLMPROC_NM_LOCK, xdr_nlm_lockargs,
         LockArgs());
  w.Call(p + "free_all", NLM_PROG, v, NLMPROC_FREE_ALL, xdr_nlm_notify,
         Notify());
}

void WriteNlm4(SeedWriter& w) {
  const uint32_t v = NLM4_VERS;
  w.VoidCall("nlm4_null", NLM_PROG, v, NLMPROC4_NULL);
  w.Call("nlm4_test", NLM_PROG, v, NLMPROC4_TEST, xdr_nlm4_testargs,
         TestArgs4());
  w.Call("nlm4_lock", NLM_PROG, v, NLMPROC4_LOCK, xdr_nlm4_lockargs,
         LockArgs4());
  w.Call("nlm4_cancel", NLM_PROG, v, NLMPROC4_CANCEL, xdr_nlm4_cancargs,
         CancArgs4());
  w.Call("nlm4_unlock", NLM_PROG, v, NLMPROC4_UNLOCK, xdr_nlm4_unlockargs,
         UnlockArgs4());
  w.Call("nlm4_granted", NLM_PROG, v, NLMPROC4_GRANTED, xdr_nlm4_testargs,
         TestArgs4());
  w.Call("nlm4_test_msg", NLM_PROG, v, NLMPROC4_TEST_MSG, xdr_nlm4_testargs,
         TestArgs4());
  w.Call("nlm4_lock_msg", NLM_PROG, v, NLMPROC4_LOCK_MSG, xdr_nlm4_lockargs,
         LockArgs4());
  w.Call("nlm4_cancel_msg", NLM_PROG, v, NLMPROC4_CANCEL_MSG,
         xdr_nlm4_cancargs, CancArgs4());
  w.Call("nlm4_unlock_msg", NLM_PROG, v, NLMPROC4_UNLOCK_MSG,
         xdr_nlm4_unlockargs, UnlockArgs4());
  w.Call("nlm4_granted_msg", NLM_PROG, v, NLMPROC4_GRANTED_MSG,
         xdr_nlm4_testargs, TestArgs4());
  w.Call("nlm4_test_res", NLM_PROG, v, NLMPROC4_TEST_RES, xdr_nlm4_testres,
         TestRes4());
  w.Call("nlm4_lock_res", NLM_PROG, v, NLMPROC4_LOCK_RES, xdr_nlm4_res,
         Res4());
  w.Call("nlm4_cancel_res", NLM_PROG, v, NLMPROC4_CANCEL_RES, xdr_nlm4_res,
         Res4());
  w.Call("nlm4_unlock_res", NLM_PROG, v, NLMPROC4_UNLOCK_RES, xdr_nlm4_res,
         Res4());
  w.Call("nlm4_granted_res", NLM_PROG, v, NLMPROC4_GRANTED_RES, xdr_nlm4_res,
         Res4());
  w.Call("nlm4_sm_notify", NLM_PROG, v, NLMPROC4_SM_NOTIFY, xdr_nlm_sm_status,
         SmStatus());
  w.Call("nlm4_share", NLM_PROG, v, NLMPROC4_SHARE, xdr_nlm4_shareargs,
         ShareArgs4());
  w.Call("nlm4_unshare", NLM_PROG, v, NLMPROC4_UNSHARE, xdr_nlm4_shareargs,
         ShareArgs4());
  w.Call("nlm4_nm_lock", NLM_PROG, v, NLMPROC4_NM_LOCK, xdr_nlm4_lockargs,
         LockArgs4());
  w.Call("nlm4_free_all", NLM_PROG, v, NLMPROC4_FREE_ALL, xdr_nlm4_notify,
         Notify4());
}

void WriteNsm(SeedWriter& w) {
  my_id id{kName, NLM_PROG, NLM_VERSX, NLMPROC_SM_NOTIFY};
  mon_id mid{kName, id};
  mon m{};
  m.mon_id = mid;
  w.VoidCall("sm_null", SM_PROG, SM_VERS, SM_NULL);
  w.Call("sm_stat", SM_PROG, SM_VERS, SM_STAT, xdr_sm_name, sm_name{kName});
  w.Call("sm_mon", SM_PROG, SM_VERS, SM_MON, xdr_mon, m);
  w.Call("sm_unmon", SM_PROG, SM_VERS, SM_UNMON, xdr_mon_id, mid);
  w.Call("sm_unmon_all", SM_PROG, SM_VERS, SM_UNMON_ALL, xdr_my_id, id);
  w.VoidCall("sm_simu_crash", SM_PROG, SM_VERS, SM_SIMU_CRASH);
  w.Call("sm_notify", SM_PROG, SM_VERS, SM_NOTIFY, xdr_stat_chge,
         stat_chge{kName, 9});
}

void WritePortmap(SeedWriter& w) {
  pmap m{NLM_PROG, NLM4_VERS, IPPROTO_UDP, 4045};
  w.VoidCall("pmap_null", PMAPPROG, PMAPVERS, PMAPPROC_NULL);
  w.Call("pmap_set", PMAPPROG, PMAPVERS, PMAPPROC_SET, xdr_pmap, m);
  w.Call("pmap_unset", PMAPPROG, PMAPVERS, PMAPPROC_UNSET, xdr_pmap, m);
  w.Call("pmap_getport", PMAPPROG, PMAPVERS, PMAPPROC_GETPORT, xdr_pmap, m);
  w.VoidCall("pmap_dump", PMAPPROG, PMAPVERS, PMAPPROC_DUMP);
  char netid[] = "tcp6", addr[] = "::1.15.205", owner[] = "0";
  rpcb r{NLM_PROG, NLM4_VERS, netid, addr, owner};
  for (uint32_t v : {3u, 4u}) {
    const std::string p = "rpcb" + std::to_string(v) + "_";
    w.VoidCall(p + "null", PMAPPROG, v, 0);
    w.Call(p + "set", PMAPPROG, v, RPCBPROC_SET, xdr_rpcb, r);
    w.Call(p + "unset", PMAPPROG, v, RPCBPROC_UNSET, xdr_rpcb, r);
    w.Call(p + "getaddr", PMAPPROG, v, RPCBPROC_GETADDR, xdr_rpcb, r);
    w.VoidCall(p + "dump", PMAPPROG, v, RPCBPROC_DUMP);
  }
  w.Call("rpcb4_getversaddr", PMAPPROG, 4u, RPCBPROC_GETVERSADDR, xdr_rpcb, r);
  w.Call("rpcb4_getaddrlist", PMAPPROG, 4u, RPCBPROC_GETADDRLIST, xdr_rpcb, r);
}

// TCP streams and replies built from calls.
void WriteStreamsAndReplies(SeedWriter& w) {
  nlm4_lockargs args = LockArgs4();
  std::string call = *EncodeCall(7, CallTarget{NLM_PROG, NLM4_VERS,
                                               NLMPROC4_LOCK},
                                 CallCredentials::None(),
                                 XdrProc(xdr_nlm4_lockargs), &args);
  w.Raw("tcp_lock_one_fragment", '\1', std::string(1, '\x03') +
                                           EncodeRecord(call));
  w.Raw("tcp_lock_three_fragments", '\1',
        std::string(1, '\x10') + EncodeRecord(call, call.size() / 3 + 1));
  w.Raw("tcp_two_records", '\1',
        std::string(1, '\x3c') + EncodeRecord(call) + EncodeRecord(call));
  w.Raw("tcp_oversize_header", '\1', std::string("\x07\x80\x10\x00\x00", 5));
  nlm4_testres tr = TestRes4();
  w.Raw("reply_testres", '\2',
        *EncodeSuccessReply(7, XdrProc(xdr_nlm4_testres), &tr));
  sm_stat_res sr{stat_succ, 3};
  w.Raw("reply_sm_stat_res", '\2',
        *EncodeSuccessReply(8, XdrProc(xdr_sm_stat_res), &sr));
  w.Raw("reply_prog_mismatch", '\2', EncodeProgMismatch(9, 1, 4));
  w.Raw("reply_auth_error", '\2', EncodeAuthError(10, AuthStat::kBadCred));
  w.Raw("reply_rpc_mismatch", '\2', EncodeRpcMismatch(11));
  std::string bad_version = call;
  bad_version[11] = 3;
  w.Raw("udp_rpc_version_3", '\0', bad_version);
  std::string gss = call;
  gss[27] = 6;
  w.Raw("udp_rpcsec_gss", '\0', gss);
}

}  // namespace
}  // namespace lockwarden::gateway

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  lockwarden::gateway::SeedWriter w(argv[1]);
  lockwarden::gateway::WriteNlm13(w, NLM_VERS);
  lockwarden::gateway::WriteNlm13(w, NLM_VERSX);
  lockwarden::gateway::WriteNlm4(w);
  lockwarden::gateway::WriteNsm(w);
  lockwarden::gateway::WritePortmap(w);
  lockwarden::gateway::WriteStreamsAndReplies(w);
  std::printf("wrote %d seeds to %s\n", w.written(), argv[1]);
  return 0;
}
