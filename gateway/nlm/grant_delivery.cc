#include "gateway/nlm/grant_delivery.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/nlm/nlm_args.h"
#include "gateway/nlm/request_id.h"
#include "gateway/nlm/version.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway::nlm {
namespace {

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(std::max(d, absl::ZeroDuration())));
}

const char* OutcomeName(v1::GrantOutcome o) {
  switch (o) {
    case v1::GRANT_OUTCOME_DELIVERED:
      return "delivered";
    case v1::GRANT_OUTCOME_REFUSED:
      return "refused";
    case v1::GRANT_OUTCOME_UNDELIVERABLE:
      return "undeliverable";
    default:
      return "unspecified";
  }
}

// What a client's GRANTED answer means for the event; nullopt = retry.
std::optional<v1::GrantOutcome> OutcomeOfAnswer(v1::LockStatus status) {
  if (status == v1::LOCK_STATUS_GRANTED) return v1::GRANT_OUTCOME_DELIVERED;
  // Linux lockd (nlmsvc_grant_reply) retries a GRANTED answered with
  // DENIED_GRACE_PERIOD: the client's side is not ready yet.
  if (status == v1::LOCK_STATUS_GRACE_PERIOD) return std::nullopt;
  return v1::GRANT_OUTCOME_REFUSED;
}

bool RetryableAck(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::ABORTED ||
         code == grpc::StatusCode::CANCELLED;
}

}  // namespace

struct GrantDelivery::Delivery {
  explicit Delivery(asio::io_context& io) : timer(io) {}
  v1::GrantEvent event;
  absl::Time send_until;  // deadline minus the margin
  NlmPeer peer;
  uint32_t attempts = 0;
  bool concluded = false;  // outcome decided; ack in progress
  asio::steady_timer timer;
};

GrantDelivery::GrantDelivery(GrantDeliveryOptions options,
                             ServerClient* server,
                             NlmCallbackClient* callbacks,
                             asio::io_context& io)
    : options_(std::move(options)),
      server_(server),
      callbacks_(callbacks),
      io_(io) {}

GrantDelivery::~GrantDelivery() { Stop(); }

std::string GrantDelivery::CookieFor(uint64_t sequence) {
  std::string cookie(8, '\0');
  for (int i = 0; i < 8; ++i) {
    cookie[i] = static_cast<char>(sequence >> (8 * (7 - i)));
  }
  return cookie;
}

std::optional<uint64_t> GrantDelivery::SequenceFromCookie(
    const std::string& cookie) {
  if (cookie.size() != 8) return std::nullopt;
  uint64_t v = 0;
  for (unsigned char c : cookie) v = (v << 8) | c;
  if (v == 0) return std::nullopt;  // sequences start at 1
  return v;
}

GrantDeliveryStats GrantDelivery::stats() const {
  absl::MutexLock lock(&mu_);
  GrantDeliveryStats s = stats_;
  s.in_flight = active_.size();
  return s;
}

void GrantDelivery::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  stream_thread_ = std::thread([this] { StreamLoop(); });
}

void GrantDelivery::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    if (stream_ctx_ != nullptr) stream_ctx_->TryCancel();
    for (auto& [seq, d] : active_) d->timer.cancel();
  }
  if (stream_thread_.joinable()) stream_thread_.join();
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return acks_in_flight_ == 0;
  };
  mu_.AwaitWithTimeout(absl::Condition(&idle), options_.stop_timeout);
}

uint64_t GrantDelivery::ResumePoint() const {
  uint64_t resume = last_received_;
  for (const auto& [seq, d] : active_) resume = std::min(resume, seq - 1);
  return resume;
}

