#include "server/service/tls.h"

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace lockwarden::service {

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot open ", path));
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kPemFileBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", path, " is larger than ", kPemFileBytesMax, " bytes"));
    }
  }
  if (data.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not PEM"));
  }
  return data;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsOptions& options) {
  if (!options.enabled()) {
    if (!options.key_file.empty() || !options.ca_file.empty() ||
        options.require_client_cert) {
      return absl::InvalidArgumentError(
          "--tls-key/--tls-ca/--tls-require-client-cert need --tls-cert");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-key: required with --tls-cert");
  }
  if (options.require_client_cert && options.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls-require-client-cert: needs --tls-ca to verify client certificates");
  }
  auto cert = ReadPemFile("--tls-cert", options.cert_file);
  if (!cert.ok()) return cert.status();
  auto key = ReadPemFile("--tls-key", options.key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (options.ca_file.empty()) {
    ssl.client_certificate_request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  } else {
    auto ca = ReadPemFile("--tls-ca", options.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request =
        options.require_client_cert
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace lockwarden::service
