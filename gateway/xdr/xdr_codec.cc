#include "gateway/xdr/xdr_codec.h"

#include "absl/strings/str_cat.h"

namespace lockwarden::gateway {

absl::Status XdrEncodeAppend(xdrproc_t proc, const void* obj,
                             std::string* out) {
  void* mutable_obj = const_cast<void*>(obj);
  const unsigned long size = xdr_sizeof(proc, mutable_obj);
  if (size == 0) {
    // xdr_sizeof returns 0 both for an empty encoding and for a failure;
    // run the encoder to tell them apart.
    char probe[4];
    XDR xdrs;
    xdrmem_create(&xdrs, probe, 0, XDR_ENCODE);
    const bool ok = proc(&xdrs, mutable_obj);
    XDR_DESTROY(&xdrs);
    if (!ok) return absl::InvalidArgumentError("XDR encode failed");
    return absl::OkStatus();
  }
  if (size > kXdrMaxObjectBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "XDR object of ", size, " bytes exceeds ", kXdrMaxObjectBytes));
  }
  const size_t start = out->size();
  out->resize(start + size);
  XDR xdrs;
  xdrmem_create(&xdrs, out->data() + start, static_cast<u_int>(size),
                XDR_ENCODE);
  const bool ok = proc(&xdrs, mutable_obj);
  const u_int written = xdr_getpos(&xdrs);
  XDR_DESTROY(&xdrs);
  if (!ok || written != size) {
    out->resize(start);
    // Encoding fails when a value breaks a bound of the .x file (a string
    // or netobj longer than its maximum): a programming error upstream,
    // reported rather than sent.
    return absl::InvalidArgumentError(
        "XDR encode failed (a string or opaque exceeds its bound?)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> XdrEncode(xdrproc_t proc, const void* obj) {
  std::string out;
  absl::Status s = XdrEncodeAppend(proc, obj, &out);
  if (!s.ok()) return s;
  return out;
}

absl::Status XdrDecode(xdrproc_t proc, absl::string_view bytes, void* obj,
                       size_t* consumed) {
  if (bytes.size() > kXdrMaxObjectBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "XDR input of ", bytes.size(), " bytes exceeds ", kXdrMaxObjectBytes));
  }
  XDR xdrs;
  // xdrmem never writes in XDR_DECODE mode; the cast is libtirpc's API.
  xdrmem_create(&xdrs, const_cast<char*>(bytes.data()),
                static_cast<u_int>(bytes.size()), XDR_DECODE);
  const bool ok = proc(&xdrs, obj);
  const u_int pos = xdr_getpos(&xdrs);
  XDR_DESTROY(&xdrs);
  if (!ok) {
    XdrFree(proc, obj);
    return absl::InvalidArgumentError(
        "XDR decode failed: truncated input or a length over its bound");
  }
  if (consumed != nullptr) *consumed = pos;
  return absl::OkStatus();
}

void XdrFree(xdrproc_t proc, void* obj) { xdr_free(proc, obj); }

}  // namespace lockwarden::gateway
