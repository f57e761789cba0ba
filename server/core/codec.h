// Persisted format of the lock core: the keys and values of the records in
// every Delta, and their decoding for LockCore::Rebuild.
//
// Key layout (all keys ASCII-prefixed; <id> is 16 lower-case hex digits,
// zero-padded, so key order is numeric order):
//   m/counters          Counters: next fencing token, next event sequence,
//                       next id, events dropped
//   m/import            present only while a staged snapshot import is
//                       writing the store (first commit puts it, last
//                       commit deletes it): the other records are then a
//                       mix of the old and the new state (lock_core.h)
//   l/<token>           a granted lock; its fencing token is its id
//   w/<id>              a waiter (blocked LOCK); FIFO order per file = id
//   s/<id>              a share reservation
//   c/<client name>     a client's recorded NSM state number
//   g/<gateway name>    a gateway identity: NSM state, grace, ledger
//   n/<id>              an NSM monitor registration
//   e/<sequence>        a pending event in a gateway's outbox
//   d/<ring>/<slot>     a remembered request id and its reply (dedup):
//                       <ring> is dedup_entries_max and <slot> is
//                       sequence % <ring>, each 8 lower-case hex digits,
//                       so a ring of N slots is overwritten in place (one
//                       put per new entry, no delete)
//   d/<id>              the same record in the layout written before the
//                       ring (FIFO, sequence = <id> from next_id, evicted
//                       by a delete); read, never written: LockCore moves
//                       such records into the ring (lock_core_dedup.cc)
// Names in keys are raw bytes; a prefix is never followed by another
// prefix's content, so the families cannot collide.
//
// Value grammar: every value is
//   value   := version:u8(=1) field*  (then end of input, exactly)
//   u64     := LEB128 varint (at most 10 bytes)
//   i64/i32 := zigzag varint (i32 must fit in 32 bits)
//   bool    := u8 0 or 1
//   bytes   := u64 length, then length bytes
//   owner   := bytes client, u64 svid (< 2^32), bytes oh
// Fields per family, in order:
//   counters: u64 next_token, u64 next_event_sequence, u64 next_id,
//             u64 events_dropped
//   lock:     bytes fh, owner, u64 start, u64 end(inclusive), bool exclusive,
//             bytes gateway, i32 client_state, i64 granted_ms,
//             bool unconfirmed, i64 grant_deadline_ms, u64 event_sequence
//   waiter:   bytes fh, owner, u64 start, u64 end, bool exclusive,
//             bool reclaim, bytes gateway, i32 client_state, i64 queued_ms,
//             bytes callback, bytes cookie
//   share:    bytes fh, bytes client, bytes oh, u8 access, u8 deny,
//             bytes gateway, i32 client_state, i64 granted_ms
//   client:   i32 nsm_state
//   gateway:  i32 nsm_state, i64 grace_until_ms, u64 n,
//             n x (bytes client, bool reclaimed, bool done),
//             [bool draining]  (optional: present, and 1, only while the
//             identity is drained; records without it read as not drained)
//   monitor:  bytes gateway, bytes mon_name, bytes my_name, u64 my_prog,
//             u64 my_vers, u64 my_proc, bytes priv
//   event:    bytes gateway, i64 created_ms, u8 kind, then
//             kind 0 Granted:  bytes fh, owner, u64 offset, u64 length,
//                              bool exclusive, u64 token, i32 client_state,
//                              bytes callback, bytes cookie
//             kind 1 SmNotify: bytes target, bytes mon_name, i32 state
//             kind 2 Status:   bytes mon_name, i32 state, bytes my_name,
//                              u64 my_prog, u64 my_vers, u64 my_proc,
//                              bytes priv
//   import:   u64 key_count, i64 started_ms, bytes source
//   dedup:    bytes request_id, u8 command_kind, reply, [u64 sequence]
//             (sequence: present, > 0 and = <slot> mod <ring>, in ring
//             records; absent in d/<id> records, whose sequence is <id>)
//   reply:    u8 status, bytes message, bool has_holder,
//             [owner, u64 offset, u64 length, bool exclusive],
//             u64 fencing_token, i32 nsm_state, bool stale, u64 released
// Anything else (unknown version, trailing bytes, truncated field, value out
// of range) is corruption: Rebuild answers DataLoss.
//
// Thread-safety: pure functions.
#ifndef LOCKWARDEN_SERVER_CORE_CODEC_H_
#define LOCKWARDEN_SERVER_CORE_CODEC_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/core/types.h"
#include "server/core/views.h"

