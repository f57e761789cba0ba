#include "gateway/nsm/notification_deliverer.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/sm_inter.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nsm {
namespace {

std::string Describe(const v1::NotificationEvent& e) {
  if (e.has_sm_notify()) {
    return absl::StrCat("SM_NOTIFY to ", e.sm_notify().target_host());
  }
  if (e.has_status_callback()) {
    const v1::MonitorCallback& id = e.status_callback().my_id();
    return absl::StrCat("status callback ", id.my_prog(), "/", id.my_vers(),
                        "/", id.my_proc(), " at ", id.my_name(), " for ",
                        e.status_callback().mon_name());
  }
  return "unknown event kind";
}

const char* OutcomeName(v1::NotificationOutcome outcome) {
  switch (outcome) {
    case v1::NOTIFICATION_OUTCOME_DELIVERED:
      return "delivered";
    case v1::NOTIFICATION_OUTCOME_FAILED:
      return "failed";
    case v1::NOTIFICATION_OUTCOME_GAVE_UP:
      return "gave_up";
    default:
      return "unspecified";
  }
}

// Prefixes a failure with the step that failed (kept as the ack's
// last_error, so it must say what went wrong where).
absl::Status Annotate(const absl::Status& status, const std::string& step) {
  return absl::Status(status.code(),
                      absl::StrCat(step, ": ", status.message()));
}

}  // namespace

NotificationDeliverer::NotificationDeliverer(
    DelivererOptions options, ServerClient* server, RpcClient* rpc,
    const ClientAddressBook* addresses, HostResolver* resolver,
    DelayScheduler* scheduler, OutstandingOps* ops)
    : options_(std::move(options)),
      server_(server),
      rpc_(rpc),
      addresses_(addresses),
      resolver_(resolver),
      scheduler_(scheduler),
      ops_(ops),
      request_id_prefix_(absl::StrCat(
          options_.gateway_id, "/nsm-ack/",
          absl::Hex(absl::Uniform<uint64_t>(absl::BitGen())))) {}

NotificationDeliverer::OfferResult NotificationDeliverer::Offer(
    const v1::NotificationEvent& event) {
  DeliveryPtr d;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return OfferResult::kStopped;
    if (tracked_.contains(event.sequence())) return OfferResult::kDuplicate;
    if (tracked_.size() >= options_.max_tracked) {
      ++stats_.refused_full;
      refetch_owed_ = true;
      return OfferResult::kFull;
    }
    d = std::make_shared<Delivery>();
    d->event = event;
    d->attempts = event.attempts();
    d->self = event.has_status_callback() &&
              event.status_callback().my_id().my_prog() == kNlmProgram &&
              absl::EqualsIgnoreCase(event.status_callback().my_id().my_name(),
                                     options_.gateway_id);
    tracked_[event.sequence()] = d;
    if (d->self) {
      ++stats_.self_acked;
    } else if (event.has_sm_notify() || event.has_status_callback()) {
      ready_.push_back(event.sequence());
    }
  }
  if (d->self) {
    LogEvent(LogLevel::kInfo, "nsm_own_callback_acked",
             {{"sequence", event.sequence()},
              {"mon_name", event.status_callback().mon_name()},
              {"state", event.status_callback().state()}});
    Ack(d, v1::NOTIFICATION_OUTCOME_DELIVERED);
  } else if (!event.has_sm_notify() && !event.has_status_callback()) {
    // A kind this gateway does not know (a newer server): it can never be
    // delivered here, so say so rather than leave it pending forever.
    d->last_error = "event kind not supported by this gateway";
    LogEvent(LogLevel::kError, "nsm_event_unsupported",
             {{"sequence", event.sequence()}});
    Ack(d, v1::NOTIFICATION_OUTCOME_GAVE_UP);
  } else {
    Pump();
  }
  return OfferResult::kAccepted;
}

void NotificationDeliverer::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  tracked_.clear();
  ready_.clear();
}

size_t NotificationDeliverer::tracked() const {
  absl::MutexLock lock(&mu_);
  return tracked_.size();
}

DelivererStats NotificationDeliverer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

