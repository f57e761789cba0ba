// The gateway -> server hop over TLS and mutual TLS, with real processes
// and a throwaway PKI made by `openssl` for each run: a CA, a second CA
// (the wrong one), a server certificate for 127.0.0.1 and a client
// certificate for the gateway.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway_process.h"
#include "gateway/xdr/nlm_prot.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"
#include "tests/common/test_pki.h"

namespace lockwarden::gateway {
namespace {

using nlm::Lock4;
using nlm::Spec;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A CA and a wrong one; the server's and the gateway's certificates.
class Pki : public ::lockwarden::testing::TestPki {
 public:
  Pki() : TestPki("gateway-pki") {
    MakeCa("ca");
    MakeCa("wrong-ca");
    MakeLeaf("server", "ca", "localhost",
             "subjectAltName=DNS:localhost,IP:127.0.0.1");
    MakeLeaf("gateway", "ca", "gw.tls", "extendedKeyUsage=clientAuth");
  }
};

class GatewayTlsTest : public ::testing::Test {
 protected:
  // A TLS server; with `require_client_cert` it refuses clients without a
  // certificate signed by the CA.
  void StartServer(bool require_client_cert) {
    ASSERT_TRUE(pki_.ok());
    testing::ServerProcessOptions o;
    o.extra_args = {"--tls-cert=" + pki_.Path("server.pem"),
                    "--tls-key=" + pki_.Path("server.key")};
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pki_.Pem("ca.pem");
    if (require_client_cert) {
      o.extra_args.push_back("--tls-ca=" + pki_.Path("ca.pem"));
      o.extra_args.push_back("--tls-require-client-cert=true");
      ssl.pem_cert_chain = pki_.Pem("gateway.pem");
      ssl.pem_private_key = pki_.Pem("gateway.key");
    }
    o.channel_credentials = grpc::SslCredentials(ssl);
    auto server = testing::ServerProcess::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::vector<std::string> GatewayArgs(std::vector<std::string> tls) {
    std::vector<std::string> args = {"--name=gw.tls",
                                     "--server=" + server_->address(),
                                     "--bind=127.0.0.1",
                                     "--nlm-port=0",
                                     "--nsm-port=0",
                                     "--portmap-port=0",
                                     "--failover-wait-ms=1500",
                                     "--rpc-timeout-ms=500"};
    args.insert(args.end(), tls.begin(), tls.end());
    return args;
  }

  // One LOCK through a gateway started with `tls` flags; its log is kept.
  nlm4_stats LockThrough(std::vector<std::string> tls, std::string* log) {
    const std::string log_path =
        pki_.Path(absl::StrCat("gw", ++gateways_, ".log"));
    GatewayProcess gw(GatewayArgs(std::move(tls)), log_path);
    std::optional<ReadyPorts> ports = gw.WaitReady(absl::Seconds(30));
    EXPECT_TRUE(ports.has_value());
    if (!ports.has_value()) return NLM4_FAILED;
    CLIENT* c = Connect(ports->nlm, NLM_PROG, NLM4_VERS, true);
    EXPECT_NE(c, nullptr);
    if (c == nullptr) return NLM4_FAILED;
    Spec s;
    s.fh = absl::StrCat("file-", gateways_);
    const nlm4_stats stat = Lock4(c, s);
    clnt_destroy(c);
    EXPECT_EQ(gw.Terminate(absl::Seconds(10)), 0);
    *log = Slurp(log_path);
    return stat;
  }

  Pki pki_;
  std::unique_ptr<testing::ServerProcess> server_;
  int gateways_ = 0;
};

TEST_F(GatewayTlsTest, LocksThroughATlsServerWithTheRightCa) {
  StartServer(/*require_client_cert=*/false);
  std::string log;
  EXPECT_EQ(LockThrough({"--tls-ca=" + pki_.Path("ca.pem")}, &log),
            NLM4_GRANTED)
      << log;
  EXPECT_TRUE(absl::StrContains(log, "\"server_tls\":true") ||
              absl::StrContains(log, "server_tls=true"))
      << log;
}

TEST_F(GatewayTlsTest, WrongCaIsRefusedWithAHandshakeError) {
  StartServer(/*require_client_cert=*/false);
  std::string log;
  EXPECT_EQ(LockThrough({"--tls-ca=" + pki_.Path("wrong-ca.pem")}, &log),
            NLM4_DENIED_NOLOCKS);
  // gRPC's reason reaches the gateway's log.
  EXPECT_TRUE(absl::StrContains(log, "CERTIFICATE_VERIFY_FAILED") ||
              absl::StrContains(log, "andshake"))
      << log;
}

TEST_F(GatewayTlsTest, PlaintextGatewayCannotTalkToATlsServer) {
  StartServer(/*require_client_cert=*/false);
  std::string log;
  EXPECT_EQ(LockThrough({}, &log), NLM4_DENIED_NOLOCKS);
}

TEST_F(GatewayTlsTest, MutualTlsServerRejectsAGatewayWithoutCertificate) {
  StartServer(/*require_client_cert=*/true);
  std::string log;
  EXPECT_EQ(LockThrough({"--tls-ca=" + pki_.Path("ca.pem")}, &log),
            NLM4_DENIED_NOLOCKS);
  EXPECT_EQ(LockThrough({"--tls-ca=" + pki_.Path("ca.pem"),
                         "--tls-cert=" + pki_.Path("gateway.pem"),
                         "--tls-key=" + pki_.Path("gateway.key")},
                        &log),
            NLM4_GRANTED)
      << log;
}

TEST_F(GatewayTlsTest, CertificateWithoutKeyIsAStartupError) {
  std::string log_path = pki_.Path("bad-flags.log");
  GatewayProcess gw(
      {"--name=gw.tls", "--server=127.0.0.1:1", "--nlm-port=0", "--nsm-port=0",
       "--portmap-port=0", "--tls-cert=" + pki_.Path("gateway.pem")},
      log_path);
  EXPECT_FALSE(gw.WaitReady(absl::Seconds(10)).has_value());
  EXPECT_EQ(gw.WaitExit(absl::Seconds(10)), 1);
  EXPECT_TRUE(absl::StrContains(Slurp(log_path),
                                "--tls-cert and --tls-key must be given "
                                "together"));
}

}  // namespace
}  // namespace lockwarden::gateway
