// Inclusive byte intervals [start, end] over the full 64-bit space, and the
// conversion from NLM (offset, length) ranges. Inclusive ends make the last
// byte 2^64-1 representable without a special "to EOF" value.
//
// Thread-safety: pure functions.
#ifndef LOCKWARDEN_SERVER_CORE_INTERVAL_H_
#define LOCKWARDEN_SERVER_CORE_INTERVAL_H_

#include <cstdint>
#include <limits>

#include "server/core/types.h"

namespace lockwarden::core {

inline constexpr uint64_t kLastByte = std::numeric_limits<uint64_t>::max();

struct Interval {
  uint64_t start = 0;
  uint64_t end = 0;  // Inclusive; start <= end always.

  friend bool operator==(const Interval& a, const Interval& b) {
    return a.start == b.start && a.end == b.end;
  }
  friend bool operator!=(const Interval& a, const Interval& b) {
    return !(a == b);
  }
};

// length 0 = to the last byte; offset + length - 1 past 2^64-1 is clamped.
inline Interval ToInterval(const Range& r) {
  if (r.length == 0 || r.length - 1 > kLastByte - r.offset) {
    return Interval{r.offset, kLastByte};
  }
  return Interval{r.offset, r.offset + (r.length - 1)};
}

// Ranges that reach the last byte are reported with length 0 ("to EOF").
inline Range ToRange(const Interval& i) {
  if (i.end == kLastByte) return Range{i.start, 0};
  return Range{i.start, i.end - i.start + 1};
}

inline bool Overlaps(const Interval& a, const Interval& b) {
  return a.start <= b.end && b.start <= a.end;
}

// True when a and b overlap or touch (a.end + 1 == b.start or vice versa).
inline bool Touches(const Interval& a, const Interval& b) {
  if (Overlaps(a, b)) return true;
  if (a.end != kLastByte && a.end + 1 == b.start) return true;
  if (b.end != kLastByte && b.end + 1 == a.start) return true;
  return false;
}

inline bool Contains(const Interval& outer, const Interval& inner) {
  return outer.start <= inner.start && inner.end <= outer.end;
}

}  // namespace lockwarden::core

#endif  // LOCKWARDEN_SERVER_CORE_INTERVAL_H_
