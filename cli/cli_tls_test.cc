// lockwardenctl over TLS and mutual TLS against FakeLockwardenServer, with
// certificates made by the openssl command for each test run (a throwaway CA,
// a server certificate for 127.0.0.1, a client certificate).
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/ctl_runner.h"
#include "cli/fake_lockwarden_server.h"
#include "grpcpp/security/server_credentials.h"
#include "gtest/gtest.h"

namespace lockwarden::cli {
namespace {

using ::lockwarden::cli::testing::CtlResult;
using ::lockwarden::cli::testing::FakeLockwardenServer;
using ::lockwarden::cli::testing::RunCtl;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

class CliTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = new std::string(
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/tls.", getpid()));
    const std::string script = absl::StrCat(
        "set -e; mkdir -p ", *dir_, "; cd ", *dir_, ";",
        "EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';",
        "openssl req -x509 $EC -keyout ca.key -out ca.pem -days 1 "
        "-subj /CN=lockwarden-test-ca 2>/dev/null;",
        "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext;",
        "openssl req $EC -keyout server.key -out server.csr "
        "-subj /CN=127.0.0.1 2>/dev/null;",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out server.pem -days 1 -extfile server.ext "
        "2>/dev/null;",
        "openssl req $EC -keyout client.key -out client.csr "
        "-subj /CN=operator 2>/dev/null;",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -out client.pem -days 1 2>/dev/null");
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed: " << script;
  }

  static std::string Path(const std::string& name) {
    return absl::StrCat(*dir_, "/", name);
  }

  static std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
      bool require_client_certificate) {
    grpc::SslServerCredentialsOptions options(
        require_client_certificate
            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_root_certs = ReadFile(Path("ca.pem"));
    options.pem_key_cert_pairs.push_back(
        {ReadFile(Path("server.key")), ReadFile(Path("server.pem"))});
    return grpc::SslServerCredentials(options);
  }

  static std::string* dir_;
};

std::string* CliTlsTest::dir_ = nullptr;

TEST_F(CliTlsTest, TlsWithTheCaWorksAndCarriesTheToken) {
  auto server = FakeLockwardenServer::Start("", ServerCredentials(false));
  ASSERT_NE(server, nullptr);
  CtlResult run = RunCtl({"--server=" + server->address(),
                          "--tls-ca=" + Path("ca.pem"), "--token=t0k",
                          "unlock", "--fh=0a", "--client=c"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  ASSERT_EQ(server->recorded().unlocks.size(), 1u);
  EXPECT_EQ(server->recorded().last_authorization, "Bearer t0k");
}

TEST_F(CliTlsTest, PlainTextAgainstTlsFailsWithExitTwo) {
  auto server = FakeLockwardenServer::Start("", ServerCredentials(false));
  ASSERT_NE(server, nullptr);
  CtlResult run = RunCtl({"--server=" + server->address(), "--timeout=2s",
                          "locks", "list"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, server->address())) << run.err;
  EXPECT_TRUE(server->recorded().list_locks.empty());
}

TEST_F(CliTlsTest, MutualTlsNeedsTheClientCertificate) {
  auto server = FakeLockwardenServer::Start("", ServerCredentials(true));
  ASSERT_NE(server, nullptr);
  CtlResult run = RunCtl({"--server=" + server->address(), "--timeout=2s",
                          "--tls-ca=" + Path("ca.pem"), "locks", "list"});
  EXPECT_EQ(run.exit_code, 2) << run.out;
  run = RunCtl({"--server=" + server->address(), "--tls-ca=" + Path("ca.pem"),
                "--tls-cert=" + Path("client.pem"),
                "--tls-key=" + Path("client.key"), "locks", "list"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(server->recorded().list_locks.size(), 1u);
}

TEST_F(CliTlsTest, BadTlsFlagsAreUsageErrors) {
  CtlResult run = RunCtl({"--server=127.0.0.1:1", "--tls-ca=/nonexistent/ca",
                          "status"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "--tls-ca: cannot read")) << run.err;
  run = RunCtl({"--server=127.0.0.1:1", "--tls-cert=" + Path("client.pem"),
                "status"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(run.err, "--tls-cert and --tls-key"))
      << run.err;
}

}  // namespace
}  // namespace lockwarden::cli