const std::vector<absl::Duration>& NotificationDeliverer::ScheduleFor(
    const Delivery& d) const {
  return d.event.has_sm_notify() ? options_.notify_retry_schedule
                                 : options_.callback_retry_schedule;
}

bool NotificationDeliverer::IsCurrent(const DeliveryPtr& d) const {
  absl::MutexLock lock(&mu_);
  if (stopped_) return false;
  auto it = tracked_.find(d->event.sequence());
  return it != tracked_.end() && it->second == d;
}

void NotificationDeliverer::Pump() {
  std::vector<DeliveryPtr> start;
  {
    absl::MutexLock lock(&mu_);
    while (!stopped_ && in_flight_ < options_.max_in_flight &&
           !ready_.empty()) {
      const uint64_t sequence = ready_.front();
      ready_.pop_front();
      auto it = tracked_.find(sequence);
      if (it == tracked_.end()) continue;  // acked or forgotten meanwhile
      ++in_flight_;
      start.push_back(it->second);
    }
  }
  for (const DeliveryPtr& d : start) Attempt(d);
}

void NotificationDeliverer::Attempt(const DeliveryPtr& d) {
  if (!ops_->Begin()) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    return;
  }
  Done done = [this, d](absl::Status status) {
    AttemptDone(d, std::move(status));
  };
  if (d->event.has_sm_notify()) {
    AttemptSmNotify(d, std::move(done));
  } else {
    AttemptCallback(d, std::move(done));
  }
}

void NotificationDeliverer::AttemptSmNotify(const DeliveryPtr& d, Done done) {
  const v1::SmNotify& n = d->event.sm_notify();
  std::vector<std::string> known;
  auto add = [&known](const std::string& address) {
    std::optional<std::string> literal = AsIpLiteral(address);
    if (literal && std::find(known.begin(), known.end(), *literal) ==
                       known.end()) {
      known.push_back(*literal);
    }
  };
  for (const std::string& address : n.target_addresses()) add(address);
  if (std::optional<std::string> seen = addresses_->Lookup(n.target_host())) {
    add(*seen);
  }
  Outgoing out;
  out.shape = Outgoing::Shape::kStatChge;
  out.target = CallTarget{kNsmProgram, kNsmVersion, kNsmNotifyProc};
  out.mon_name = n.announced_name();
  out.state = n.state();
  CallHost(n.target_host(), std::move(known), d->attempts, std::move(out),
           std::move(done));
}

void NotificationDeliverer::AttemptCallback(const DeliveryPtr& d, Done done) {
  const v1::StatusCallback& c = d->event.status_callback();
  Outgoing out;
  out.shape = c.my_id().my_prog() == kNlmProgram
                  ? Outgoing::Shape::kNlmSmStatus
                  : Outgoing::Shape::kSmStatus;
  out.target = CallTarget{c.my_id().my_prog(), c.my_id().my_vers(),
                          c.my_id().my_proc()};
  out.mon_name = c.mon_name();
  out.state = c.state();
  // The server stores exactly 16 bytes; pad or cut defensively anyway.
  out.priv = c.priv().substr(0, SM_PRIV_SIZE);
  out.priv.resize(SM_PRIV_SIZE, '\0');
  CallHost(c.my_id().my_name(), {}, d->attempts, std::move(out),
           std::move(done));
}

void NotificationDeliverer::CallHost(const std::string& host,
                                     std::vector<std::string> known,
                                     uint32_t attempt, Outgoing out,
                                     Done done) {
  // Rotate over the known addresses and, last, the name itself: a client
  // whose recorded address is stale is still reached through its name.
  const size_t choices = known.size() + 1;
  const size_t pick = attempt % choices;
  if (pick < known.size()) {
    CallAddress(known[pick], std::move(out), std::move(done));
    return;
  }
  const size_t round = attempt / choices;
  resolver_->Resolve(
      host, options_.resolve_timeout,
      [this, round, out = std::move(out), done = std::move(done)](
          absl::StatusOr<std::vector<std::string>> resolved) mutable {
        if (!resolved.ok()) {
          done(resolved.status());
          return;
        }
        const std::string address = (*resolved)[round % resolved->size()];
        CallAddress(address, std::move(out), std::move(done));
      });
}

