#include "gateway/nsm/delay_scheduler.h"

#include <utility>

namespace lockwarden::gateway::nsm {

DelayScheduler::DelayScheduler(size_t max_scheduled)
    : max_scheduled_(max_scheduled), thread_([this] { Loop(); }) {}

DelayScheduler::~DelayScheduler() { Stop(); }

absl::Status DelayScheduler::RunAfter(absl::Duration delay,
                                      std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::CancelledError("scheduler stopped");
  if (tasks_.size() >= max_scheduled_) {
    return absl::ResourceExhaustedError(
        "delay scheduler full (max_scheduled reached)");
  }
  tasks_.push(Task{absl::Now() + delay, next_seq_++, std::move(fn)});
  return absl::OkStatus();
}

void DelayScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
  absl::MutexLock lock(&mu_);
  while (!tasks_.empty()) tasks_.pop();
}

size_t DelayScheduler::scheduled() const {
  absl::MutexLock lock(&mu_);
  return tasks_.size();
}

void DelayScheduler::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (tasks_.empty()) {
      // Woken by RunAfter/Stop through the condition; the timeout only
      // bounds how long a missed wake-up could last.
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !tasks_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      continue;
    }
    const absl::Time due = tasks_.top().due;
    const absl::Time now = absl::Now();
    if (due > now) {
      // Wake early if a sooner task arrives or we are stopped.
      const size_t size = tasks_.size();
      auto changed = [this, size]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || tasks_.size() != size;
      };
      mu_.AwaitWithDeadline(absl::Condition(&changed), due);
      continue;
    }
    Task task = std::move(const_cast<Task&>(tasks_.top()));
    tasks_.pop();
    mu_.Unlock();
    task.fn();
    task.fn = nullptr;  // destroy captures outside the lock too
    mu_.Lock();
  }
}

}  // namespace lockwarden::gateway::nsm
