// NLM LOCK (2), LOCK_MSG (7) and NM_LOCK (22): MonitorService.Mon once per
// host for monitored locks, then LockService.Lock.
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/nlm/nlm_service.h"
#include "gateway/nlm/request_id.h"

namespace lockwarden::gateway::nlm {

void NlmService::DoLock(const PendingPtr& p, NlmArgs args, bool monitored) {
  if (RejectAtEdge(p, args.lock.caller_name, args.lock.fh, args.lock.oh)) {
    return;
  }
  if (!monitored) {
    SendLock(p, std::move(args), false);
    return;
  }
  const std::string caller = args.lock.caller_name;
  EnsureMonitored(caller, [this, p, args = std::move(args)](
                              absl::Status s) mutable {
    if (!s.ok()) {
      server_errors_.fetch_add(1);
      LogEvent(LogLevel::kWarn, "nlm_monitor_failed",
               {{"caller", args.lock.caller_name},
                {"peer", p->call->context().peer_address},
                {"error", s}});
      NlmOutcome o;
      o.status = v1::LOCK_STATUS_NO_LOCKS;
      Finish(p, o);
      return;
    }
    SendLock(p, std::move(args), true);
  });
}

void NlmService::EnsureMonitored(const std::string& caller_name,
                                 std::function<void(absl::Status)> done) {
  {
    absl::MutexLock lock(&mu_);
    if (monitored_.contains(caller_name)) {
      done(absl::OkStatus());
      return;
    }
  }
  // Concurrent first LOCKs from one host may both register; Mon of the same
  // (mon_name, my_id) replaces the registration, so that is harmless.
  mon_calls_.fetch_add(1);
  auto req = std::make_shared<v1::MonRequest>();
  req->set_request_id(DeriveInternalRequestId(
      "mon", {options_.gateway_name, caller_name, process_nonce_}));
  req->set_gateway_id(options_.gateway_name);
  req->set_mon_name(caller_name);
  v1::MonitorCallback* my_id = req->mutable_my_id();
  my_id->set_my_name(options_.gateway_name);
  my_id->set_my_prog(kNlmProgram);
  my_id->set_my_vers(NLM4_VERS);
  my_id->set_my_proc(kNlmStatusCallbackProc);
  req->set_priv(std::string(kNsmPrivBytes, '\0'));
  server_->Call<v1::MonResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::MonResponse* resp, std::function<void(grpc::Status)> cb) {
        stubs.monitor->async()->Mon(ctx, req.get(), resp, std::move(cb));
      },
      [this, caller_name, done = std::move(done)](
          const grpc::Status& status, const v1::MonResponse& resp) {
        if (!status.ok()) {
          done(absl::UnavailableError(absl::StrCat(
              "MonitorService.Mon: ", status.error_message(), " (code ",
              static_cast<int>(status.error_code()), ")")));
          return;
        }
        if (resp.result() != v1::NSM_RESULT_SUCCESS) {
          done(absl::ResourceExhaustedError(
              "MonitorService.Mon refused the registration (monitor table "
              "full?)"));
          return;
        }
        {
          absl::MutexLock lock(&mu_);
          if (monitored_.size() >= options_.monitored_hosts_max) {
            monitored_.clear();
          }
          monitored_.insert(caller_name);
        }
        done(absl::OkStatus());
      });
}

void NlmService::SendLock(const PendingPtr& p, NlmArgs args, bool monitored) {
  const CallContext& ctx = p->call->context();
  v1::SessionCall call;
  v1::LockRequest* req = call.mutable_lock();
  req->set_request_id(p->request_id);
  req->set_gateway_id(options_.gateway_name);
  req->set_file_handle(args.lock.fh);
  *req->mutable_owner() = OwnerOf(args.lock);
  *req->mutable_range() = ToProto(args.lock.range);
  req->set_exclusive(args.exclusive);
  req->set_block(args.block);
  req->set_reclaim(args.reclaim);
  req->set_client_state(args.state);
  req->set_cookie(args.cookie);
  req->set_monitored(monitored);
  v1::CallbackTarget* cb = req->mutable_callback();
  cb->set_client_address(ctx.peer_address);
  cb->set_client_port(0);  // the client's rpcbind knows its lockd's port
  cb->set_nlm_version(p->vers);
  cb->set_transport(ctx.transport == TransportKind::kTcp ? v1::TRANSPORT_TCP
                                                         : v1::TRANSPORT_UDP);
  cb->set_use_granted_msg(options_.use_granted_msg);
  cb->set_caller_name(options_.gateway_name);
  CallServer(p, std::move(call), "Lock", [this, p](const v1::SessionResult& r) {
    NlmOutcome o;
    o.status = r.lock().status();
    Finish(p, o);
  });
}

}  // namespace lockwarden::gateway::nlm
