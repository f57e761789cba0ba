#include "gateway/nlm/nlm_service.h"

#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/nlm/request_id.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nlm {
namespace {

// Wire arguments -> NlmArgs; v4 types carry their version implicitly.
NlmArgs Normalize(const nlm_testargs& a, uint32_t v) { return FromWire(a, v); }
NlmArgs Normalize(const nlm4_testargs& a, uint32_t) { return FromWire(a); }
NlmArgs Normalize(const nlm_lockargs& a, uint32_t v) { return FromWire(a, v); }
NlmArgs Normalize(const nlm4_lockargs& a, uint32_t) { return FromWire(a); }
NlmArgs Normalize(const nlm_cancargs& a, uint32_t v) { return FromWire(a, v); }
NlmArgs Normalize(const nlm4_cancargs& a, uint32_t) { return FromWire(a); }
NlmArgs Normalize(const nlm_unlockargs& a, uint32_t v) {
  return FromWire(a, v);
}
NlmArgs Normalize(const nlm4_unlockargs& a, uint32_t) { return FromWire(a); }
NlmShareArgs NormalizeShare(const nlm_shareargs& a, uint32_t v) {
  return FromWire(a, v);
}
NlmShareArgs NormalizeShare(const nlm4_shareargs& a, uint32_t) {
  return FromWire(a);
}

const char* TransportName(TransportKind t) {
  return t == TransportKind::kTcp ? "tcp" : "udp";
}

std::string RandomNonce() {
  absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(gen)),
                      absl::Hex(absl::Uniform<uint64_t>(gen)));
}

}  // namespace

NlmService::NlmService(NlmServiceOptions options, ServerClient* server,
                       NlmCallbackClient* callbacks, GrantDelivery* grants)
    : options_(std::move(options)),
      server_(server),
      callbacks_(callbacks),
      grants_(grants),
      process_nonce_(RandomNonce()),
      session_(std::make_unique<SessionClient>(server, options_.use_session)) {}

void NlmService::CallServer(const PendingPtr& p, v1::SessionCall call,
                            const char* rpc,
                            std::function<void(const v1::SessionResult&)> on_ok) {
  session_->Call(std::move(call),
                 [this, p, rpc, on_ok = std::move(on_ok)](
                     const grpc::Status& status, const v1::SessionResult& r) {
                   if (!status.ok()) {
                     Finish(p, ServerFailure(p, status, rpc));
                     return;
                   }
                   on_ok(r);
                 });
}

NlmServiceStats NlmService::stats() const {
  NlmServiceStats s;
  s.calls = calls_.load();
  s.edge_rejections = edge_rejections_.load();
  s.server_errors = server_errors_.load();
  s.mon_calls = mon_calls_.load();
  s.res_sent = res_sent_.load();
  s.res_failed = res_failed_.load();
  s.granted_res = granted_res_.load();
  return s;
}