void NotificationDeliverer::CallAddress(const std::string& address,
                                        Outgoing out, Done done) {
  const std::string where =
      absl::StrCat("GETPORT ", out.target.prog, "/", out.target.vers, " at ",
                   address, ":", options_.rpcbind_port);
  rpc_->GetPort(
      address, out.target.prog, out.target.vers, TransportKind::kUdp,
      [this, address, where, out = std::move(out),
       done = std::move(done)](absl::StatusOr<uint16_t> port) mutable {
        if (!port.ok()) {
          done(Annotate(port.status(), where));
          return;
        }
        const RpcEndpoint to{address, *port, TransportKind::kUdp};
        const std::string what =
            absl::StrCat("call ", out.target.prog, "/", out.target.vers, "/",
                         out.target.proc, " at ", address, ":", *port);
        RpcReplyCallback on_reply =
            [what, done = std::move(done)](absl::StatusOr<RpcReply> reply) {
              absl::Status s = reply.ok() ? ReplyStatus(reply->header)
                                          : reply.status();
              done(s.ok() ? s : Annotate(s, what));
            };
        // rpcgen structs point into `out`; RpcClient encodes before
        // Call returns.
        char* name = const_cast<char*>(out.mon_name.c_str());
        switch (out.shape) {
          case Outgoing::Shape::kStatChge: {
            stat_chge args{name, out.state};
            rpc_->Call(to, out.target, CallCredentials::None(),
                       XdrProc(xdr_stat_chge), &args, std::move(on_reply));
            break;
          }
          case Outgoing::Shape::kNlmSmStatus: {
            nlm_sm_status args{};
            args.mon_name = name;
            args.state = out.state;
            std::memcpy(args.priv, out.priv.data(), SM_PRIV_SIZE);
            rpc_->Call(to, out.target, CallCredentials::None(),
                       XdrProc(xdr_nlm_sm_status), &args, std::move(on_reply));
            break;
          }
          case Outgoing::Shape::kSmStatus: {
            sm_status args{};
            args.mon_name = name;
            args.state = out.state;
            std::memcpy(args.priv, out.priv.data(), SM_PRIV_SIZE);
            rpc_->Call(to, out.target, CallCredentials::None(),
                       XdrProc(xdr_sm_status), &args, std::move(on_reply));
            break;
          }
        }
      },
      options_.rpcbind_port);
}

void NotificationDeliverer::AttemptDone(const DeliveryPtr& d,
                                        absl::Status status) {
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  if (IsCurrent(d)) {
    const uint64_t sequence = d->event.sequence();
    if (status.ok()) {
      LogEvent(LogLevel::kInfo, "nsm_notification_delivered",
               {{"sequence", sequence},
                {"what", Describe(d->event)},
                {"attempts", d->attempts + 1}});
      Ack(d, v1::NOTIFICATION_OUTCOME_DELIVERED);
    } else {
      ++d->attempts;
      d->last_error = std::string(status.message());
      {
        absl::MutexLock lock(&mu_);
        ++stats_.failed_attempts;
        if (d->event.has_sm_notify()) ++stats_.notify_failed_attempts;
      }
      const std::vector<absl::Duration>& schedule = ScheduleFor(*d);
      if (d->attempts > schedule.size()) {
        LogEvent(LogLevel::kError, "nsm_notification_gave_up",
                 {{"sequence", sequence},
                  {"what", Describe(d->event)},
                  {"attempts", d->attempts},
                  {"error", d->last_error}});
        Ack(d, v1::NOTIFICATION_OUTCOME_GAVE_UP);
      } else {
        const absl::Duration delay = schedule[d->attempts - 1];
        LogEvent(LogLevel::kWarn, "nsm_notification_attempt_failed",
                 {{"sequence", sequence},
                  {"what", Describe(d->event)},
                  {"attempts", d->attempts},
                  {"retry_in", absl::FormatDuration(delay)},
                  {"error", d->last_error}});
        Ack(d, v1::NOTIFICATION_OUTCOME_FAILED);
        if (!scheduler_->RunAfter(delay, [this, sequence] {
              Requeue(sequence);
            }).ok()) {
          Forget(sequence);
        }
      }
    }
  }
  Pump();
  ops_->End();
}

