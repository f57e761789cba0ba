// TLS and mTLS on the server's listener with certificates generated at run
// time by `openssl`: a CA, a server certificate for localhost/127.0.0.1, an
// operator client certificate, and a second CA with its own client
// certificate for the "wrong CA" cases.
#include "server/service/tls.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "server/service/lock_server.h"
#include "server/store/memory_store.h"
#include "tests/common/test_pki.h"

namespace lockwarden::service {
namespace {

// Two CAs; the server, an operator (ca) and an intruder (ca2).
class Pki : public ::lockwarden::testing::TestPki {
 public:
  Pki() : TestPki("pki") {
    MakeCa("ca");
    MakeCa("ca2");
    MakeLeaf("server", "ca", "localhost",
             "subjectAltName=DNS:localhost,IP:127.0.0.1");
    MakeLeaf("operator", "ca", "operator", "extendedKeyUsage=clientAuth");
    MakeLeaf("intruder", "ca2", "intruder", "extendedKeyUsage=clientAuth");
  }
};

class TlsTest : public ::testing::Test {
 protected:
  void Start(bool require_client_cert, const std::string& token = "") {
    ASSERT_TRUE(pki_.ok());
    TlsOptions tls;
    tls.cert_file = pki_.Path("server.pem");
    tls.key_file = pki_.Path("server.key");
    tls.ca_file = pki_.Path("ca.pem");
    tls.require_client_cert = require_client_cert;
    auto creds = MakeServerCredentials(tls);
    ASSERT_TRUE(creds.ok()) << creds.status();
    LockServerOptions options;
    options.listen = "127.0.0.1:0";
    options.credentials = *creds;
    options.admin_auth.tls_enabled = true;
    options.admin_auth.bearer_token = token;
    auto server = LockServer::Start(options, std::make_unique<store::MemoryStore>(), &clock_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // A stub trusting `ca`, presenting `client` ("" = no certificate).
  std::unique_ptr<v1::AdminService::Stub> Stub(const std::string& ca, const std::string& client) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.Pem(ca + ".pem");
    if (!client.empty()) {
      ssl.pem_private_key = pki_.Pem(client + ".key");
      ssl.pem_cert_chain = pki_.Pem(client + ".pem");
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return v1::AdminService::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::SslCredentials(ssl), args));
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return ctx;
  }

  static grpc::Status Status(v1::AdminService::Stub* stub) {
    v1::GetServerStatusResponse r;
    return stub->GetServerStatus(Ctx().get(), v1::GetServerStatusRequest(), &r);
  }

  static grpc::Status Mutate(v1::AdminService::Stub* stub, const std::string& token = "") {
    v1::ForceReleaseRequest r;
    r.set_reason("tls test");
    r.set_client_name("nobody");
    v1::ForceReleaseResponse resp;
    auto ctx = Ctx();
    if (!token.empty()) ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    return stub->ForceRelease(ctx.get(), r, &resp);
  }

  Pki pki_;
  FakeClock clock_;
  std::unique_ptr<LockServer> server_;
};

TEST_F(TlsTest, ClientTrustingAnotherCaIsRefused) {
  Start(/*require_client_cert=*/false);
  EXPECT_EQ(Status(Stub("ca2", "").get()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ClientCertFromAnotherCaIsRefused) {
  Start(/*require_client_cert=*/false);
  EXPECT_EQ(Status(Stub("ca", "intruder").get()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, WithoutClientCertViewsWorkButMutationsAreRefused) {
  Start(/*require_client_cert=*/false);
  auto stub = Stub("ca", "");
  EXPECT_TRUE(Status(stub.get()).ok());
  grpc::Status s = Mutate(stub.get());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
}

TEST_F(TlsTest, VerifiedClientCertMayMutate) {
  Start(/*require_client_cert=*/false);
  grpc::Status s = Mutate(Stub("ca", "operator").get());
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(TlsTest, TokenAllowsMutationWithoutClientCert) {
  Start(/*require_client_cert=*/false, "tok-123");
  auto stub = Stub("ca", "");
  EXPECT_EQ(Mutate(stub.get(), "wrong").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status s = Mutate(stub.get(), "tok-123");
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(TlsTest, RequiredClientCertRefusesHandshakeWithoutOne) {
  Start(/*require_client_cert=*/true);
  EXPECT_EQ(Status(Stub("ca", "").get()).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Status(Stub("ca", "operator").get()).ok());
}

TEST(TlsOptionsTest, InconsistentFlagsAreNamed) {
  TlsOptions o;
  o.key_file = "k";
  EXPECT_EQ(MakeServerCredentials(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.cert_file = "/nonexistent/cert.pem";
  auto s = MakeServerCredentials(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("--tls-cert"), std::string::npos);
  o.require_client_cert = true;
  EXPECT_NE(MakeServerCredentials(o).status().message().find("--tls-ca"), std::string::npos);
}

}  // namespace
}  // namespace lockwarden::service
