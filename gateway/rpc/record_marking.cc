#include "gateway/rpc/record_marking.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/rpc/xdr_wire.h"

namespace lockwarden::gateway {

RecordDecoder::RecordDecoder(size_t max_record_bytes, size_t max_fragments)
    : max_record_bytes_(max_record_bytes), max_fragments_(max_fragments) {}

absl::Status RecordDecoder::Fail(absl::Status s) {
  status_ = std::move(s);
  record_.clear();
  record_.shrink_to_fit();
  return status_;
}

absl::Status RecordDecoder::Feed(absl::string_view chunk,
                                 std::vector<std::string>* records) {
  if (!status_.ok()) return status_;
  // Each iteration consumes at least one byte, or completes a record with
  // an empty last fragment (bounded by the header bytes consumed before).
  while (!chunk.empty() || (in_fragment_ && fragment_remaining_ == 0)) {
    if (!in_fragment_) {
      const size_t take = std::min(chunk.size(), 4 - header_len_);
      std::copy(chunk.data(), chunk.data() + take, header_ + header_len_);
      header_len_ += take;
      chunk.remove_prefix(take);
      if (header_len_ < 4) break;
      uint32_t header = 0;
      XdrReader(absl::string_view(header_, 4)).U32(&header);
      header_len_ = 0;
      last_fragment_ = (header & kLastFragmentBit) != 0;
      fragment_remaining_ = header & ~kLastFragmentBit;
      in_fragment_ = true;
      if (++fragments_ > max_fragments_) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "RPC record split into more than ", max_fragments_,
            " fragments")));
      }
      if (record_.size() + fragment_remaining_ > max_record_bytes_) {
        return Fail(absl::ResourceExhaustedError(absl::StrCat(
            "RPC record of at least ", record_.size() + fragment_remaining_,
            " bytes exceeds the limit of ", max_record_bytes_)));
      }
    }
    const size_t take = std::min(chunk.size(), fragment_remaining_);
    record_.append(chunk.data(), take);
    chunk.remove_prefix(take);
    fragment_remaining_ -= take;
    if (fragment_remaining_ > 0) break;  // need more input
    in_fragment_ = false;
    if (last_fragment_) {
      records->push_back(std::move(record_));
      record_.clear();
      fragments_ = 0;
    }
  }
  return absl::OkStatus();
}

void AppendRecord(absl::string_view message, std::string* out,
                  size_t max_fragment_bytes) {
  max_fragment_bytes =
      std::clamp<size_t>(max_fragment_bytes, 1, kMaxFragmentBytes);
  XdrWriter w(out);
  do {
    const size_t take = std::min(message.size(), max_fragment_bytes);
    const bool last = take == message.size();
    w.U32((last ? kLastFragmentBit : 0) | static_cast<uint32_t>(take));
    out->append(message.data(), take);
    message.remove_prefix(take);
    if (last) break;
  } while (true);
}

}  // namespace lockwarden::gateway