bool NlmService::WaitIdle(absl::Duration timeout) const {
  const absl::Time give_up = absl::Now() + timeout;
  // Bounded poll: shutdown only, at most timeout / 10 ms iterations.
  while (in_flight_.load() > 0) {
    if (absl::Now() >= give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

absl::Status NlmService::Register(Dispatcher& dispatcher) {
  if (options_.gateway_name.empty()) {
    return absl::InvalidArgumentError("NLM service needs a gateway name");
  }
  for (uint32_t vers : {uint32_t{NLM_VERS}, uint32_t{NLM_VERSX},
                        uint32_t{NLM4_VERS}}) {
    absl::Status s = RegisterVersion(dispatcher, vers);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

template <typename WireArgs>
absl::Status NlmService::RegisterLockProc(Dispatcher& d, uint32_t vers,
                                          uint32_t proc, const char* name,
                                          bool_t (*decode)(XDR*, WireArgs*),
                                          xdrproc_t result_encoder, LockOp op,
                                          Mode mode) {
  ProcedureSpec spec;
  spec.name = absl::StrCat(name, " v", vers);
  spec.args_decoder = XdrProc(decode);
  spec.args_size = sizeof(WireArgs);
  spec.result_encoder = mode == Mode::kMsg ? XdrVoid() : result_encoder;
  // TEST changes nothing: a retransmission may simply run again.
  spec.use_drc = op != LockOp::kTest;
  spec.handler = [this, vers, op, mode](std::unique_ptr<RpcCall> call) {
    WireArgs* wire = call->args<WireArgs>();
    if (wire == nullptr) {
      (void)call->ReplyError(AcceptStat::kSystemErr);
      return;
    }
    NlmArgs args = Normalize(*wire, vers);
    const bool mutation = op == LockOp::kLock || op == LockOp::kNmLock ||
                          op == LockOp::kCancel || op == LockOp::kUnlock;
    const ResultKind kind =
        op == LockOp::kTest ? ResultKind::kTestRes : ResultKind::kRes;
    std::string cookie = args.cookie;
    PendingPtr p =
        Begin(std::move(call), mode, kind, vers, std::move(cookie), mutation);
    Dispatch(op, p, std::move(args));
  };
  return d.RegisterProcedure(kNlmProgram, vers, proc, std::move(spec));
}

void NlmService::Dispatch(LockOp op, const PendingPtr& p, NlmArgs args) {
  RecordCaller(*p->call, args.lock.caller_name);
  switch (op) {
    case LockOp::kTest:
      DoTest(p, std::move(args));
      return;
    case LockOp::kLock:
      DoLock(p, std::move(args), /*monitored=*/true);
      return;
    case LockOp::kNmLock:
      DoLock(p, std::move(args), /*monitored=*/false);
      return;
    case LockOp::kCancel:
      DoCancel(p, std::move(args));
      return;
    case LockOp::kUnlock:
      DoUnlock(p, std::move(args));
      return;
    case LockOp::kGranted: {
      // We are only ever the server side of NLM; a GRANTED matches no
      // blocked request of ours (see the file comment in nlm_service.h).
      LogEvent(LogLevel::kInfo, "nlm_granted_refused",
               {{"peer", p->call->context().peer_address},
                {"caller", args.lock.caller_name},
                {"reason", "gateway holds no blocked client requests"}});
      NlmOutcome o;
      o.status = v1::LOCK_STATUS_DENIED;
      Finish(p, o);
      return;
    }
  }
}

absl::Status NlmService::RegisterVersion(Dispatcher& d, uint32_t vers) {
  absl::Status s;
  auto add = [&s](absl::Status r) {
    if (s.ok()) s = std::move(r);
  };
  {
    ProcedureSpec null_spec = MakeVoidProcedure(
        absl::StrCat("NLM_NULL v", vers), [](std::unique_ptr<RpcCall> call) {
          (void)call->Reply(nullptr);
        });
    null_spec.use_drc = false;
    add(d.RegisterProcedure(kNlmProgram, vers, 0, std::move(null_spec)));
  }
  if (vers == NLM4_VERS) {
    const xdrproc_t res = XdrProc(xdr_nlm4_res);
    const xdrproc_t testres = XdrProc(xdr_nlm4_testres);
    add(RegisterLockProc(d, vers, NLMPROC4_TEST, "NLM_TEST", xdr_nlm4_testargs,
                         testres, LockOp::kTest, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC4_LOCK, "NLM_LOCK", xdr_nlm4_lockargs,
                         res, LockOp::kLock, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC4_CANCEL, "NLM_CANCEL",
                         xdr_nlm4_cancargs, res, LockOp::kCancel, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC4_UNLOCK, "NLM_UNLOCK",
                         xdr_nlm4_unlockargs, res, LockOp::kUnlock,
                         Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC4_GRANTED, "NLM_GRANTED",
                         xdr_nlm4_testargs, res, LockOp::kGranted,
                         Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC4_TEST_MSG, "NLM_TEST_MSG",
                         xdr_nlm4_testargs, testres, LockOp::kTest,
                         Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC4_LOCK_MSG, "NLM_LOCK_MSG",
                         xdr_nlm4_lockargs, res, LockOp::kLock, Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC4_CANCEL_MSG, "NLM_CANCEL_MSG",
                         xdr_nlm4_cancargs, res, LockOp::kCancel, Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC4_UNLOCK_MSG, "NLM_UNLOCK_MSG",
                         xdr_nlm4_unlockargs, res, LockOp::kUnlock,
                         Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC4_GRANTED_MSG, "NLM_GRANTED_MSG",
                         xdr_nlm4_testargs, res, LockOp::kGranted,
                         Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC4_NM_LOCK, "NLM_NM_LOCK",
                         xdr_nlm4_lockargs, res, LockOp::kNmLock, Mode::kSync));
  } else {
    const xdrproc_t res = XdrProc(xdr_nlm_res);
    const xdrproc_t testres = XdrProc(xdr_nlm_testres);
    add(RegisterLockProc(d, vers, NLMPROC_TEST, "NLM_TEST", xdr_nlm_testargs,
                         testres, LockOp::kTest, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC_LOCK, "NLM_LOCK", xdr_nlm_lockargs,
                         res, LockOp::kLock, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC_CANCEL, "NLM_CANCEL",
                         xdr_nlm_cancargs, res, LockOp::kCancel, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC_UNLOCK, "NLM_UNLOCK",
                         xdr_nlm_unlockargs, res, LockOp::kUnlock,
                         Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC_GRANTED, "NLM_GRANTED",
                         xdr_nlm_testargs, res, LockOp::kGranted, Mode::kSync));
    add(RegisterLockProc(d, vers, NLMPROC_TEST_MSG, "NLM_TEST_MSG",
                         xdr_nlm_testargs, testres, LockOp::kTest, Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC_LOCK_MSG, "NLM_LOCK_MSG",
                         xdr_nlm_lockargs, res, LockOp::kLock, Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC_CANCEL_MSG, "NLM_CANCEL_MSG",
                         xdr_nlm_cancargs, res, LockOp::kCancel, Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC_UNLOCK_MSG, "NLM_UNLOCK_MSG",
                         xdr_nlm_unlockargs, res, LockOp::kUnlock,
                         Mode::kMsg));
    add(RegisterLockProc(d, vers, NLMPROC_GRANTED_MSG, "NLM_GRANTED_MSG",
                         xdr_nlm_testargs, res, LockOp::kGranted, Mode::kMsg));
    if (vers == NLM_VERSX) {
      add(RegisterLockProc(d, vers, NLMPROC_NM_LOCK, "NLM_NM_LOCK",
                           xdr_nlm_lockargs, res, LockOp::kNmLock,
                           Mode::kSync));
    }
  }
  if (vers != NLM_VERS) {
    // SHARE, UNSHARE and FREE_ALL: versions 3 and 4.
    for (bool share : {true, false}) {
      ProcedureSpec spec;
      spec.name = absl::StrCat(share ? "NLM_SHARE v" : "NLM_UNSHARE v", vers);
      if (vers == NLM4_VERS) {
        spec.args_decoder = XdrProc(xdr_nlm4_shareargs);
        spec.args_size = sizeof(nlm4_shareargs);
        spec.result_encoder = XdrProc(xdr_nlm4_shareres);
      } else {
        spec.args_decoder = XdrProc(xdr_nlm_shareargs);
        spec.args_size = sizeof(nlm_shareargs);
        spec.result_encoder = XdrProc(xdr_nlm_shareres);
      }
      spec.handler = [this, vers, share](std::unique_ptr<RpcCall> call) {
        NlmShareArgs args;
        if (vers == NLM4_VERS) {
          nlm4_shareargs* w = call->args<nlm4_shareargs>();
          if (w == nullptr) {
            (void)call->ReplyError(AcceptStat::kSystemErr);
            return;
          }
          args = NormalizeShare(*w, vers);
        } else {
          nlm_shareargs* w = call->args<nlm_shareargs>();
          if (w == nullptr) {
            (void)call->ReplyError(AcceptStat::kSystemErr);
            return;
          }
          args = NormalizeShare(*w, vers);
        }
        std::string cookie = args.cookie;
        PendingPtr p = Begin(std::move(call), Mode::kSync,
                             ResultKind::kShareRes, vers, std::move(cookie),
                             /*mutation=*/true);
        RecordCaller(*p->call, args.caller_name);
        DoShare(p, std::move(args), share);
      };
      add(d.RegisterProcedure(kNlmProgram, vers,
                              share ? NLMPROC4_SHARE : NLMPROC4_UNSHARE,
                              std::move(spec)));
    }
    ProcedureSpec free_all;
    free_all.name = absl::StrCat("NLM_FREE_ALL v", vers);
    free_all.args_decoder = vers == NLM4_VERS ? XdrProc(xdr_nlm4_notify)
                                              : XdrProc(xdr_nlm_notify);
    free_all.args_size =
        vers == NLM4_VERS ? sizeof(nlm4_notify) : sizeof(nlm_notify);
    free_all.result_encoder = XdrVoid();
    free_all.handler = [this, vers](std::unique_ptr<RpcCall> call) {
      NlmNotifyArgs args;
      if (vers == NLM4_VERS) {
        nlm4_notify* w = call->args<nlm4_notify>();
        if (w != nullptr) args = FromWire(*w);
      } else {
        nlm_notify* w = call->args<nlm_notify>();
        if (w != nullptr) args = FromWire(*w);
      }
      PendingPtr p = Begin(std::move(call), Mode::kSync, ResultKind::kRes,
                           vers, std::string(), /*mutation=*/true);
      DoFreeAll(p, std::move(args));
    };
    add(d.RegisterProcedure(kNlmProgram, vers, NLMPROC4_FREE_ALL,
                            std::move(free_all)));
  }
  add(RegisterResProcs(d, vers));
  return s;
}

NlmService::PendingPtr NlmService::Begin(std::unique_ptr<RpcCall> call,
                                         Mode mode, ResultKind kind,
                                         uint32_t vers, std::string cookie,
                                         bool mutation) {
  calls_.fetch_add(1);
  in_flight_.fetch_add(1);
  auto p = std::make_shared<Pending>();
  p->in_flight = &in_flight_;
  p->mode = mode;
  p->kind = kind;
  p->vers = vers;
  p->cookie = std::move(cookie);
  const CallContext& ctx = call->context();
  const CallHeader& h = call->header();
  if (mutation) {
    RequestIdKey key;
    key.gateway_name = options_.gateway_name;
    key.client_address = ctx.peer_address;
    key.xid = h.xid;
    key.prog = h.prog;
    key.vers = h.vers;
    key.proc = h.proc;
    // Re-encoding the decoded arguments yields the bytes the client sent.
    absl::StatusOr<std::string> bytes =
        XdrEncode(call->procedure().args_decoder, call->args_raw());
    if (bytes.ok()) key.args = *std::move(bytes);
    p->request_id = DeriveRequestId(key);
  }
  if (!LogEnabled(LogLevel::kDebug)) {
    // The call is not logged; skip building its fields.
  } else if (h.auth_sys.has_value()) {
    LogEvent(LogLevel::kDebug, "nlm_call",
             {{"proc", call->procedure().name},
              {"xid", h.xid},
              {"peer", ctx.peer_address},
              {"transport", TransportName(ctx.transport)},
              {"machinename", h.auth_sys->machine_name},
              {"uid", h.auth_sys->uid},
              {"gid", h.auth_sys->gid},
              {"request_id", p->request_id}});
  } else {
    LogEvent(LogLevel::kDebug, "nlm_call",
             {{"proc", call->procedure().name},
              {"xid", h.xid},
              {"peer", ctx.peer_address},
              {"transport", TransportName(ctx.transport)},
              {"auth", "none"},
              {"request_id", p->request_id}});
  }
  p->call = std::move(call);
  return p;
}

void NlmService::RecordCaller(const RpcCall& call,
                              const std::string& caller_name) {
  if (!options_.record_client_address || caller_name.empty() ||
      caller_name.size() > kMaxCallerNameBytes) {
    return;
  }
  options_.record_client_address(caller_name, call.context().peer_address);
}

bool NlmService::RejectAtEdge(const PendingPtr& p,
                              const std::string& caller_name,
                              const std::string& fh, const std::string& oh) {
  std::optional<EdgeRejection> r = ValidateLockFields(caller_name, fh, oh);
  if (!r.has_value()) return false;
  edge_rejections_.fetch_add(1);
  LogEvent(LogLevel::kWarn, "nlm_request_rejected",
           {{"proc", p->call->procedure().name},
            {"xid", p->call->header().xid},
            {"peer", p->call->context().peer_address},
            {"reason", r->reason}});
  NlmOutcome o;
  o.status = r->answer;
  Finish(p, o);
  return true;
}

NlmOutcome NlmService::ServerFailure(const PendingPtr& p,
                                     const grpc::Status& status,
                                     const char* rpc) {
  server_errors_.fetch_add(1);
  LogEvent(LogLevel::kWarn, "nlm_server_call_failed",
           {{"proc", p->call->procedure().name},
            {"xid", p->call->header().xid},
            {"peer", p->call->context().peer_address},
            {"rpc", rpc},
            {"code", static_cast<int>(status.error_code())},
            {"error", status.error_message()},
            {"request_id", p->request_id}});
  NlmOutcome o;
  // A request the server calls malformed will not improve by retrying:
  // FAILED (v1/v3: DENIED_NOLOCKS). Anything else (unreachable past the
  // failover wait, overload) is DENIED_NOLOCKS, so the client retries.
  o.status = status.error_code() == grpc::StatusCode::INVALID_ARGUMENT
                 ? v1::LOCK_STATUS_FAILED
                 : v1::LOCK_STATUS_NO_LOCKS;
  return o;
}

void NlmService::Finish(const PendingPtr& p, const NlmOutcome& outcome) {
  if (p->mode == Mode::kMsg) {
    SendRes(p, outcome);
    return;
  }
  absl::Status s =
      WithWireResult(p->kind, p->vers, p->cookie, outcome,
                     [&p](xdrproc_t, const void* result) {
                       return p->call->Reply(result);
                     });
  if (!s.ok()) {
    LogEvent(LogLevel::kError, "nlm_reply_failed",
             {{"proc", p->call->procedure().name}, {"error", s}});
  }
}

void NlmService::SendRes(const PendingPtr& p, const NlmOutcome& outcome) {
  const CallContext& ctx = p->call->context();
  // *_MSG (6..10) is answered by *_RES (11..15).
  const uint32_t res_proc = p->call->header().proc + 5;
  NlmPeer peer{ctx.peer_address, 0, p->vers, ctx.transport};
  const std::string proc_name = p->call->procedure().name;
  absl::Status s = WithWireResult(
      p->kind, p->vers, p->cookie, outcome,
      [&](xdrproc_t encoder, const void* result) {
        callbacks_->Send(
            peer, res_proc, encoder, result,
            [this, peer, res_proc, proc_name](absl::Status sent) {
              if (sent.ok()) {
                res_sent_.fetch_add(1);
                return;
              }
              res_failed_.fetch_add(1);
              LogEvent(LogLevel::kWarn, "nlm_res_send_failed",
                       {{"proc", proc_name},
                        {"res_proc", res_proc},
                        {"peer", peer.address},
                        {"error", sent}});
            });
        return absl::OkStatus();
      });
  if (!s.ok()) {
    LogEvent(LogLevel::kError, "nlm_res_encode_failed",
             {{"proc", proc_name}, {"error", s}});
  }
  // The *_MSG itself has no reply; completing it lets the DRC absorb
  // retransmissions of a call already answered by its *_RES.
  (void)p->call->ReplyNone();
}

}  // namespace lockwarden::gateway::nlm
