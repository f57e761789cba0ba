// DelayScheduler: runs short closures after a delay on one dedicated thread
// (notification retry timers, resolution timeouts, ack backoff).
//
//   DelayScheduler scheduler;           // kDefaultMaxScheduled
//   scheduler.RunAfter(absl::Seconds(2), [] { ... });
//   scheduler.Stop();                   // discards what has not run
//
// Closures run one at a time on the scheduler thread, in due order (ties in
// submission order), and must not block: they start asynchronous work.
// At most `max_scheduled` closures wait; RunAfter beyond that returns
// ResourceExhausted and drops the closure.
//
// Thread safety: RunAfter and Stop are thread-safe; RunAfter may be called
// from a closure. Stop must not be called from a closure.
#ifndef LOCKWARDEN_GATEWAY_NSM_DELAY_SCHEDULER_H_
#define LOCKWARDEN_GATEWAY_NSM_DELAY_SCHEDULER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lockwarden::gateway::nsm {

class DelayScheduler {
 public:
  static constexpr size_t kDefaultMaxScheduled = 100000;

  explicit DelayScheduler(size_t max_scheduled = kDefaultMaxScheduled);
  ~DelayScheduler();  // Stop()
  DelayScheduler(const DelayScheduler&) = delete;
  DelayScheduler& operator=(const DelayScheduler&) = delete;

  // Runs `fn` on the scheduler thread once `delay` has passed.
  // ResourceExhausted at the limit, Cancelled after Stop.
  absl::Status RunAfter(absl::Duration delay, std::function<void()> fn);

  // Stops the thread; closures not yet run are destroyed without running.
  // Idempotent.
  void Stop();

  size_t scheduled() const;

 private:
  struct Task {
    absl::Time due;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Task& o) const {
      return due > o.due || (due == o.due && seq > o.seq);
    }
  };
  void Loop();

  const size_t max_scheduled_;
  mutable absl::Mutex mu_;
  std::priority_queue<Task, std::vector<Task>, std::greater<Task>> tasks_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_DELAY_SCHEDULER_H_