namespace lockwarden::core::codec {

inline constexpr uint8_t kVersion = 1;
inline constexpr absl::string_view kCountersKey = "m/counters";
inline constexpr absl::string_view kImportMarkerKey = "m/import";
inline constexpr char kLockPrefix[] = "l/";
inline constexpr char kWaiterPrefix[] = "w/";
inline constexpr char kSharePrefix[] = "s/";
inline constexpr char kClientPrefix[] = "c/";
inline constexpr char kGatewayPrefix[] = "g/";
inline constexpr char kMonitorPrefix[] = "n/";
inline constexpr char kEventPrefix[] = "e/";
inline constexpr char kDedupPrefix[] = "d/";

// "<prefix><16 hex digits>".
std::string IdKey(const char* prefix, uint64_t id);
// Parses the 16 hex digits after a 2-byte prefix; false if malformed.
bool ParseIdKey(absl::string_view key, uint64_t* id);

// Dedup ring keys "d/<ring>/<slot>" (8 hex digits each). The ring size is
// part of the key so that rings of different sizes (dedup_entries_max
// changed between restarts) and the old d/<id> layout never share a key:
// a write into the current ring can only overwrite a record of the current
// ring, which is then outside the window of the newest `ring` sequences
// (lock_core_dedup.cc relies on this to move old records one at a time).
inline constexpr uint64_t kDedupRingMax = 0xffffffffu;
std::string DedupRingKey(uint64_t ring, uint64_t slot);
// Parses a ring key; false for anything else (including d/<id>).
bool ParseDedupRingKey(absl::string_view key, uint64_t* ring, uint64_t* slot);

// A dedup record, either layout (d/<ring>/<slot> or the old d/<id>).
struct DedupRecord {
  uint64_t sequence = 0;
  std::string request_id;
  uint8_t command_kind = 0;
  Reply reply;
};
// Encodes a ring record's value.
std::string EncodeDedupRecord(const DedupRecord& d);
// Decodes the record stored under `key` (checks the key/sequence rules
// above); false if malformed. Does not check command_kind's range.
bool DecodeDedupRecord(absl::string_view key, absl::string_view value,
                       DedupRecord* out);

// Appends values in the grammar above.
class Writer {
 public:
  Writer() {
    out_.reserve(128);  // Most records fit: one allocation per value.
    out_.push_back(static_cast<char>(kVersion));
  }
  void U64(uint64_t v);
  void I64(int64_t v) {
    U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void I32(int32_t v) { I64(v); }
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void Bytes(absl::string_view s) {
    U64(s.size());
    out_.append(s.data(), s.size());
  }
  void OwnerFields(const Owner& o) {
    Bytes(o.client);
    U64(o.svid);
    Bytes(o.oh);
  }
  std::string Finish() && { return std::move(out_); }

 private:
  std::string out_;
};

// Reads values in the grammar above; every method returns false on
// malformed input and the reader then stays failed.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool Version();
  bool U64(uint64_t* v);
  bool I64(int64_t* v);
  bool I32(int32_t* v);
  bool U8(uint8_t* v);
  bool Bool(bool* v);
  bool Bytes(std::string* s);
  bool OwnerFields(Owner* o);
  bool Done() const { return ok_ && in_.empty(); }

 private:
  bool Fail() { return ok_ = false; }
  absl::string_view in_;
  bool ok_ = true;
};

void WriteReply(Writer& w, const Reply& r);
bool ReadReply(Reader& r, Reply* out);

std::string EncodeImportMarker(const ImportMarker& m);
bool DecodeImportMarker(absl::string_view value, ImportMarker* out);

void WriteEvent(Writer& w, const Event& e);  // gateway, created_ms, body.
bool ReadEvent(Reader& r, Event* out);

}  // namespace lockwarden::core::codec

#endif  // LOCKWARDEN_SERVER_CORE_CODEC_H_
