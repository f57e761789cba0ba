// nlm_legacy_client: NLM versions 1 and 3 (32-bit offsets) from the
// project's own nlm_prot.x through plain libtirpc (clnt_create +
// clnt_call), for conformance tests in network namespaces. libnfs speaks
// only NLM4, so this is the peer for the older versions; it shares the
// rpcgen XDR routines with the gateway but none of its code.
//
// Usage:
//   nlm_legacy_client --server HOST [--udp] --vers 1|3 --caller NAME
//       --svid N --fh HEX [--oh HEX] [--offset N] [--length N]
//       [--exclusive] [--state N] [--access N] [--mode N] OP...
//   OP: test | lock | nm_lock | unlock | cancel | share | unshare |
//       free_all
// The server's rpcbind is asked for NLM at --vers. Each call prints one
// line "OP STATUS [detail]" (STATUS: LCK_GRANTED, LCK_DENIED, ...; a
// denied TEST adds "holder svid=N offset=N length=N exclusive=0|1").
// free_all has no reply: it prints "free_all SENT".
// Exit status: 0 if every call got a reply, 1 on an RPC error, 2 on usage.
#include <rpc/rpc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gateway/xdr/nlm_prot.h"

namespace {

constexpr timeval kCallTimeout{10, 0};

// xdr_void is declared without parameters; this typed stand-in casts to
// xdrproc_t like every rpcgen routine.
bool_t XdrVoid(XDR* /*xdrs*/, void* /*unused*/) { return TRUE; }

struct Options {
  std::string server;
  std::string proto = "tcp";
  unsigned long vers = 3;
  std::string caller;
  int svid = -1;
  std::string fh;
  std::string oh = "owner";
  uint32_t offset = 0;
  uint32_t length = 1;
  bool exclusive = false;
  int state = 1;
  int access = fsa_RW;
  int mode = fsm_DN;
  std::vector<std::string> ops;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "nlm_legacy_client: %s\nusage: nlm_legacy_client --server HOST "
               "[--udp] --vers 1|3 --caller NAME --svid N --fh HEX [--oh HEX] "
               "[--offset N] [--length N] [--exclusive] [--state N] "
               "[--access N] [--mode N] OP...\n",
               why);
  std::exit(2);
}

bool FromHex(const std::string& hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    char* end = nullptr;
    const std::string byte = hex.substr(i, 2);
    const long v = std::strtol(byte.c_str(), &end, 16);
    if (end == nullptr || *end != '\0') return false;
    out->push_back(static_cast<char>(v));
  }
  return true;
}

uint32_t ParseU32(const char* flag, const char* v) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 0);
  if (*v == '\0' || *end != '\0' || n > UINT32_MAX) Usage(flag);
  return static_cast<uint32_t>(n);
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--server") {
      o.server = value();
    } else if (a == "--udp") {
      o.proto = "udp";
    } else if (a == "--vers") {
      o.vers = ParseU32("--vers", value());
    } else if (a == "--caller") {
      o.caller = value();
    } else if (a == "--svid") {
      o.svid = static_cast<int>(ParseU32("--svid", value()));
    } else if (a == "--fh") {
      if (!FromHex(value(), &o.fh)) Usage("--fh is not hex");
    } else if (a == "--oh") {
      if (!FromHex(value(), &o.oh)) Usage("--oh is not hex");
    } else if (a == "--offset") {
      o.offset = ParseU32("--offset", value());
    } else if (a == "--length") {
      o.length = ParseU32("--length", value());
    } else if (a == "--exclusive") {
      o.exclusive = true;
    } else if (a == "--state") {
      o.state = static_cast<int>(ParseU32("--state", value()));
    } else if (a == "--access") {
      o.access = static_cast<int>(ParseU32("--access", value()));
    } else if (a == "--mode") {
      o.mode = static_cast<int>(ParseU32("--mode", value()));
    } else if (!a.empty() && a[0] == '-') {
      Usage(("unknown flag " + a).c_str());
    } else {
      o.ops.push_back(a);
    }
  }
  if (o.server.empty() || o.caller.empty() || o.svid < 0 || o.fh.empty() ||
      o.ops.empty()) {
    Usage("--server, --caller, --svid, --fh and an OP are required");
  }
  if (o.vers != 1 && o.vers != 3) Usage("--vers must be 1 or 3");
  return o;
}