void NotificationDeliverer::Ack(const DeliveryPtr& d,
                                v1::NotificationOutcome outcome) {
  if (!ops_->Begin()) return;
  auto request = std::make_shared<v1::AckNotificationRequest>();
  request->set_request_id(absl::StrCat(request_id_prefix_, "/",
                                       d->event.sequence(), "/",
                                       OutcomeName(outcome), "/", d->attempts));
  request->set_gateway_id(options_.gateway_id);
  request->set_sequence(d->event.sequence());
  request->set_outcome(outcome);
  request->set_attempts(d->attempts);
  if (outcome != v1::NOTIFICATION_OUTCOME_DELIVERED) {
    request->set_last_error(d->last_error);
  }
  server_->Call<v1::AckNotificationResponse>(
      [request](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
                v1::AckNotificationResponse* response,
                std::function<void(grpc::Status)> done) {
        stubs.monitor->async()->AckNotification(ctx, request.get(), response,
                                                std::move(done));
      },
      [this, d, outcome, request](const grpc::Status& status,
                                  const v1::AckNotificationResponse& response) {
        const uint64_t sequence = request->sequence();
        if (outcome == v1::NOTIFICATION_OUTCOME_FAILED) {
          // Progress report only. applied = false: the event is no longer
          // pending (another instance finished it): stop retrying.
          if (status.ok() && !response.applied()) Erase(d);
          if (!status.ok()) {
            LogEvent(LogLevel::kWarn, "nsm_ack_failed",
                     {{"sequence", sequence},
                      {"outcome", OutcomeName(outcome)},
                      {"error", status.error_message()}});
          }
        } else if (status.ok()) {
          Erase(d);
          absl::MutexLock lock(&mu_);
          const bool notify = d->event.has_sm_notify();
          if (outcome == v1::NOTIFICATION_OUTCOME_GAVE_UP) {
            ++stats_.gave_up;
            if (notify) ++stats_.notify_gave_up;
          } else if (!d->self) {
            ++stats_.delivered;
            if (notify) ++stats_.notify_delivered;
          }
        } else {
          LogEvent(LogLevel::kWarn, "nsm_ack_failed",
                   {{"sequence", sequence},
                    {"outcome", OutcomeName(outcome)},
                    {"ack_attempts", d->ack_attempts + 1},
                    {"error", status.error_message()}});
          if (++d->ack_attempts >= options_.max_ack_attempts ||
              !IsCurrent(d) ||
              !scheduler_->RunAfter(options_.ack_retry_delay, [this, d, outcome] {
                 if (IsCurrent(d)) Ack(d, outcome);
               }).ok()) {
            Forget(sequence);
          }
        }
        ops_->End();
      });
}

void NotificationDeliverer::Requeue(uint64_t sequence) {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || !tracked_.contains(sequence)) return;
    ready_.push_back(sequence);
  }
  Pump();
}

void NotificationDeliverer::Forget(uint64_t sequence) {
  {
    absl::MutexLock lock(&mu_);
    if (tracked_.erase(sequence) == 0) return;
    ++stats_.forgotten;
    refetch_owed_ = true;
  }
  LogEvent(LogLevel::kWarn, "nsm_notification_left_to_server",
           {{"sequence", sequence}});
  MaybeRefetch();
}

void NotificationDeliverer::Erase(const DeliveryPtr& d) {
  {
    absl::MutexLock lock(&mu_);
    auto it = tracked_.find(d->event.sequence());
    if (it == tracked_.end() || it->second != d) return;
    tracked_.erase(it);
  }
  MaybeRefetch();
}

void NotificationDeliverer::MaybeRefetch() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || !refetch_owed_ ||
        tracked_.size() > options_.max_tracked / 2) {
      return;
    }
    refetch_owed_ = false;
  }
  if (on_refetch_) on_refetch_();
}

}  // namespace lockwarden::gateway::nsm
