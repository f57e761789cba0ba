#include "gateway/nsm/nsm_service.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/nsm/delay_scheduler.h"
#include "gateway/nsm/host_resolver.h"
#include "gateway/nsm/notification_deliverer.h"
#include "gateway/nsm/notification_stream.h"
#include "gateway/nsm/notify_source_check.h"
#include "gateway/nsm/outstanding_ops.h"
#include "gateway/xdr/sm_inter.h"

namespace lockwarden::gateway::nsm {
namespace {

// Stop() waits at most this long for callbacks already started. Every one
// has its own bound (ServerClient's failover wait, RpcClient's timeout,
// the resolver timeout), so this is only a safety net.
constexpr absl::Duration kStopWaitMax = absl::Seconds(30);

// Starts one MonitorService call through ServerClient; `start` issues the
// stub's async method. `done` runs once, on a gRPC or timer thread.
template <typename Response, typename Request, typename Start>
void CallMonitor(ServerClient* server, std::shared_ptr<Request> request,
                 Start start,
                 std::function<void(const grpc::Status&, const Response&)> done) {
  server->Call<Response>(
      [request, start](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
                       Response* response,
                       std::function<void(grpc::Status)> finished) {
        start(stubs.monitor->async(), ctx, request.get(), response,
              std::move(finished));
      },
      std::move(done));
}

void SetMyId(const my_id& from, v1::MonitorCallback* to) {
  to->set_my_name(from.my_name != nullptr ? from.my_name : "");
  to->set_my_prog(static_cast<uint32_t>(from.my_prog));
  to->set_my_vers(static_cast<uint32_t>(from.my_vers));
  to->set_my_proc(static_cast<uint32_t>(from.my_proc));
}

std::string MyIdText(const my_id& id) {
  return absl::StrCat(id.my_name != nullptr ? id.my_name : "", " ",
                      id.my_prog, "/", id.my_vers, "/", id.my_proc);
}

const char* Str(const char* s) { return s != nullptr ? s : ""; }

std::shared_ptr<RpcCall> Share(std::unique_ptr<RpcCall> call) {
  return std::shared_ptr<RpcCall>(std::move(call));
}

// The sm_stat_res answering SM_STAT or SM_MON: the server's result and
// state if the call succeeded, else STAT_FAIL with `fallback_state` (the
// last known one). lockd ignores the state on STAT_FAIL, but a zero state
// number is exactly what broke reboot detection before the founding fix.
sm_stat_res StatResult(const grpc::Status& status, v1::NsmResult result,
                       int32_t state, int32_t fallback_state) {
  if (!status.ok()) return sm_stat_res{stat_fail, fallback_state};
  return sm_stat_res{
      result == v1::NSM_RESULT_SUCCESS ? stat_succ : stat_fail, state};
}

}  // namespace

template <typename Request>
std::shared_ptr<Request> NsmService::NewRequest() {
  auto request = std::make_shared<Request>();
  request->set_request_id(NextRequestId());
  request->set_gateway_id(options_.gateway_id);
  return request;
}

std::vector<absl::Duration> DefaultNotifyRetrySchedule() {
  // Doubling from 1 s to 512 s (17 minutes in all) reaches a client that
  // is just booting quickly; then every 15 minutes, as far as 24 hours
  // after the first attempt (FreeBSD's statd keeps trying for 24 h; Linux
  // sm-notify gives up after 15 minutes, which loses clients that were
  // down for longer).
  std::vector<absl::Duration> schedule;
  absl::Duration total;
  for (absl::Duration d = absl::Seconds(1); d <= absl::Seconds(512); d *= 2) {
    schedule.push_back(d);
    total += d;
  }
  while (total + absl::Minutes(15) <= absl::Hours(24)) {
    schedule.push_back(absl::Minutes(15));
    total += absl::Minutes(15);
  }
  return schedule;
}

std::vector<absl::Duration> DefaultCallbackRetrySchedule() {
  std::vector<absl::Duration> schedule;
  absl::Duration total;
  for (absl::Duration d = absl::Seconds(1); d < absl::Seconds(30); d *= 2) {
    schedule.push_back(d);
    total += d;
  }
  while (total + absl::Seconds(30) <= absl::Minutes(10)) {
    schedule.push_back(absl::Seconds(30));
    total += absl::Seconds(30);
  }
  return schedule;
}

NsmService::NsmService(NsmOptions options, ServerClient* server,
                       RpcClient* rpc, ClientAddressBook* addresses)
    : options_(std::move(options)),
      server_(server),
      rpc_(rpc),
      addresses_(addresses),
      ops_(std::make_unique<OutstandingOps>()),
      scheduler_(std::make_unique<DelayScheduler>()),
      request_id_prefix_(absl::StrCat(
          options_.gateway_id, "/nsm/",
          absl::Hex(absl::Uniform<uint64_t>(absl::BitGen())))) {
  resolver_ = std::make_unique<HostResolver>(
      HostResolverOptions{options_.resolver_threads,
                          options_.max_pending_resolutions},
      scheduler_.get());
  source_check_ = std::make_unique<NotifySourceCheck>(
      options_.notify_source_check == NsmOptions::NotifySourceCheck::kStrict,
      addresses_, resolver_.get(), options_.resolve_timeout);
  DelivererOptions d;
  d.gateway_id = options_.gateway_id;
  d.notify_retry_schedule = options_.notify_retry_schedule;
  d.callback_retry_schedule = options_.callback_retry_schedule;
  d.max_in_flight = options_.max_deliveries_in_flight;
  d.max_tracked = options_.max_tracked_events;
  d.rpcbind_port = options_.rpcbind_port;
  d.resolve_timeout = options_.resolve_timeout;
  d.max_ack_attempts = options_.max_ack_attempts;
  deliverer_ = std::make_unique<NotificationDeliverer>(
      std::move(d), server_, rpc_, addresses_, resolver_.get(),
      scheduler_.get(), ops_.get());
  NotificationStreamOptions s;
  s.gateway_id = options_.gateway_id;
  s.instance_name = options_.instance_name;
  s.backoff_initial = options_.watch_backoff_initial;
  s.backoff_max = options_.watch_backoff_max;
  s.idle_timeout = options_.watch_idle_timeout;
  NotificationDeliverer* deliverer = deliverer_.get();
  stream_ = std::make_unique<NotificationStream>(
      std::move(s), server_,
      [deliverer](const v1::NotificationEvent& e) { deliverer->Offer(e); });
  NotificationStream* stream = stream_.get();
  deliverer_->set_on_refetch([stream] { stream->RequestRefetch(); });
}

NsmServiceStats NsmService::stats() const {
  NsmServiceStats s;
  s.deliveries = deliverer_->stats();
  s.stream = stream_->stats();
  s.stream_connected = stream_->connected();
  return s;
}

NsmService::~NsmService() { Stop(); }

void NsmService::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopped_) return;
  started_ = true;
  stream_->Start();
  LogEvent(LogLevel::kInfo, "nsm_started",
           {{"gateway_id", options_.gateway_id},
            {"notify_source_check",
             options_.notify_source_check ==
                     NsmOptions::NotifySourceCheck::kStrict
                 ? "strict"
                 : "trust-name"},
            {"allow_remote_mon", options_.allow_remote_mon}});
}