void GrantDelivery::StreamLoop() {
  absl::Duration backoff = options_.reconnect_backoff_initial;
  // Bounded by Stop(): every wait below ends when stopping_ is set.
  while (true) {
    grpc::ClientContext ctx;
    v1::WatchGrantsRequest req;
    req.set_gateway_id(options_.gateway_name);
    req.set_instance_name(options_.instance_name);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      stream_ctx_ = &ctx;
      last_stream_message_ = absl::Now();
      req.set_after_sequence(ResumePoint());
    }
    // Watchdog: cancels a stream that stopped sending heartbeats.
    auto watchdog = std::make_shared<asio::steady_timer>(io_);
    auto alive = std::make_shared<std::atomic<bool>>(true);
    std::function<void()> arm;
    arm = [this, watchdog, alive, &ctx, &arm]() {
      watchdog->expires_after(ToChrono(options_.stream_idle_timeout / 3));
      watchdog->async_wait([this, alive, &ctx, &arm](asio::error_code ec) {
        if (ec || !alive->load()) return;
        absl::MutexLock lock(&mu_);
        if (stream_ctx_ != &ctx) return;
        if (absl::Now() - last_stream_message_ > options_.stream_idle_timeout) {
          LogEvent(LogLevel::kWarn, "grant_stream_idle",
                   {{"gateway", options_.gateway_name}});
          ctx.TryCancel();
          return;
        }
        arm();
      });
    };
    arm();

    ServerClient::Stubs& stubs = server_->Current();
    const std::string address = stubs.address;
    std::unique_ptr<grpc::ClientReader<v1::WatchGrantsResponse>> reader =
        stubs.lock->WatchGrants(&ctx, req);
    v1::WatchGrantsResponse resp;
    bool got_any = false;
    while (reader->Read(&resp)) {
      got_any = true;
      backoff = options_.reconnect_backoff_initial;
      for (const v1::GrantEvent& event : resp.events()) {
        // Back-pressure: wait for room before taking the next event.
        {
          absl::MutexLock lock(&mu_);
          auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
            return stopping_ ||
                   active_.size() < options_.deliveries_in_flight_max;
          };
          mu_.Await(absl::Condition(&room));
          if (stopping_) break;
          last_received_ = std::max(last_received_, event.sequence());
        }
        Deliver(event);
      }
      absl::MutexLock lock(&mu_);
      last_stream_message_ = absl::Now();
    }
    grpc::Status status = reader->Finish();
    std::string leader;
    {
      // The watchdog re-arms its timer under mu_; stopping it under mu_
      // keeps every operation on the timer serialised.
      absl::MutexLock lock(&mu_);
      alive->store(false);
      watchdog->cancel();
      stream_ctx_ = nullptr;
      if (stopping_) return;
      ++stats_.stream_reconnects;
    }
    const auto& trailers = ctx.GetServerTrailingMetadata();
    auto it = trailers.find(kLeaderAddressMetadata);
    if (it != trailers.end()) {
      leader.assign(it->second.data(), it->second.size());
    }
    LogEvent(got_any ? LogLevel::kInfo : LogLevel::kWarn, "grant_stream_ended",
             {{"server", address},
              {"code", static_cast<int>(status.error_code())},
              {"error", status.error_message()},
              {"leader", leader}});
    server_->Rotate(leader);
    // Wait, interruptible by Stop(); no wait when redirected to a leader.
    const absl::Duration wait = leader.empty() ? backoff : absl::ZeroDuration();
    backoff = std::min(backoff * 2, options_.reconnect_backoff_max);
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stopping_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&stopping), wait);
  }
}