const char* StatName(nlm_stats s) {
  switch (s) {
    case LCK_GRANTED: return "LCK_GRANTED";
    case LCK_DENIED: return "LCK_DENIED";
    case LCK_DENIED_NOLOCKS: return "LCK_DENIED_NOLOCKS";
    case LCK_BLOCKED: return "LCK_BLOCKED";
    case LCK_DENIED_GRACE_PERIOD: return "LCK_DENIED_GRACE_PERIOD";
  }
  return "LCK_UNKNOWN";
}

// Owns the bytes the rpcgen structs point into for one invocation.
class Calls {
 public:
  Calls(CLIENT* clnt, Options& o) : clnt_(clnt), o_(o) {}

  // Returns false on an RPC-level failure (already printed).
  bool Run(const std::string& op) {
    if (op == "test") return Test();
    if (op == "lock" || op == "nm_lock") return Lock(op);
    if (op == "unlock") return Unlock();
    if (op == "cancel") return Cancel();
    if (op == "share" || op == "unshare") return Share(op);
    if (op == "free_all") return FreeAll();
    Usage(("unknown OP " + op).c_str());
  }

 private:
  netobj Obj(std::string& s) {
    return netobj{static_cast<u_int>(s.size()), s.data()};
  }
  nlm_lock Alock() {
    nlm_lock l{};
    l.caller_name = o_.caller.data();
    l.fh = Obj(o_.fh);
    l.oh = Obj(o_.oh);
    l.svid = o_.svid;
    l.l_offset = o_.offset;
    l.l_len = o_.length;
    return l;
  }
  bool Call(const std::string& op, rpcproc_t proc, xdrproc_t xargs, void* args,
            xdrproc_t xres, void* res) {
    const clnt_stat st = clnt_call(clnt_, proc, xargs,
                                   static_cast<caddr_t>(args), xres,
                                   static_cast<caddr_t>(res), kCallTimeout);
    if (st != RPC_SUCCESS) {
      std::printf("%s RPC_ERROR %s\n", op.c_str(), clnt_sperrno(st));
      return false;
    }
    return true;
  }
  void Free(xdrproc_t xres, void* res) {
    clnt_freeres(clnt_, xres, static_cast<caddr_t>(res));
  }

  bool Test() {
    nlm_testargs args{};
    args.cookie = Obj(cookie_);
    args.exclusive = o_.exclusive;
    args.alock = Alock();
    nlm_testres res{};
    if (!Call("test", NLMPROC_TEST, reinterpret_cast<xdrproc_t>(xdr_nlm_testargs),
              &args, reinterpret_cast<xdrproc_t>(xdr_nlm_testres), &res)) {
      return false;
    }
    const nlm_stats s = res.test_stat.stat;
    if (s == LCK_DENIED) {
      const nlm_holder& h = res.test_stat.nlm_testrply_u.holder;
      std::printf("test %s holder svid=%d offset=%u length=%u exclusive=%d\n",
                  StatName(s), h.svid, h.l_offset, h.l_len, h.exclusive ? 1 : 0);
    } else {
      std::printf("test %s\n", StatName(s));
    }
    Free(reinterpret_cast<xdrproc_t>(xdr_nlm_testres), &res);
    return true;
  }

  bool Res(const std::string& op, rpcproc_t proc, xdrproc_t xargs, void* args) {
    nlm_res res{};
    if (!Call(op, proc, xargs, args, reinterpret_cast<xdrproc_t>(xdr_nlm_res),
              &res)) {
      return false;
    }
    std::printf("%s %s\n", op.c_str(), StatName(res.stat.stat));
    Free(reinterpret_cast<xdrproc_t>(xdr_nlm_res), &res);
    return true;
  }