void NsmService::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // Order: no new events, no new attempts, no queued resolutions, then
  // wait for what is still running, and only then drop the timers those
  // callbacks may have used.
  stream_->Stop();
  deliverer_->Stop();
  resolver_->Stop();
  if (!ops_->StopAndWait(kStopWaitMax)) {
    LogEvent(LogLevel::kError, "nsm_stop_timeout",
             {{"outstanding", ops_->count()}});
  }
  scheduler_->Stop();
}

std::string NsmService::NextRequestId() {
  return absl::StrCat(request_id_prefix_, "/", next_request_.fetch_add(1));
}

bool NsmService::AllowPrivateCall(const RpcCall& call) const {
  if (options_.allow_remote_mon || call.context().peer_is_loopback) {
    return true;
  }
  LogEvent(LogLevel::kWarn, "nsm_private_call_refused",
           {{"proc", call.procedure().name},
            {"peer", call.context().peer_address},
            {"reason", "SM_MON/UNMON/UNMON_ALL/SIMU_CRASH are accepted "
                       "from loopback only (allow_remote_mon is off)"}});
  return false;
}

absl::Status NsmService::Register(Dispatcher& dispatcher) {
  auto bind = [this](void (NsmService::*handler)(std::unique_ptr<RpcCall>)) {
    return [this, handler](std::unique_ptr<RpcCall> call) {
      (this->*handler)(std::move(call));
    };
  };
  struct Entry {
    uint32_t proc;
    ProcedureSpec spec;
  };
  ProcedureSpec simu_crash =
      MakeVoidProcedure("SM_SIMU_CRASH", bind(&NsmService::HandleSimuCrash));
  // A retransmitted SIMU_CRASH must not bump the state a second time.
  simu_crash.use_drc = true;
  Entry entries[] = {
      {SM_NULL, MakeVoidProcedure("SM_NULL", [](std::unique_ptr<RpcCall> c) {
         (void)c->Reply(nullptr);
       })},
      {SM_STAT, MakeProcedure("SM_STAT", xdr_sm_name, xdr_sm_stat_res,
                              bind(&NsmService::HandleStat))},
      {SM_MON, MakeProcedure("SM_MON", xdr_mon, xdr_sm_stat_res,
                             bind(&NsmService::HandleMon))},
      {SM_UNMON, MakeProcedure("SM_UNMON", xdr_mon_id, xdr_sm_stat,
                               bind(&NsmService::HandleUnmon))},
      {SM_UNMON_ALL, MakeProcedure("SM_UNMON_ALL", xdr_my_id, xdr_sm_stat,
                                   bind(&NsmService::HandleUnmonAll))},
      {SM_SIMU_CRASH, std::move(simu_crash)},
      {SM_NOTIFY, MakeVoidResultProcedure("SM_NOTIFY", xdr_stat_chge,
                                          bind(&NsmService::HandleNotify))},
  };
  for (Entry& e : entries) {
    absl::Status s = dispatcher.RegisterProcedure(SM_PROG, SM_VERS, e.proc,
                                                  std::move(e.spec));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void NsmService::HandleStat(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  const sm_name* args = call->args<sm_name>();
  auto request = std::make_shared<v1::StatRequest>();
  request->set_gateway_id(options_.gateway_id);
  request->set_mon_name(Str(args->mon_name));
  if (!ops_->Begin()) {
    sm_stat_res res{stat_fail, last_known_state()};
    (void)call->Reply(&res);
    return;
  }
  CallMonitor<v1::StatResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->Stat(ctx, req, resp, std::move(done));
      },
      [this, call, request](const grpc::Status& status,
                            const v1::StatResponse& response) {
        sm_stat_res res = StatResult(status, response.result(),
                                     response.state(), last_known_state());
        if (status.ok()) {
          NoteState(response.state());
        } else {
          LogEvent(LogLevel::kWarn, "nsm_server_call_failed",
                   {{"proc", "SM_STAT"},
                    {"mon_name", request->mon_name()},
                    {"error", status.error_message()}});
        }
        (void)call->Reply(&res);
        ops_->End();
      });
}

