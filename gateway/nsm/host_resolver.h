// HostResolver: getaddrinfo() off the I/O threads, with a bounded wait.
//
//   HostResolver resolver(HostResolverOptions{}, &scheduler);
//   resolver.Resolve("client1.example", absl::Seconds(5),
//       [](absl::StatusOr<std::vector<std::string>> addresses) { ... });
//
// NSM needs names resolved in three places (the strict SM_NOTIFY source
// check, our SM_NOTIFY to a monitored host, the status callback to my_name)
// and all of them run on transport or gRPC threads that must never block.
// getaddrinfo cannot be cancelled, so it runs on a few dedicated worker
// threads; the caller's callback is called exactly once, with
//   - the addresses (IP literals, IPv4-mapped IPv6 normalised to IPv4,
//     duplicates removed, in getaddrinfo order), or
//   - NotFound (the name does not resolve), DeadlineExceeded (no answer
//     within the timeout; the worker finishes in the background and its
//     answer is discarded), ResourceExhausted (more than
//     `max_pending` resolutions queued), Cancelled (Stop).
// IP literals and "localhost" are answered at once without a worker, on
// the calling thread (before Resolve returns).
//
// Thread safety: thread-safe. Callbacks run on a worker, the scheduler
// thread, or the caller (see above), and must not block.
#ifndef LOCKWARDEN_GATEWAY_NSM_HOST_RESOLVER_H_
#define LOCKWARDEN_GATEWAY_NSM_HOST_RESOLVER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/nsm/delay_scheduler.h"

namespace lockwarden::gateway::nsm {

using ResolveCallback =
    std::function<void(absl::StatusOr<std::vector<std::string>>)>;

// The normalised text form of `name` if it is an IPv4/IPv6 literal.
std::optional<std::string> AsIpLiteral(const std::string& name);

struct HostResolverOptions {
  size_t threads = 2;
  size_t max_pending = 256;
};

class HostResolver {
 public:
  // `scheduler` (not owned) runs the timeouts and must outlive Stop().
  HostResolver(HostResolverOptions options, DelayScheduler* scheduler);
  ~HostResolver();  // Stop()
  HostResolver(const HostResolver&) = delete;
  HostResolver& operator=(const HostResolver&) = delete;

  void Resolve(const std::string& name, absl::Duration timeout,
               ResolveCallback done);

  // Answers queued resolutions with Cancelled and joins the workers (a
  // worker inside getaddrinfo finishes that call first). Idempotent.
  void Stop();

 private:
  struct Job;
  void WorkerLoop();
  static absl::StatusOr<std::vector<std::string>> Lookup(
      const std::string& name);

  const HostResolverOptions options_;
  DelayScheduler* const scheduler_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<Job>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_HOST_RESOLVER_H_