  bool Lock(const std::string& op) {
    if (op == "nm_lock" && o_.vers != 3) Usage("nm_lock needs --vers 3");
    nlm_lockargs args{};
    args.cookie = Obj(cookie_);
    args.block = false;
    args.exclusive = o_.exclusive;
    args.alock = Alock();
    args.reclaim = false;
    args.state = o_.state;
    return Res(op, op == "lock" ? NLMPROC_LOCK : NLMPROC_NM_LOCK,
               reinterpret_cast<xdrproc_t>(xdr_nlm_lockargs), &args);
  }

  bool Unlock() {
    nlm_unlockargs args{};
    args.cookie = Obj(cookie_);
    args.alock = Alock();
    return Res("unlock", NLMPROC_UNLOCK,
               reinterpret_cast<xdrproc_t>(xdr_nlm_unlockargs), &args);
  }

  bool Cancel() {
    nlm_cancargs args{};
    args.cookie = Obj(cookie_);
    args.block = true;
    args.exclusive = o_.exclusive;
    args.alock = Alock();
    return Res("cancel", NLMPROC_CANCEL,
               reinterpret_cast<xdrproc_t>(xdr_nlm_cancargs), &args);
  }

  bool Share(const std::string& op) {
    if (o_.vers != 3) Usage("share/unshare need --vers 3");
    nlm_shareargs args{};
    args.cookie = Obj(cookie_);
    args.share.caller_name = o_.caller.data();
    args.share.fh = Obj(o_.fh);
    args.share.oh = Obj(o_.oh);
    args.share.mode = static_cast<fsh_mode>(o_.mode);
    args.share.access = static_cast<fsh_access>(o_.access);
    args.reclaim = false;
    nlm_shareres res{};
    if (!Call(op, op == "share" ? NLMPROC_SHARE : NLMPROC_UNSHARE,
              reinterpret_cast<xdrproc_t>(xdr_nlm_shareargs), &args,
              reinterpret_cast<xdrproc_t>(xdr_nlm_shareres), &res)) {
      return false;
    }
    std::printf("%s %s\n", op.c_str(), StatName(res.stat));
    Free(reinterpret_cast<xdrproc_t>(xdr_nlm_shareres), &res);
    return true;
  }

  bool FreeAll() {
    if (o_.vers != 3) Usage("free_all needs --vers 3");
    nlm_notify args{};
    args.name = o_.caller.data();
    args.state = o_.state;
    // FREE_ALL has no reply: a zero timeout sends it once and returns
    // RPC_TIMEDOUT, which is the expected outcome of a void one-way call.
    const timeval no_wait{0, 0};
    const clnt_stat st =
        clnt_call(clnt_, NLMPROC_FREE_ALL,
                  reinterpret_cast<xdrproc_t>(xdr_nlm_notify),
                  reinterpret_cast<caddr_t>(&args),
                  reinterpret_cast<xdrproc_t>(XdrVoid), nullptr, no_wait);
    if (st != RPC_SUCCESS && st != RPC_TIMEDOUT) {
      std::printf("free_all RPC_ERROR %s\n", clnt_sperrno(st));
      return false;
    }
    std::printf("free_all SENT\n");
    return true;
  }

  CLIENT* clnt_;
  Options& o_;
  std::string cookie_ = "legacy";
};

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  CLIENT* clnt =
      clnt_create(o.server.c_str(), NLM_PROG, o.vers, o.proto.c_str());
  if (clnt == nullptr) {
    std::fprintf(stderr, "nlm_legacy_client: %s\n",
                 clnt_spcreateerror(o.server.c_str()));
    return 1;
  }
  // A fixed, reasonably unique AUTH_SYS identity, as lockd would send.
  clnt->cl_auth = authunix_create(const_cast<char*>(o.caller.c_str()), 0, 0,
                                  0, nullptr);
  Calls calls(clnt, o);
  int rc = 0;
  for (const std::string& op : o.ops) {
    if (!calls.Run(op)) rc = 1;
    std::fflush(stdout);
  }
  if (clnt->cl_auth != nullptr) auth_destroy(clnt->cl_auth);
  clnt_destroy(clnt);
  return rc;
}