void NsmService::HandleMon(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  const mon* args = call->args<mon>();
  if (!AllowPrivateCall(*call) || !ops_->Begin()) {
    sm_stat_res res{stat_fail, last_known_state()};
    (void)call->Reply(&res);
    return;
  }
  auto request = NewRequest<v1::MonRequest>();
  request->set_mon_name(Str(args->mon_id.mon_name));
  SetMyId(args->mon_id.my_id, request->mutable_my_id());
  request->set_priv(std::string(args->priv, SM_PRIV_SIZE));
  const std::string who = MyIdText(args->mon_id.my_id);
  CallMonitor<v1::MonResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->Mon(ctx, req, resp, std::move(done));
      },
      [this, call, request, who](const grpc::Status& status,
                                 const v1::MonResponse& response) {
        sm_stat_res res = StatResult(status, response.result(),
                                     response.state(), last_known_state());
        if (status.ok()) NoteState(response.state());
        LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarn, "nsm_mon",
                 {{"mon_name", request->mon_name()},
                  {"my_id", who},
                  {"peer", call->context().peer_address},
                  {"result", res.res_stat == stat_succ ? "success" : "fail"},
                  {"state", res.state},
                  {"error", status.error_message()}});
        (void)call->Reply(&res);
        ops_->End();
      });
}

void NsmService::HandleUnmon(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  const mon_id* args = call->args<mon_id>();
  if (!AllowPrivateCall(*call) || !ops_->Begin()) {
    sm_stat res{last_known_state()};
    (void)call->Reply(&res);
    return;
  }
  auto request = NewRequest<v1::UnmonRequest>();
  request->set_mon_name(Str(args->mon_name));
  SetMyId(args->my_id, request->mutable_my_id());
  const std::string who = MyIdText(args->my_id);
  CallMonitor<v1::UnmonResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->Unmon(ctx, req, resp, std::move(done));
      },
      [this, call, request, who](const grpc::Status& status,
                                 const v1::UnmonResponse& response) {
        // sm_stat has no result code: on failure the caller only sees the
        // last known state, as with statd when its files are unwritable.
        if (status.ok()) NoteState(response.state());
        sm_stat res{last_known_state()};
        LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarn, "nsm_unmon",
                 {{"mon_name", request->mon_name()},
                  {"my_id", who},
                  {"state", res.state},
                  {"error", status.error_message()}});
        (void)call->Reply(&res);
        ops_->End();
      });
}

