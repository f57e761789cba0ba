#include "gateway/client/server_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lockwarden::gateway {

absl::StatusOr<std::vector<std::string>> ParseServerList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const size_t colon = part.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == part.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--server: '", part, "' is not HOST:PORT"));
    }
    out.emplace_back(part);
  }
  if (out.empty()) return absl::InvalidArgumentError("--server: no address given");
  return out;
}

bool IsRetryable(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::FAILED_PRECONDITION:  // A standby; see the header.
    case grpc::StatusCode::ABORTED:
      return true;
    default:
      return false;
  }
}

ServerClient::ServerClient(ServerClientOptions options)
    : options_(std::move(options)), servers_(options_.servers) {
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

ServerClient::~ServerClient() {
  {
    absl::MutexLock lock(&timer_mu_);
    stopping_ = true;
    wake_ = true;
  }
  timer_thread_.join();
}

ServerClient::Stubs& ServerClient::StubsFor(const std::string& address) {
  for (auto& s : stubs_) {
    if (s->address == address) return *s;
  }
  auto s = std::make_unique<Stubs>();
  s->address = address;
  grpc::ChannelArguments args;
  // Fail fast while a server is down instead of queueing until the deadline.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  s->channel = grpc::CreateCustomChannel(
      address,
      options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials(),
      args);
  s->lock = v1::LockService::NewStub(s->channel);
  s->monitor = v1::MonitorService::NewStub(s->channel);
  stubs_.push_back(std::move(s));
  return *stubs_.back();
}

ServerClient::Stubs& ServerClient::Current() {
  absl::MutexLock lock(&mu_);
  return StubsFor(servers_[current_ % servers_.size()]);
}

void ServerClient::Rotate(const std::string& leader) {
  absl::MutexLock lock(&mu_);
  if (!leader.empty()) {
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (servers_[i] == leader) {
        current_ = i;
        return;
      }
    }
    // A leader we were not told about (e.g. a new pod): follow it.
    servers_.push_back(leader);
    current_ = servers_.size() - 1;
    return;
  }
  current_ = (current_ + 1) % servers_.size();
}

bool ServerClient::Schedule(int64_t delay_ms, std::function<void()> fn) {
  absl::MutexLock lock(&timer_mu_);
  if (stopping_ || timers_.size() >= kRetryQueueMax) return false;
  timers_.push(Timer{std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms),
                     timer_seq_++, std::move(fn)});
  wake_ = true;  // The new timer may be due before the one being waited for.
  return true;
}

void ServerClient::TimerLoop() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&timer_mu_);
      for (;;) {
        if (stopping_) return;
        if (!timers_.empty() && timers_.top().at <= std::chrono::steady_clock::now()) break;
        const absl::Duration wait =
            timers_.empty() ? absl::Milliseconds(100)
                            : absl::FromChrono(timers_.top().at - std::chrono::steady_clock::now());
        wake_ = false;
        timer_mu_.AwaitWithTimeout(absl::Condition(&wake_), wait);
      }
      fn = std::move(const_cast<Timer&>(timers_.top()).fn);
      timers_.pop();
    }
    fn();
  }
}

}  // namespace lockwarden::gateway
