#include "gateway/nlm/request_id.h"

#include <openssl/evp.h>

#include <array>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace lockwarden::gateway::nlm {
namespace {

// Appends a length-prefixed field, so that ("ab","c") != ("a","bc").
void AppendField(std::string* out, absl::string_view field) {
  const uint64_t n = field.size();
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>(n >> (8 * i)));
  out->append(field.data(), field.size());
}

void AppendWord(std::string* out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// SHA-256, fetched from OpenSSL's provider once per process: passing
// EVP_sha256() to EVP_Digest makes OpenSSL 3 look the algorithm up again
// on every call (locks and property queries, most of the digest's cost for
// inputs this small). An EVP_MD is immutable and safe to share between
// threads; it lives as long as the process.
const EVP_MD* Sha256() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  return md;
}

std::string HashToId(absl::string_view prefix, const std::string& material) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  // EVP_Digest with SHA-256 fails only on memory exhaustion. Then a random
  // id is safe (it never collides; only the cross-restart dedup of this one
  // call is lost), a constant one would not be.
  if (EVP_Digest(material.data(), material.size(), digest.data(), &digest_len,
                 Sha256(), nullptr) != 1 ||
      digest_len < 16) {
    absl::BitGen gen;
    return absl::StrCat(prefix, "rnd-", absl::Hex(absl::Uniform<uint64_t>(gen)),
                        absl::Hex(absl::Uniform<uint64_t>(gen)));
  }
  return absl::StrCat(
      prefix, absl::BytesToHexString(absl::string_view(
                  reinterpret_cast<const char*>(digest.data()), 16)));
}

}  // namespace

std::string DeriveRequestId(const RequestIdKey& key) {
  std::string material;
  material.reserve(64 + key.gateway_name.size() + key.client_address.size() +
                   key.args.size());
  AppendField(&material, "nlm-call");
  AppendField(&material, key.gateway_name);
  AppendField(&material, key.client_address);
  AppendWord(&material, key.xid);
  AppendWord(&material, key.prog);
  AppendWord(&material, key.vers);
  AppendWord(&material, key.proc);
  AppendField(&material, key.args);
  return HashToId("nlm-", material);
}

std::string DeriveInternalRequestId(
    absl::string_view purpose, std::initializer_list<absl::string_view> parts) {
  std::string material;
  AppendField(&material, "internal");
  AppendField(&material, purpose);
  for (absl::string_view part : parts) AppendField(&material, part);
  return HashToId(absl::StrCat(purpose, "-"), material);
}

}  // namespace lockwarden::gateway::nlm