void NsmService::HandleUnmonAll(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  const my_id* args = call->args<my_id>();
  if (!AllowPrivateCall(*call) || !ops_->Begin()) {
    sm_stat res{last_known_state()};
    (void)call->Reply(&res);
    return;
  }
  auto request = NewRequest<v1::UnmonAllRequest>();
  SetMyId(*args, request->mutable_my_id());
  const std::string who = MyIdText(*args);
  CallMonitor<v1::UnmonAllResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->UnmonAll(ctx, req, resp, std::move(done));
      },
      [this, call, who](const grpc::Status& status,
                        const v1::UnmonAllResponse& response) {
        if (status.ok()) NoteState(response.state());
        sm_stat res{last_known_state()};
        LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarn,
                 "nsm_unmon_all",
                 {{"my_id", who},
                  {"removed", response.removed()},
                  {"state", res.state},
                  {"error", status.error_message()}});
        (void)call->Reply(&res);
        ops_->End();
      });
}

void NsmService::HandleSimuCrash(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  if (!AllowPrivateCall(*call) || !ops_->Begin()) {
    (void)call->Reply(nullptr);
    return;
  }
  auto request = NewRequest<v1::SimuCrashRequest>();
  CallMonitor<v1::SimuCrashResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->SimuCrash(ctx, req, resp, std::move(done));
      },
      [this, call](const grpc::Status& status,
                   const v1::SimuCrashResponse& response) {
        if (status.ok()) NoteState(response.state());
        LogEvent(status.ok() ? LogLevel::kWarn : LogLevel::kError,
                 "nsm_simu_crash",
                 {{"peer", call->context().peer_address},
                  {"state", response.state()},
                  {"notifications_queued", response.notifications_queued()},
                  {"error", status.error_message()}});
        // The procedure has a void result either way (as in statd).
        (void)call->Reply(nullptr);
        ops_->End();
      });
}

void NsmService::HandleNotify(std::unique_ptr<RpcCall> unique_call) {
  std::shared_ptr<RpcCall> call = Share(std::move(unique_call));
  const stat_chge* args = call->args<stat_chge>();
  std::string mon_name = Str(args->mon_name);
  const int32_t state = args->state;
  const std::string source = call->context().peer_address;
  // Stopping: left unanswered, so the sender retransmits to whichever
  // gateway serves the name next.
  if (!ops_->Begin()) return;
  source_check_->Check(
      mon_name, source,
      [this, call, mon_name, state, source](SourceVerdict verdict) {
        if (!verdict.accepted) {
          // Not forwarded; still answered (void), as statd does, so the
          // sender does not retransmit a notify that will never count.
          LogEvent(LogLevel::kWarn, "nsm_notify_rejected",
                   {{"mon_name", mon_name},
                    {"state", state},
                    {"source", source},
                    {"reason", verdict.reason}});
          (void)call->Reply(nullptr);
          ops_->End();
          return;
        }
        if (options_.notify_source_check ==
            NsmOptions::NotifySourceCheck::kStrict) {
          addresses_->Record(mon_name, source);
        }
        LogEvent(LogLevel::kInfo, "nsm_notify_accepted",
                 {{"mon_name", mon_name},
                  {"state", state},
                  {"source", source},
                  {"reason", verdict.reason}});
        ForwardNotify(call, mon_name, state);
        ops_->End();
      });
}

void NsmService::ForwardNotify(std::shared_ptr<RpcCall> call,
                               std::string mon_name, int32_t state) {
  if (!ops_->Begin()) return;  // unanswered: the sender retransmits
  auto request = NewRequest<v1::NotifyRequest>();
  request->set_mon_name(std::move(mon_name));
  request->set_state(state);
  request->set_source_address(call->context().peer_address);
  CallMonitor<v1::NotifyResponse>(
      server_, request,
      [](auto* async, auto* ctx, auto* req, auto* resp, auto done) {
        async->Notify(ctx, req, resp, std::move(done));
      },
      [this, call, request](const grpc::Status& status,
                            const v1::NotifyResponse& response) {
        if (status.ok()) {
          LogEvent(LogLevel::kInfo, "nsm_notify_applied",
                   {{"mon_name", request->mon_name()},
                    {"state", request->state()},
                    {"outcome", v1::NotifyOutcome_Name(response.outcome())},
                    {"stale", response.stale()},
                    {"previous_state", response.previous_state()},
                    {"released_locks", response.released_locks()},
                    {"released_shares", response.released_shares()},
                    {"callbacks_queued", response.callbacks_queued()}});
          (void)call->Reply(nullptr);
        } else {
          // Not answered on purpose: the reboot was not recorded, and the
          // sender (sm-notify, statd) retransmits until it gets a reply;
          // the unanswered call leaves the duplicate request cache, so the
          // retransmission is forwarded again once the server is back.
          LogEvent(LogLevel::kError, "nsm_notify_not_recorded",
                   {{"mon_name", request->mon_name()},
                    {"state", request->state()},
                    {"error", status.error_message()}});
        }
        ops_->End();
      });
}

}  // namespace lockwarden::gateway::nsm
