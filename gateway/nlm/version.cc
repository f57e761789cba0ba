#include "gateway/nlm/version.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway::nlm {

Range64 NormalizeRange32(uint32_t offset, uint32_t length) {
  if (length == 0) return Range64{offset, 0};
  // Computed in 64 bits: the sum of two 32-bit values cannot overflow.
  const uint64_t end_exclusive = uint64_t{offset} + uint64_t{length};
  if (end_exclusive > kMax32 + 1) return Range64{offset, 0};
  return Range64{offset, length};
}

Range64 NormalizeRange64(uint64_t offset, uint64_t length) {
  if (length == 0) return Range64{offset, 0};
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  // The range [offset, offset + length - 1] fits iff length - 1 <= kMax -
  // offset; otherwise it is clamped to end at kMax. offset 0 always fits.
  if (length - 1 > kMax - offset) return Range64{offset, kMax - offset + 1};
  return Range64{offset, length};
}

std::optional<Range32> RangeFor32(const Range64& range) {
  if (range.offset > kMax32) return std::nullopt;
  if (range.length == 0) return Range32{static_cast<uint32_t>(range.offset), 0};
  // Last byte of the range, without overflow (the model never wraps).
  const uint64_t last = range.length - 1 > kMax32 - range.offset
                            ? kMax32 + 1
                            : range.offset + range.length - 1;
  // Ending past 2^32 - 1, or a length that needs 33 bits (offset 0, length
  // 2^32): to end of file is the closest a v1/v3 client can see.
  if (last > kMax32 || range.length > kMax32) {
    return Range32{static_cast<uint32_t>(range.offset), 0};
  }
  return Range32{static_cast<uint32_t>(range.offset),
                 static_cast<uint32_t>(range.length)};
}

v1::ByteRange ToProto(const Range64& range) {
  v1::ByteRange out;
  out.set_offset(range.offset);
  out.set_length(range.length);
  return out;
}

Range64 FromProto(const v1::ByteRange& range) {
  return Range64{range.offset(), range.length()};
}

nlm4_stats ToNlm4Stats(v1::LockStatus status) {
  switch (status) {
    case v1::LOCK_STATUS_GRANTED:
    case v1::LOCK_STATUS_DENIED:
    case v1::LOCK_STATUS_NO_LOCKS:
    case v1::LOCK_STATUS_BLOCKED:
    case v1::LOCK_STATUS_GRACE_PERIOD:
    case v1::LOCK_STATUS_DEADLOCK:
    case v1::LOCK_STATUS_READ_ONLY_FS:
    case v1::LOCK_STATUS_STALE_FH:
    case v1::LOCK_STATUS_FBIG:
    case v1::LOCK_STATUS_FAILED:
      // LockStatus is defined as nlm4_stats + 1.
      return static_cast<nlm4_stats>(static_cast<int>(status) - 1);
    default:
      return NLM4_FAILED;
  }
}

nlm_stats ToNlmStats(v1::LockStatus status) {
  switch (status) {
    case v1::LOCK_STATUS_GRANTED:
      return LCK_GRANTED;
    case v1::LOCK_STATUS_DENIED:
    case v1::LOCK_STATUS_DEADLOCK:  // v1/v3 have no DEADLCK.
      return LCK_DENIED;
    case v1::LOCK_STATUS_BLOCKED:
      return LCK_BLOCKED;
    case v1::LOCK_STATUS_GRACE_PERIOD:
      return LCK_DENIED_GRACE_PERIOD;
    default:
      // NO_LOCKS, and Linux lockd's catch-all for what v1/v3 cannot say.
      return LCK_DENIED_NOLOCKS;
  }
}

v1::LockStatus FromNlm4Stats(uint32_t stat) {
  if (stat > NLM4_FAILED) return v1::LOCK_STATUS_FAILED;
  return static_cast<v1::LockStatus>(stat + 1);
}

v1::LockStatus FromNlmStats(uint32_t stat) {
  if (stat > LCK_DENIED_GRACE_PERIOD) return v1::LOCK_STATUS_FAILED;
  return static_cast<v1::LockStatus>(stat + 1);
}

uint32_t ToWireStats(uint32_t vers, v1::LockStatus status) {
  return Is32BitVersion(vers) ? static_cast<uint32_t>(ToNlmStats(status))
                              : static_cast<uint32_t>(ToNlm4Stats(status));
}

v1::LockStatus FromWireStats(uint32_t vers, uint32_t stat) {
  return Is32BitVersion(vers) ? FromNlmStats(stat) : FromNlm4Stats(stat);
}

std::optional<EdgeRejection> ValidateLockFields(const std::string& caller_name,
                                                const std::string& fh,
                                                const std::string& oh) {
  if (caller_name.empty()) {
    return EdgeRejection{v1::LOCK_STATUS_FAILED, "caller_name is empty"};
  }
  if (caller_name.size() > kMaxCallerNameBytes) {
    return EdgeRejection{v1::LOCK_STATUS_FAILED,
                         absl::StrCat("caller_name is ", caller_name.size(),
                                      " bytes, limit ", kMaxCallerNameBytes)};
  }
  if (fh.empty()) {
    return EdgeRejection{v1::LOCK_STATUS_STALE_FH, "fh is empty"};
  }
  if (fh.size() > kMaxFileHandleBytes) {
    return EdgeRejection{
        v1::LOCK_STATUS_STALE_FH,
        absl::StrCat("fh is ", fh.size(), " bytes, limit ", kMaxFileHandleBytes,
                     " (NFSv3 handle)")};
  }
  if (oh.size() > kMaxOwnerHandleBytes) {
    return EdgeRejection{v1::LOCK_STATUS_FAILED,
                         absl::StrCat("oh is ", oh.size(), " bytes, limit ",
                                      kMaxOwnerHandleBytes)};
  }
  return std::nullopt;
}

}  // namespace lockwarden::gateway::nlm