bool GrantDelivery::Deliver(const v1::GrantEvent& event) {
  auto d = std::make_shared<Delivery>(io_);
  d->event = event;
  const v1::CallbackTarget& cb = event.callback();
  d->peer.address = cb.client_address();
  d->peer.port = static_cast<uint16_t>(cb.client_port());
  d->peer.vers = IsSupportedVersion(cb.nlm_version()) ? cb.nlm_version()
                                                       : uint32_t{NLM4_VERS};
  d->peer.transport = cb.transport() == v1::TRANSPORT_TCP
                          ? TransportKind::kTcp
                          : TransportKind::kUdp;
  const absl::Time deadline =
      event.has_deadline()
          ? absl::FromUnixSeconds(event.deadline().seconds()) +
                absl::Nanoseconds(event.deadline().nanos())
          : absl::Now() + options_.default_grant_timeout;
  d->send_until = deadline - options_.deadline_margin;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.events_received;
    if (stopping_) return false;
    if (active_.contains(event.sequence())) {
      ++stats_.events_skipped;
      return false;
    }
    active_[event.sequence()] = d;
  }
  LogEvent(LogLevel::kInfo, "grant_event",
           {{"sequence", event.sequence()},
            {"client", event.owner().client_name()},
            {"address", d->peer.address},
            {"nlm_version", d->peer.vers},
            {"redelivery", event.redelivery_count()}});
  asio::post(io_, [this, seq = event.sequence()] { Attempt(seq); });
  return true;
}

void GrantDelivery::Attempt(uint64_t sequence) {
  DeliveryPtr d;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto it = active_.find(sequence);
    if (it == active_.end() || it->second->concluded) return;
    d = it->second;
  }
  if (absl::Now() >= d->send_until) {
    Conclude(sequence, v1::GRANT_OUTCOME_UNDELIVERABLE,
             absl::StrCat("no GRANTED answer from ", d->peer.address,
                          " before the grant deadline after ", d->attempts,
                          " attempts"));
    return;
  }
  const v1::GrantEvent& e = d->event;
  const v1::CallbackTarget& cb = e.callback();
  const std::string cookie = CookieFor(sequence);
  const std::string caller =
      cb.caller_name().empty() ? options_.gateway_name : cb.caller_name();
  const std::string fh = e.file_handle();
  const std::string oh = e.owner().oh();
  const Range64 range = FromProto(e.range());
  const bool use_msg = cb.use_granted_msg();
  const uint32_t proc = use_msg ? uint32_t{NLMPROC4_GRANTED_MSG}
                                : uint32_t{NLMPROC4_GRANTED};
  {
    absl::MutexLock lock(&mu_);
    if (d->attempts > 0) ++stats_.retries;
    ++d->attempts;
    ++stats_.attempts;
  }
  // Retry timer first: a GRANTED_MSG is answered by a separate GRANTED_RES,
  // which cancels it; a synchronous GRANTED re-arms it on failure.
  if (use_msg) ScheduleRetry(d);

  auto on_sent = [sequence, d](absl::Status s) {
    if (s.ok()) return;
    LogEvent(LogLevel::kWarn, "granted_msg_send_failed",
             {{"sequence", sequence},
              {"address", d->peer.address},
              {"error", s}});
  };
  auto on_reply = [this, sequence, d](absl::StatusOr<RpcReply> reply) {
    if (!reply.ok()) {
      LogEvent(LogLevel::kWarn, "granted_call_failed",
               {{"sequence", sequence},
                {"address", d->peer.address},
                {"error", reply.status()}});
      ScheduleRetry(d);
      return;
    }
    v1::LockStatus status = v1::LOCK_STATUS_FAILED;
    absl::Status s;
    if (Is32BitVersion(d->peer.vers)) {
      nlm_res res{};
      s = reply->DecodeResults(XdrProc(xdr_nlm_res), &res);
      if (s.ok()) status = StatusOf(res);
      XdrFree(XdrProc(xdr_nlm_res), &res);
    } else {
      nlm4_res res{};
      s = reply->DecodeResults(XdrProc(xdr_nlm4_res), &res);
      if (s.ok()) status = StatusOf(res);
      XdrFree(XdrProc(xdr_nlm4_res), &res);
    }
    if (!s.ok()) {
      LogEvent(LogLevel::kWarn, "granted_reply_bad",
               {{"sequence", sequence}, {"error", s}});
      ScheduleRetry(d);
      return;
    }
    std::optional<v1::GrantOutcome> outcome = OutcomeOfAnswer(status);
    if (!outcome.has_value()) {
      ScheduleRetry(d);
      return;
    }
    Conclude(sequence, *outcome,
             absl::StrCat("client answered GRANTED with status ",
                          static_cast<int>(status)));
  };

  // nlm4_testargs (v4) and nlm_testargs (v1/v3) have the same fields; only
  // the range's width and the XDR routine differ. The strings above outlive
  // the call: the arguments are encoded before Send/Call return.
  auto send_granted = [&](auto args, xdrproc_t encoder, auto offset,
                          auto length) {
    args.cookie = NetobjOf(cookie);
    args.exclusive = e.exclusive();
    args.alock.caller_name = const_cast<char*>(caller.c_str());
    args.alock.fh = NetobjOf(fh);
    args.alock.oh = NetobjOf(oh);
    args.alock.svid = static_cast<int>(e.owner().svid());
    args.alock.l_offset = offset;
    args.alock.l_len = length;
    if (use_msg) {
      callbacks_->Send(d->peer, proc, encoder, &args, on_sent);
    } else {
      callbacks_->Call(d->peer, proc, encoder, &args, on_reply);
    }
  };
  if (!Is32BitVersion(d->peer.vers)) {
    send_granted(nlm4_testargs{}, XdrProc(xdr_nlm4_testargs), range.offset,
                 range.length);
    return;
  }
  std::optional<Range32> r32 = RangeFor32(range);
  if (!r32.has_value()) {
    Conclude(sequence, v1::GRANT_OUTCOME_UNDELIVERABLE,
             "granted range starts past what NLM v1/v3 can express");
    return;
  }
  send_granted(nlm_testargs{}, XdrProc(xdr_nlm_testargs), r32->offset,
               r32->length);
}

