// TCP record marking for ONC RPC (RFC 5531 section 11).
//
// Wire format: a record is a sequence of fragments; each fragment is a
// 4-byte big-endian header followed by that many bytes:
//
//   header = (last_fragment ? 0x80000000 : 0) | fragment_length (31 bits)
//
// RecordDecoder is a streaming reassembler: feed it whatever chunks the
// socket returns; it yields every complete record. A record larger than
// the configured maximum, or one split into more fragments than allowed,
// is a framing error: the decoder stops (the connection must be closed,
// since the stream can no longer be resynchronised).
//
// kMaxRecordBytes = 64 KiB: the largest NLM/NSM call is about 4 KiB
// (three 1 KiB netobjs, a 1 KiB name, the RPC header with a 400-byte
// credential), so 64 KiB leaves a wide margin while bounding what one
// connection can make us buffer.
//
// Thread safety: a RecordDecoder is owned by one connection and used from
// one thread (or strand) at a time.
#ifndef LOCKWARDEN_GATEWAY_RPC_RECORD_MARKING_H_
#define LOCKWARDEN_GATEWAY_RPC_RECORD_MARKING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lockwarden::gateway {

inline constexpr size_t kMaxRecordBytes = 64 * 1024;
// A legitimate sender uses one fragment; a few more are tolerated. Bounds
// the work per record for a sender that dribbles empty fragments.
inline constexpr size_t kMaxFragmentsPerRecord = 64;
inline constexpr uint32_t kLastFragmentBit = 0x80000000u;
inline constexpr size_t kMaxFragmentBytes = 0x7fffffffu;

class RecordDecoder {
 public:
  explicit RecordDecoder(size_t max_record_bytes = kMaxRecordBytes,
                         size_t max_fragments = kMaxFragmentsPerRecord);

  // Consumes `chunk` and appends every record it completes to `*records`.
  // Returns ResourceExhausted (record too large) or InvalidArgument (too
  // many fragments); once failed, every later call returns the same error.
  absl::Status Feed(absl::string_view chunk, std::vector<std::string>* records);

  // Bytes of an incomplete record (and partial header) held right now.
  size_t buffered_bytes() const { return record_.size() + header_len_; }
  bool failed() const { return !status_.ok(); }

 private:
  absl::Status Fail(absl::Status s);

  const size_t max_record_bytes_;
  const size_t max_fragments_;
  absl::Status status_;
  char header_[4] = {};
  size_t header_len_ = 0;         // bytes of the current header seen
  size_t fragment_remaining_ = 0;  // payload bytes still to read
  bool in_fragment_ = false;
  bool last_fragment_ = false;
  size_t fragments_ = 0;  // fragments of the current record
  std::string record_;
};

// Appends `message` as one record split into fragments of at most
// `max_fragment_bytes` (>= 1) to `*out`.
void AppendRecord(absl::string_view message, std::string* out,
                  size_t max_fragment_bytes = kMaxFragmentBytes);

inline std::string EncodeRecord(absl::string_view message,
                                size_t max_fragment_bytes = kMaxFragmentBytes) {
  std::string out;
  AppendRecord(message, &out, max_fragment_bytes);
  return out;
}

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_RECORD_MARKING_H_
