// The asynchronous NLM procedures the gateway receives: *_RES (11..15) and
// the private statd -> lockd status callback (16). The *_MSG requests
// (6..10) share their logic with the synchronous procedures and are
// registered with them (nlm_service.cc); their answers leave through
// NlmService::SendRes.
//
//   11..14 TEST_RES, LOCK_RES, CANCEL_RES, UNLOCK_RES: we never send the
//          matching *_MSG, so these answer nothing we asked; ignored.
//   15     GRANTED_RES: the client's answer to our GRANTED_MSG, matched by
//          the cookie we minted from the grant event's sequence.
//   16     statd -> lockd callback: received only if someone registered this
//          gateway with a real rpc.statd. The gateway's NSM and the lock
//          service already share the client state, so there is nothing to
//          do: a void reply (statd expects one) and a log line.
// None of these needs the DRC: ignoring twice is ignoring once, and a
// grant ack is idempotent on the server.
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/nlm/grant_delivery.h"
#include "gateway/nlm/nlm_service.h"

namespace lockwarden::gateway::nlm {
namespace {

ProcedureSpec IgnoredRes(const std::string& name, xdrproc_t decoder,
                         size_t size) {
  ProcedureSpec spec;
  spec.name = name;
  spec.args_decoder = decoder;
  spec.args_size = size;
  spec.result_encoder = XdrVoid();
  spec.use_drc = false;
  spec.handler = [](std::unique_ptr<RpcCall> call) {
    LogEvent(LogLevel::kDebug, "nlm_res_ignored",
             {{"proc", call->procedure().name},
              {"peer", call->context().peer_address}});
    (void)call->ReplyNone();
  };
  return spec;
}

}  // namespace

absl::Status NlmService::RegisterResProcs(Dispatcher& d, uint32_t vers) {
  const bool v4 = vers == NLM4_VERS;
  const xdrproc_t res = v4 ? XdrProc(xdr_nlm4_res) : XdrProc(xdr_nlm_res);
  const size_t res_size = v4 ? sizeof(nlm4_res) : sizeof(nlm_res);
  const std::string suffix = absl::StrCat(" v", vers);
  absl::Status s = d.RegisterProcedure(
      kNlmProgram, vers, NLMPROC4_TEST_RES,
      IgnoredRes("NLM_TEST_RES" + suffix,
                 v4 ? XdrProc(xdr_nlm4_testres) : XdrProc(xdr_nlm_testres),
                 v4 ? sizeof(nlm4_testres) : sizeof(nlm_testres)));
  if (!s.ok()) return s;
  const std::pair<uint32_t, const char*> ignored[] = {
      {NLMPROC4_LOCK_RES, "NLM_LOCK_RES"},
      {NLMPROC4_CANCEL_RES, "NLM_CANCEL_RES"},
      {NLMPROC4_UNLOCK_RES, "NLM_UNLOCK_RES"}};
  for (const auto& [proc, name] : ignored) {
    s = d.RegisterProcedure(kNlmProgram, vers, proc,
                            IgnoredRes(name + suffix, res, res_size));
    if (!s.ok()) return s;
  }

  ProcedureSpec granted_res;
  granted_res.name = "NLM_GRANTED_RES" + suffix;
  granted_res.args_decoder = res;
  granted_res.args_size = res_size;
  granted_res.result_encoder = XdrVoid();
  granted_res.use_drc = false;
  granted_res.handler = [this, vers](std::unique_ptr<RpcCall> call) {
    std::string cookie;
    v1::LockStatus status = v1::LOCK_STATUS_FAILED;
    if (vers == NLM4_VERS) {
      nlm4_res* r = call->args<nlm4_res>();
      if (r != nullptr) {
        cookie = NetobjBytes(r->cookie);
        status = StatusOf(*r);
      }
    } else {
      nlm_res* r = call->args<nlm_res>();
      if (r != nullptr) {
        cookie = NetobjBytes(r->cookie);
        status = StatusOf(*r);
      }
    }
    OnGrantedRes(std::move(call), vers, std::move(cookie), status);
  };
  s = d.RegisterProcedure(kNlmProgram, vers, NLMPROC4_GRANTED_RES,
                          std::move(granted_res));
  if (!s.ok()) return s;

  ProcedureSpec sm_notify;
  sm_notify.name = "NLM_SM_NOTIFY" + suffix;
  sm_notify.args_decoder = XdrProc(xdr_nlm_sm_status);
  sm_notify.args_size = sizeof(nlm_sm_status);
  sm_notify.result_encoder = XdrVoid();
  sm_notify.use_drc = false;
  sm_notify.handler = [](std::unique_ptr<RpcCall> call) {
    nlm_sm_status* st = call->args<nlm_sm_status>();
    LogEvent(LogLevel::kInfo, "nlm_statd_callback_ignored",
             {{"peer", call->context().peer_address},
              {"mon_name", st != nullptr && st->mon_name != nullptr
                               ? std::string(st->mon_name)
                               : std::string()},
              {"state", st != nullptr ? st->state : 0},
              {"reason", "the lock service tracks client state itself"}});
    (void)call->Reply(nullptr);
  };
  return d.RegisterProcedure(kNlmProgram, vers, kNlmStatusCallbackProc,
                             std::move(sm_notify));
}

void NlmService::OnGrantedRes(std::unique_ptr<RpcCall> call, uint32_t vers,
                              std::string cookie, v1::LockStatus status) {
  granted_res_.fetch_add(1);
  const std::string from = call->context().peer_address;
  LogEvent(LogLevel::kDebug, "nlm_granted_res",
           {{"peer", from},
            {"vers", vers},
            {"status", static_cast<int>(status)}});
  // No reply: *_RES procedures are one-way. Answer first, so the transport
  // slot is released whatever the delivery bookkeeping does.
  (void)call->ReplyNone();
  if (grants_ == nullptr) {
    LogEvent(LogLevel::kWarn, "nlm_granted_res_unhandled",
             {{"peer", from}, {"reason", "no grant delivery configured"}});
    return;
  }
  grants_->OnGrantedRes(cookie, status, from);
}

}  // namespace lockwarden::gateway::nlm