void GrantDelivery::ScheduleRetry(const DeliveryPtr& d) {
  const uint64_t sequence = d->event.sequence();
  absl::MutexLock lock(&mu_);
  if (stopping_ || d->concluded) return;
  // Never wait past the send deadline: the attempt then concludes.
  const absl::Duration wait =
      std::min(options_.retry_interval, d->send_until - absl::Now());
  d->timer.expires_after(ToChrono(wait));
  d->timer.async_wait([this, sequence](asio::error_code ec) {
    if (ec) return;  // cancelled: concluded or stopping
    Attempt(sequence);
  });
}

void GrantDelivery::OnGrantedRes(const std::string& cookie,
                                 v1::LockStatus status,
                                 const std::string& from) {
  std::optional<uint64_t> sequence = SequenceFromCookie(cookie);
  if (!sequence.has_value()) {
    absl::MutexLock lock(&mu_);
    ++stats_.granted_res_unmatched;
    LogEvent(LogLevel::kWarn, "granted_res_unknown_cookie",
             {{"from", from}, {"cookie_bytes", cookie.size()}});
    return;
  }
  std::optional<v1::GrantOutcome> outcome = OutcomeOfAnswer(status);
  bool tracked = false;
  DeliveryPtr d;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    auto it = active_.find(*sequence);
    if (it != active_.end()) {
      tracked = true;
      d = it->second;
    } else {
      ++stats_.granted_res_unmatched;
    }
  }
  if (!outcome.has_value()) {
    // Grace on the client side: the retry timer (if ours) resends.
    LogEvent(LogLevel::kInfo, "granted_res_retry_later",
             {{"sequence", *sequence}, {"from", from}});
    return;
  }
  const std::string detail = absl::StrCat(
      "GRANTED_RES from ", from, " with status ", static_cast<int>(status));
  if (tracked) {
    Conclude(*sequence, *outcome, detail);
    return;
  }
  // Not ours (another process of this gateway identity, or before a
  // restart): the ack is idempotent and keyed by sequence, so send it.
  LogEvent(LogLevel::kInfo, "granted_res_untracked",
           {{"sequence", *sequence}, {"from", from}});
  SendAck(*sequence, *outcome, detail, 1, /*tracked=*/false);
}

