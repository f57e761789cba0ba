// NLM version normalisation: the one place where NLM v1/v3 (32-bit ranges,
// nlm_stats) and v4 (64-bit ranges, nlm4_stats) meet lockwarden's single
// 64-bit model (lockwarden.v1.ByteRange, lockwarden.v1.LockStatus).
//
// Ranges in (client -> gateway):
//   v1/v3: 32-bit offset and length. length 0 = to end of file. When
//          offset + length > 2^32 the client asked for a range that runs past
//          what v1/v3 can name; like Linux lockd (fs/lockd/xdr.c, a negative
//          32-bit end becomes OFFSET_MAX) it is taken as "to end of file".
//          A range ending exactly at byte 2^32 - 1 is kept as is.
//   v4:    64-bit offset and length. length 0 = to end of file. When
//          offset + length > 2^64 the range is clamped to end at byte
//          2^64 - 1 (never wrapped).
// Ranges out (TEST holder, GRANTED callback arguments):
//   v4:    as held.
//   v1/v3: a range starting past 2^32 - 1 cannot be expressed at all
//          (nullopt: the caller answers DENIED_NOLOCKS, see below); a range
//          ending past 2^32 - 1 is reported as length 0 (to end of file).
// Statuses (lockwarden.v1.LockStatus = nlm4_stats + 1):
//   v4:    one subtraction; UNSPECIFIED or unknown values -> NLM4_FAILED.
//   v1/v3: GRANTED, DENIED, NO_LOCKS, BLOCKED, GRACE_PERIOD map 1:1;
//          DEADLOCK -> LCK_DENIED (v1/v3 have no DEADLCK); everything v1/v3
//          cannot express (ROFS, STALE_FH, FBIG, FAILED, unknown) ->
//          LCK_DENIED_NOLOCKS, which is Linux lockd's catch-all for v1/v3
//          (nlmsvc_proc_* "cast_status"). In particular the FBIG of a
//          holder that starts past 2^32 - 1 is DENIED_NOLOCKS on v1/v3.
//
// Edge checks (ValidateLockFields): oversize or empty fields are refused at
// the gateway with a reason for the log, before any server call:
//   caller_name: 1..1024 bytes (LM_MAXSTRLEN);
//   fh:          1..64 bytes (NFS3_FHSIZE). v1/v3 carry the handle in a
//                netobj of up to 1024 bytes, but nothing longer than 64 bytes
//                is an NFSv3 handle, and the lock service stores at most 64:
//                answered NLM4_STALE_FH on v4 (the handle names no file we can
//                lock, which is what Linux lockd answers for a handle it
//                cannot look up) and LCK_DENIED_NOLOCKS on v1/v3;
//   oh:          at most 1024 bytes (MAXNETOBJ_SZ) -> FAILED / DENIED_NOLOCKS.
// XDR decoding already bounds caller_name and the netobjs at 1024 bytes, so
// the last check only matters for callers that bypass XDR (tests, fuzzers).
//
// Thread safety: pure functions.
#ifndef LOCKWARDEN_GATEWAY_NLM_VERSION_H_
#define LOCKWARDEN_GATEWAY_NLM_VERSION_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "gateway/xdr/nlm_prot.h"
#include "lockwarden/v1/common.pb.h"

namespace lockwarden::gateway::nlm {

inline constexpr uint32_t kNlmProgram = 100021;
inline constexpr uint64_t kMax32 = 0xffffffffull;
inline constexpr size_t kMaxCallerNameBytes = 1024;  // LM_MAXSTRLEN
inline constexpr size_t kMaxFileHandleBytes = 64;    // NFS3_FHSIZE
inline constexpr size_t kMaxOwnerHandleBytes = 1024;  // MAXNETOBJ_SZ
inline constexpr size_t kMaxCookieBytes = 1024;       // MAXNETOBJ_SZ

// True for the versions with 32-bit ranges and nlm_stats (1 and 3).
inline bool Is32BitVersion(uint32_t vers) { return vers != NLM4_VERS; }
// True for 1, 3 and 4.
inline bool IsSupportedVersion(uint32_t vers) {
  return vers == NLM_VERS || vers == NLM_VERSX || vers == NLM4_VERS;
}

// A byte range in the 64-bit model (length 0 = to end of file).
struct Range64 {
  uint64_t offset = 0;
  uint64_t length = 0;
  friend bool operator==(const Range64& a, const Range64& b) {
    return a.offset == b.offset && a.length == b.length;
  }
};

// A range as a v1/v3 client can see it.
struct Range32 {
  uint32_t offset = 0;
  uint32_t length = 0;
  friend bool operator==(const Range32& a, const Range32& b) {
    return a.offset == b.offset && a.length == b.length;
  }
};

Range64 NormalizeRange32(uint32_t offset, uint32_t length);
Range64 NormalizeRange64(uint64_t offset, uint64_t length);
// nullopt when the range starts past 2^32 - 1.
std::optional<Range32> RangeFor32(const Range64& range);

v1::ByteRange ToProto(const Range64& range);
Range64 FromProto(const v1::ByteRange& range);

nlm4_stats ToNlm4Stats(v1::LockStatus status);
nlm_stats ToNlmStats(v1::LockStatus status);
// Back into the model (GRANTED replies and GRANTED_RES from clients);
// values outside the enum become FAILED.
v1::LockStatus FromNlm4Stats(uint32_t stat);
v1::LockStatus FromNlmStats(uint32_t stat);
// The wire status for `vers` as a number (nlm_stats or nlm4_stats).
uint32_t ToWireStats(uint32_t vers, v1::LockStatus status);
v1::LockStatus FromWireStats(uint32_t vers, uint32_t stat);

// An edge refusal: what to answer and why (for the log).
struct EdgeRejection {
  v1::LockStatus answer = v1::LOCK_STATUS_FAILED;
  std::string reason;
};
// Checks the fields of a lock (or share) request; nullopt when acceptable.
std::optional<EdgeRejection> ValidateLockFields(const std::string& caller_name,
                                                const std::string& fh,
                                                const std::string& oh);

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_VERSION_H_
