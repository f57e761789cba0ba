#include "gateway/nsm/host_resolver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gateway/rpc/transport.h"

namespace lockwarden::gateway::nsm {

// One resolution; completed exactly once by whichever of the worker, the
// timeout or Stop gets there first.
struct HostResolver::Job {
  std::string name;
  ResolveCallback done;
  std::atomic<bool> finished{false};

  void Finish(absl::StatusOr<std::vector<std::string>> result) {
    if (finished.exchange(true)) return;
    ResolveCallback cb = std::move(done);
    cb(std::move(result));
  }
};

std::optional<std::string> AsIpLiteral(const std::string& name) {
  absl::StatusOr<asio::ip::address> parsed = ParseAddress(name);
  if (!parsed.ok()) return std::nullopt;
  return NormalizedAddressString(*parsed);
}

HostResolver::HostResolver(HostResolverOptions options,
                           DelayScheduler* scheduler)
    : options_(options), scheduler_(scheduler) {
  const size_t threads = std::max<size_t>(options_.threads, 1);
  for (size_t i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

HostResolver::~HostResolver() { Stop(); }

void HostResolver::Resolve(const std::string& name, absl::Duration timeout,
                           ResolveCallback done) {
  if (std::optional<std::string> literal = AsIpLiteral(name)) {
    done(std::vector<std::string>{*literal});
    return;
  }
  // What statd and the kernel mean by the local host, whatever
  // /etc/hosts says (containers often lack an entry).
  if (absl::AsciiStrToLower(name) == "localhost") {
    done(std::vector<std::string>{"127.0.0.1"});
    return;
  }
  if (name.empty()) {
    done(absl::InvalidArgumentError("empty host name"));
    return;
  }
  auto job = std::make_shared<Job>();
  job->name = name;
  job->done = std::move(done);
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::CancelledError("resolver stopped");
    } else if (queue_.size() >= options_.max_pending) {
      refused = absl::ResourceExhaustedError(absl::StrCat(
          "resolving ", name, ": too many pending resolutions (max_pending ",
          options_.max_pending, ")"));
    } else {
      queue_.push_back(job);
    }
  }
  if (!refused.ok()) {
    job->Finish(refused);
    return;
  }
  // If the timer cannot be set (scheduler full or stopped), the worker's
  // answer still comes: getaddrinfo has its own resolver timeouts.
  scheduler_->RunAfter(timeout, [job, timeout] {
    job->Finish(absl::DeadlineExceededError(absl::StrCat(
        "resolving ", job->name, ": no answer within ",
        absl::FormatDuration(timeout))));
  }).IgnoreError();
}

void HostResolver::Stop() {
  std::deque<std::shared_ptr<Job>> cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    cancelled.swap(queue_);
  }
  for (auto& job : cancelled) {
    job->Finish(absl::CancelledError("resolver stopped"));
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void HostResolver::WorkerLoop() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    // Timed out while queued: do not spend a lookup on it.
    if (job->finished.load()) continue;
    job->Finish(Lookup(job->name));
  }
}

absl::StatusOr<std::vector<std::string>> HostResolver::Lookup(
    const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(name.c_str(), nullptr, &hints, &result);
  if (rc != 0) {
    const std::string text = absl::StrCat("resolving ", name, ": ",
                                          gai_strerror(rc));
    if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_FAIL) {
      return absl::NotFoundError(text);
    }
    return absl::UnavailableError(text);
  }
  std::vector<std::string> addresses;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    char host[NI_MAXHOST];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), nullptr,
                    0, NI_NUMERICHOST) != 0) {
      continue;
    }
    std::optional<std::string> normalised = AsIpLiteral(host);
    if (!normalised) continue;  // e.g. a scoped link-local "fe80::1%eth0"
    if (std::find(addresses.begin(), addresses.end(), *normalised) ==
        addresses.end()) {
      addresses.push_back(*normalised);
    }
  }
  freeaddrinfo(result);
  if (addresses.empty()) {
    return absl::NotFoundError(absl::StrCat("resolving ", name,
                                            ": no usable address"));
  }
  return addresses;
}

}  // namespace lockwarden::gateway::nsm