void GrantDelivery::Conclude(uint64_t sequence, v1::GrantOutcome outcome,
                             const std::string& detail) {
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(sequence);
    if (it == active_.end() || it->second->concluded) return;
    it->second->concluded = true;
    it->second->timer.cancel();
    switch (outcome) {
      case v1::GRANT_OUTCOME_DELIVERED:
        ++stats_.delivered;
        break;
      case v1::GRANT_OUTCOME_REFUSED:
        ++stats_.refused;
        break;
      default:
        ++stats_.undeliverable;
        break;
    }
  }
  LogEvent(outcome == v1::GRANT_OUTCOME_DELIVERED ? LogLevel::kInfo
                                                  : LogLevel::kWarn,
           "grant_concluded",
           {{"sequence", sequence},
            {"outcome", OutcomeName(outcome)},
            {"detail", detail}});
  SendAck(sequence, outcome, detail, 1, /*tracked=*/true);
}

void GrantDelivery::SendAck(uint64_t sequence, v1::GrantOutcome outcome,
                            const std::string& detail, int attempt,
                            bool tracked) {
  auto req = std::make_shared<v1::AckGrantRequest>();
  req->set_request_id(DeriveInternalRequestId(
      "ack", {options_.gateway_name, absl::StrCat(sequence),
              OutcomeName(outcome)}));
  req->set_gateway_id(options_.gateway_name);
  req->set_sequence(sequence);
  req->set_outcome(outcome);
  if (outcome != v1::GRANT_OUTCOME_DELIVERED) {
    req->set_detail(detail.substr(0, 1024));
  }
  {
    absl::MutexLock lock(&mu_);
    ++acks_in_flight_;
  }
  server_->Call<v1::AckGrantResponse>(
      [req](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
            v1::AckGrantResponse* resp, std::function<void(grpc::Status)> cb) {
        stubs.lock->async()->AckGrant(ctx, req.get(), resp, std::move(cb));
      },
      [this, sequence, outcome, detail, attempt, tracked](
          const grpc::Status& status, const v1::AckGrantResponse& resp) {
        bool retry = false;
        if (status.ok()) {
          if (outcome == v1::GRANT_OUTCOME_DELIVERED && !resp.applied() &&
              !resp.lock_held()) {
            // The client was told GRANTED for a lock it does not hold.
            LogEvent(LogLevel::kError, "granted_lock_not_held",
                     {{"sequence", sequence},
                      {"detail", "the grant passed its deadline before the "
                                 "client's GRANTED_RES was acknowledged"}});
          }
          if (tracked) Forget(sequence);
        } else if (RetryableAck(status.error_code()) &&
                   attempt < options_.ack_attempts_max) {
          retry = true;
        } else {
          LogEvent(LogLevel::kError, "grant_ack_failed",
                   {{"sequence", sequence},
                    {"outcome", OutcomeName(outcome)},
                    {"code", static_cast<int>(status.error_code())},
                    {"error", status.error_message()}});
          absl::MutexLock lock(&mu_);
          ++stats_.acks_failed;
        }
        if (!retry && !status.ok() && tracked) Forget(sequence);
        if (retry) {
          bool stopping = false;
          {
            absl::MutexLock lock(&mu_);
            stopping = stopping_;
          }
          if (!stopping) {
            auto timer = std::make_shared<asio::steady_timer>(io_);
            timer->expires_after(ToChrono(options_.ack_retry_interval));
            timer->async_wait([this, timer, sequence, outcome, detail,
                               attempt, tracked](asio::error_code ec) {
              if (ec) return;
              SendAck(sequence, outcome, detail, attempt + 1, tracked);
            });
          } else if (tracked) {
            Forget(sequence);
          }
        }
        absl::MutexLock lock(&mu_);
        --acks_in_flight_;
      });
}

void GrantDelivery::Forget(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  active_.erase(sequence);
}

}  // namespace lockwarden::gateway::nlm
