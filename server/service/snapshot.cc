#include "server/service/snapshot.h"

#include <openssl/evp.h>

namespace lockwarden::service {
namespace {

void AppendLength(std::string* out, size_t n) {
  const uint32_t v = static_cast<uint32_t>(n);
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

}  // namespace

struct SnapshotChecksum::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

SnapshotChecksum::SnapshotChecksum() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

SnapshotChecksum::~SnapshotChecksum() { EVP_MD_CTX_free(impl_->ctx); }

void SnapshotChecksum::Add(absl::string_view key, absl::string_view value) {
  std::string len;
  AppendLength(&len, key.size());
  EVP_DigestUpdate(impl_->ctx, len.data(), len.size());
  EVP_DigestUpdate(impl_->ctx, key.data(), key.size());
  len.clear();
  AppendLength(&len, value.size());
  EVP_DigestUpdate(impl_->ctx, len.data(), len.size());
  EVP_DigestUpdate(impl_->ctx, value.data(), value.size());
}

std::string SnapshotChecksum::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest, &n);
  return std::string(reinterpret_cast<char*>(digest), n);
}

v1::SnapshotHeader MakeSnapshotHeader(const std::map<std::string, std::string>& entries) {
  v1::SnapshotHeader h;
  h.set_format_version(kSnapshotFormatVersion);
  SnapshotChecksum sum;
  uint64_t bytes = 0;
  for (const auto& [k, v] : entries) {
    sum.Add(k, v);
    bytes += k.size() + v.size();
  }
  h.set_key_count(entries.size());
  h.set_total_bytes(bytes);
  h.set_checksum_sha256(sum.Finish());
  return h;
}

void NextSnapshotChunk(const std::map<std::string, std::string>& entries,
                       std::map<std::string, std::string>::const_iterator* it,
                       v1::SnapshotChunk* out) {
  v1::SnapshotEntries* batch = out->mutable_entries();
  size_t bytes = 0;
  while (*it != entries.end()) {
    const size_t size = (*it)->first.size() + (*it)->second.size();
    if (batch->entries_size() > 0 && bytes + size > kSnapshotChunkBytesMax) break;
    v1::SnapshotEntry* e = batch->add_entries();
    e->set_key((*it)->first);
    e->set_value((*it)->second);
    bytes += size;
    ++*it;
  }
}

}  // namespace lockwarden::service
