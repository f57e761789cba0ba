#include "server/service/auth.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace lockwarden::service {
namespace {

constexpr absl::string_view kBearerPrefix = "Bearer ";

}  // namespace

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Length is not secret (tokens have a fixed length in practice); the
  // content comparison touches every byte whatever differs.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

bool IsLoopbackPeer(absl::string_view peer) {
  if (absl::StartsWith(peer, "unix:")) return true;
  if (absl::StartsWith(peer, "ipv4:127.")) return true;
  if (absl::StartsWith(peer, "ipv6:[::1]:")) return true;
  if (absl::StartsWith(peer, "ipv6:[::ffff:127.")) return true;
  return false;
}

absl::StatusOr<std::string> ReadAdminTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("admin token file ", path, ": cannot open"));
  std::string line;
  std::getline(in, line);
  std::string token(absl::StripAsciiWhitespace(line));
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("admin token file ", path, ": empty"));
  }
  if (token.size() > kAdminTokenBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin token file ", path, ": longer than ", kAdminTokenBytesMax, " bytes"));
  }
  return token;
}

bool AdminAuthorizer::HasVerifiedClientCert(const grpc::ServerContextBase& ctx) const {
  if (!options_.tls_enabled) return false;
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  // With SSL credentials the peer is "authenticated" only when it presented
  // a certificate that chained to the configured CA.
  return auth != nullptr && auth->IsPeerAuthenticated() &&
         !auth->GetPeerIdentity().empty();
}

absl::Status AdminAuthorizer::AuthorizeMutation(const grpc::ServerContextBase& ctx) const {
  if (HasVerifiedClientCert(ctx)) return absl::OkStatus();
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  const bool has_header = it != md.end();
  if (!options_.bearer_token.empty() && has_header) {
    absl::string_view value(it->second.data(), it->second.size());
    if (absl::StartsWith(value, kBearerPrefix) &&
        ConstantTimeEquals(value.substr(kBearerPrefix.size()), options_.bearer_token)) {
      return absl::OkStatus();
    }
    return absl::PermissionDeniedError("admin mutation refused: wrong bearer token");
  }
  if (!options_.tls_enabled && options_.bearer_token.empty()) {
    if (IsLoopbackPeer(ctx.peer())) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "admin mutation refused: the server has neither TLS client certificates nor an "
        "admin token configured, so mutations are accepted only from loopback; peer ",
        ctx.peer(), " is not"));
  }
  return absl::UnauthenticatedError(
      "admin mutation requires a verified client certificate (mTLS) or "
      "'authorization: Bearer <token>' metadata");
}

std::string AdminAuthorizer::CallerIdentity(const grpc::ServerContextBase& ctx) const {
  if (HasVerifiedClientCert(ctx)) {
    std::string names;
    for (const grpc::string_ref& id : ctx.auth_context()->GetPeerIdentity()) {
      if (!names.empty()) names += ",";
      names.append(id.data(), id.size());
    }
    return absl::StrCat("cert:", names, "@", ctx.peer());
  }
  if (!options_.bearer_token.empty() && ctx.client_metadata().count("authorization") > 0) {
    return absl::StrCat("token@", ctx.peer());
  }
  return ctx.peer();
}

}  // namespace lockwarden::service
