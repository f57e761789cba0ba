#include "gateway/nsm/notification_stream.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "common/logging.h"

namespace lockwarden::gateway::nsm {
namespace {

// How often the watchdog looks at the open stream.
constexpr absl::Duration kWatchdogPeriod = absl::Milliseconds(500);

}  // namespace

NotificationStream::NotificationStream(NotificationStreamOptions options,
                                       ServerClient* server, EventSink sink)
    : options_(std::move(options)), server_(server), sink_(std::move(sink)) {}

NotificationStream::~NotificationStream() { Stop(); }

void NotificationStream::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  stream_thread_ = std::thread([this] { Run(); });
  watchdog_thread_ = std::thread([this] { Watchdog(); });
}

void NotificationStream::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  if (stream_thread_.joinable()) stream_thread_.join();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
}

void NotificationStream::RequestRefetch() {
  absl::MutexLock lock(&mu_);
  refetch_ = true;
  if (ctx_ != nullptr) {
    restart_ = true;
    ctx_->TryCancel();
  }
}

bool NotificationStream::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

NotificationStreamStats NotificationStream::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool NotificationStream::SleepUnlessStopping(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), delay);
  return !stopping_;
}

void NotificationStream::Run() {
  absl::Duration backoff = options_.backoff_initial;
  while (true) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    v1::WatchNotificationsRequest request;
    request.set_gateway_id(options_.gateway_id);
    request.set_instance_name(options_.instance_name);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      ctx_ = ctx.get();
      request.set_after_sequence(refetch_ ? 0 : after_sequence_);
      refetch_ = false;
      restart_ = false;
      last_message_ = absl::Now();
      ++stats_.connects;
    }
    ServerClient::Stubs& stubs = server_->Current();
    const std::string address = stubs.address;
    std::unique_ptr<grpc::ClientReader<v1::WatchNotificationsResponse>>
        reader = stubs.monitor->WatchNotifications(ctx.get(), request);
    v1::WatchNotificationsResponse response;
    while (reader->Read(&response)) {
      {
        absl::MutexLock lock(&mu_);
        if (!connected_) {
          LogEvent(LogLevel::kInfo, "nsm_notification_stream_open",
                   {{"server", address},
                    {"after_sequence", request.after_sequence()}});
        }
        connected_ = true;
        last_message_ = absl::Now();
        if (response.events().empty()) ++stats_.heartbeats;
        stats_.events += response.events_size();
        for (const v1::NotificationEvent& e : response.events()) {
          after_sequence_ = std::max(after_sequence_, e.sequence());
        }
      }
      backoff = options_.backoff_initial;
      for (const v1::NotificationEvent& e : response.events()) sink_(e);
    }
    const grpc::Status status = reader->Finish();
    std::string leader;
    const auto& trailers = ctx->GetServerTrailingMetadata();
    auto it = trailers.find(kLeaderAddressMetadata);
    if (it != trailers.end()) leader.assign(it->second.data(), it->second.size());
    bool restart = false;
    {
      absl::MutexLock lock(&mu_);
      ctx_ = nullptr;
      connected_ = false;
      if (stopping_) break;
      restart = restart_;
      if (!restart) ++stats_.stream_errors;
    }
    if (restart) continue;  // refetch: reconnect at once, same server
    LogEvent(LogLevel::kWarn, "nsm_notification_stream_ended",
             {{"server", address},
              {"code", static_cast<int>(status.error_code())},
              {"error", status.error_message()},
              {"leader", leader}});
    server_->Rotate(leader);
    const absl::Duration delay = leader.empty() ? backoff : absl::ZeroDuration();
    backoff = std::min(backoff * 2, options_.backoff_max);
    if (!SleepUnlessStopping(delay)) break;
  }
}

void NotificationStream::Watchdog() {
  while (SleepUnlessStopping(kWatchdogPeriod)) {
    absl::MutexLock lock(&mu_);
    if (ctx_ == nullptr || absl::Now() - last_message_ < options_.idle_timeout) {
      continue;
    }
    LogEvent(LogLevel::kWarn, "nsm_notification_stream_idle",
             {{"idle_timeout", absl::FormatDuration(options_.idle_timeout)}});
    ++stats_.idle_cancels;
    last_message_ = absl::Now();  // one cancel per silent period
    ctx_->TryCancel();
  }
}

}  // namespace lockwarden::gateway::nsm
