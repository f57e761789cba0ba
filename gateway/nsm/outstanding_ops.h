// OutstandingOps: counts asynchronous operations (RPC calls, gRPC calls,
// name resolutions) whose completion callbacks still refer to an object, so
// that the object's Stop() can refuse new ones and wait for the rest before
// the object is destroyed.
//
//   if (!ops.Begin()) return;          // stopping: do not start
//   client.Call(..., [&ops](...) { ...; ops.End(); });
//   ...
//   ops.StopAndWait(absl::Seconds(30));   // in Stop()
//
// Every operation counted here must complete by itself in bounded time
// (each has its own timeout), which is what bounds StopAndWait.
//
// Thread safety: thread-safe.
#ifndef LOCKWARDEN_GATEWAY_NSM_OUTSTANDING_OPS_H_
#define LOCKWARDEN_GATEWAY_NSM_OUTSTANDING_OPS_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace lockwarden::gateway::nsm {

class OutstandingOps {
 public:
  // False once stopping: the caller must not start the operation.
  bool Begin() {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;
    ++count_;
    return true;
  }
  // Starts an operation even while stopping (the completion of one that
  // was already counted, e.g. a reply that must still be sent).
  void BeginAlways() {
    absl::MutexLock lock(&mu_);
    ++count_;
  }
  void End() {
    absl::MutexLock lock(&mu_);
    --count_;
  }
  bool stopping() const {
    absl::MutexLock lock(&mu_);
    return stopping_;
  }
  size_t count() const {
    absl::MutexLock lock(&mu_);
    return count_;
  }
  // Refuses new operations and waits until none is outstanding or `max`
  // passed. True if all completed.
  bool StopAndWait(absl::Duration max) {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return count_ == 0;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), max);
  }

 private:
  mutable absl::Mutex mu_;
  size_t count_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_OUTSTANDING_OPS_H_
