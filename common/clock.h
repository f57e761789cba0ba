// Time source for everything above the pure core. The core takes `now_ms` as
// an argument; services read it from a Clock so tests can drive time.
//
// Thread-safety: RealClock is stateless; FakeClock is thread-safe.
#ifndef LOCKWARDEN_COMMON_CLOCK_H_
#define LOCKWARDEN_COMMON_CLOCK_H_

#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace lockwarden {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;
};

class RealClock final : public Clock {
 public:
  int64_t NowMs() const override { return absl::ToUnixMillis(absl::Now()); }
};

// A clock that moves only when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override {
    absl::MutexLock lock(&mu_);
    return now_ms_;
  }
  void AdvanceMs(int64_t delta_ms) {
    absl::MutexLock lock(&mu_);
    now_ms_ += delta_ms;
  }

 private:
  mutable absl::Mutex mu_;
  int64_t now_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden

#endif  // LOCKWARDEN_COMMON_CLOCK_H_
