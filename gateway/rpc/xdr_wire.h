// Minimal bounds-checked XDR (RFC 4506) primitives for the RPC message
// header, which this layer parses itself (the procedure arguments and
// results go through the rpcgen routines, see gateway/xdr/xdr_codec.h).
//
// XdrReader never reads past its buffer: every accessor returns false once
// the input is exhausted or a length exceeds its bound, and stays failed.
// XdrWriter appends big-endian words and padded opaques to a std::string.
//
// Thread safety: values owned by one thread.
#ifndef LOCKWARDEN_GATEWAY_RPC_XDR_WIRE_H_
#define LOCKWARDEN_GATEWAY_RPC_XDR_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace lockwarden::gateway {

class XdrReader {
 public:
  explicit XdrReader(absl::string_view bytes) : bytes_(bytes) {}

  bool U32(uint32_t* out) {
    if (failed_ || bytes_.size() - pos_ < 4) return Fail();
    const auto* p = reinterpret_cast<const unsigned char*>(bytes_.data() + pos_);
    *out = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
           (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    pos_ += 4;
    return true;
  }

  // A variable-length opaque or string of at most `max_len` bytes; the
  // padding to a 4-byte boundary is skipped.
  bool Opaque(size_t max_len, absl::string_view* out) {
    uint32_t len = 0;
    if (!U32(&len)) return false;
    if (len > max_len) return Fail();
    const size_t padded = (size_t{len} + 3) & ~size_t{3};
    if (bytes_.size() - pos_ < padded) return Fail();
    *out = bytes_.substr(pos_, len);
    pos_ += padded;
    return true;
  }

  size_t position() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  bool failed() const { return failed_; }

 private:
  bool Fail() {
    failed_ = true;
    return false;
  }

  absl::string_view bytes_;
  size_t pos_ = 0;
  bool failed_ = false;
};

class XdrWriter {
 public:
  explicit XdrWriter(std::string* out) : out_(out) {}

  XdrWriter& U32(uint32_t v) {
    const char word[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                          static_cast<char>(v >> 8), static_cast<char>(v)};
    out_->append(word, 4);
    return *this;
  }

  XdrWriter& Opaque(absl::string_view bytes) {
    U32(static_cast<uint32_t>(bytes.size()));
    out_->append(bytes.data(), bytes.size());
    out_->append((4 - bytes.size() % 4) % 4, '\0');
    return *this;
  }

 private:
  std::string* out_;
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_XDR_WIRE_H_
