// The embedded portmapper on a real loopback server (ephemeral port),
// queried with libtirpc clients and RpcClient::GetPort.
#include "gateway/portmap/portmapper.h"

#include <arpa/inet.h>
#include <rpc/pmap_prot.h>
#include <rpc/rpc.h>
#include <rpc/rpcb_prot.h>

#include <future>
#include <set>
#include <memory>
#include <string>

#include "common/status_matchers.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using ::lockwarden::testing::StatusIs;

constexpr uint16_t kNlmPort = 4045;
const timeval kTimeout{5, 0};

TEST(UniversalAddressTest, FormatsAndParsesBothFamilies) {
  EXPECT_EQ(ToUniversalAddress("10.0.0.5", 4045), "10.0.0.5.15.205");
  EXPECT_EQ(ToUniversalAddress("::1", 111), "::1.0.111");
  auto v4 = FromUniversalAddress("10.0.0.5.15.205");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->first, "10.0.0.5");
  EXPECT_EQ(v4->second, 4045);
  auto v6 = FromUniversalAddress("fe80::1.0.111");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->first, "fe80::1");
  EXPECT_EQ(v6->second, 111);
  EXPECT_FALSE(FromUniversalAddress("10.0.0.5.300.1").ok());
  EXPECT_FALSE(FromUniversalAddress("garbage").ok());
}

TEST(RegistrationTableTest, SetRefusesDuplicatesReplaceOverwrites) {
  RegistrationTable t;
  LW_ASSERT_OK(t.Set({NLM_PROG, 4, "udp", 4045, ""}));
  EXPECT_THAT(t.Set({NLM_PROG, 4, "udp", 4046, ""}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  LW_ASSERT_OK(t.Replace({NLM_PROG, 4, "udp", 4046, ""}));
  EXPECT_EQ(t.Lookup(NLM_PROG, 4, "udp"), 4046);
  EXPECT_THAT(t.Set({NLM_PROG, 4, "sctp", 1, ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RegistrationTableTest, LookupFallsBackToAnotherVersionUnlessExact) {
  RegistrationTable t;
  LW_ASSERT_OK(t.Set({NLM_PROG, 4, "tcp", 4045, ""}));
  EXPECT_EQ(t.Lookup(NLM_PROG, 1, "tcp"), 4045);
  EXPECT_EQ(t.Lookup(NLM_PROG, 1, "tcp", /*exact_version=*/true), std::nullopt);
  EXPECT_EQ(t.Lookup(NLM_PROG, 4, "udp"), std::nullopt);
  EXPECT_EQ(t.Unset(NLM_PROG, 4), 1u);
  EXPECT_EQ(t.Lookup(NLM_PROG, 4, "tcp"), std::nullopt);
}

TEST(RegistrationTableTest, TableIsBounded) {
  RegistrationTable t;
  for (uint32_t p = 0; p < kMaxPortRegistrations; ++p) {
    LW_ASSERT_OK(t.Set({0x20000000 + p, 1, "udp", 1000, ""}));
  }
  EXPECT_THAT(t.Set({0x30000000, 1, "udp", 1000, ""}),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

class PortmapperServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LW_ASSERT_OK(portmapper_.RegisterProcedures(dispatcher_));
    LW_ASSERT_OK(portmapper_.AddService(NLM_PROG, NLM4_VERS, kNlmPort));
    LW_ASSERT_OK(portmapper_.AddService(NLM_PROG, NLM_VERSX, kNlmPort));
    server_ = std::make_unique<RpcServer>(
        pool_.context(), dispatcher_,
        RpcServerOptions{.bind_address = "127.0.0.1"});
    LW_ASSERT_OK(server_->Start());
  }
  void TearDown() override {
    server_->Stop();
    pool_.Stop();
  }

  CLIENT* Client(u_long vers) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int sock = RPC_ANYSOCK;
    CLIENT* c = clnttcp_create(&addr, kPortmapProgram, vers, &sock, 0, 0);
    EXPECT_NE(c, nullptr) << clnt_spcreateerror("clnttcp_create");
    return c;
  }

  std::string GetAddr(u_long vers, u_long proc, uint32_t prog, uint32_t pvers,
                      const char* netid) {
    CLIENT* c = Client(vers);
    rpcb query{};
    query.r_prog = prog;
    query.r_vers = pvers;
    query.r_netid = const_cast<char*>(netid);
    query.r_addr = const_cast<char*>("");
    query.r_owner = const_cast<char*>("");
    char* uaddr = nullptr;
    EXPECT_EQ(clnt_call(c, proc, XdrProc(xdr_rpcb),
                        reinterpret_cast<caddr_t>(&query),
                        XdrProc(xdr_wrapstring),
                        reinterpret_cast<caddr_t>(&uaddr), kTimeout),
              RPC_SUCCESS);
    std::string out = uaddr != nullptr ? uaddr : "(null)";
    XdrFree(XdrProc(xdr_wrapstring), &uaddr);
    clnt_destroy(c);
    return out;
  }

  DuplicateRequestCache drc_;
  Dispatcher dispatcher_{DispatcherOptions{&drc_, nullptr}};
  Portmapper portmapper_;
  IoThreadPool pool_{2};
  std::unique_ptr<RpcServer> server_;
};

TEST_F(PortmapperServerTest, PmapGetPortAndDumpWithTirpc) {
  CLIENT* c = Client(PMAPVERS);
  pmap query{NLM_PROG, NLM4_VERS, IPPROTO_UDP, 0};
  u_int port = 0;
  ASSERT_EQ(clnt_call(c, PMAPPROC_GETPORT, XdrProc(xdr_pmap),
                      reinterpret_cast<caddr_t>(&query), XdrProc(xdr_u_int),
                      reinterpret_cast<caddr_t>(&port), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(port, kNlmPort);
  query.pm_prog = 100099;
  ASSERT_EQ(clnt_call(c, PMAPPROC_GETPORT, XdrProc(xdr_pmap),
                      reinterpret_cast<caddr_t>(&query), XdrProc(xdr_u_int),
                      reinterpret_cast<caddr_t>(&port), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(port, 0u);

  pmaplist* list = nullptr;
  ASSERT_EQ(clnt_call(c, PMAPPROC_DUMP, XdrVoid(), nullptr,
                      XdrProc(xdr_pmaplist), reinterpret_cast<caddr_t>(&list),
                      kTimeout),
            RPC_SUCCESS);
  int entries = 0;
  for (pmaplist* p = list; p != nullptr; p = p->pml_next) {
    EXPECT_EQ(p->pml_map.pm_prog, u_long{NLM_PROG});
    EXPECT_EQ(p->pml_map.pm_port, u_long{kNlmPort});
    ++entries;
  }
  EXPECT_EQ(entries, 4);  // v3 and v4, udp and tcp (IPv6 is not in PMAP v2)
  XdrFree(XdrProc(xdr_pmaplist), &list);
  clnt_destroy(c);
}

TEST_F(PortmapperServerTest, PmapSetAndUnsetFromLoopback) {
  CLIENT* c = Client(PMAPVERS);
  pmap m{0x20000001, 1, IPPROTO_TCP, 5555};
  bool_t ok = FALSE;
  ASSERT_EQ(clnt_call(c, PMAPPROC_SET, XdrProc(xdr_pmap),
                      reinterpret_cast<caddr_t>(&m), XdrProc(xdr_bool),
                      reinterpret_cast<caddr_t>(&ok), kTimeout),
            RPC_SUCCESS);
  EXPECT_TRUE(ok);
  EXPECT_EQ(portmapper_.table().Lookup(0x20000001, 1, "tcp"), 5555);
  ASSERT_EQ(clnt_call(c, PMAPPROC_UNSET, XdrProc(xdr_pmap),
                      reinterpret_cast<caddr_t>(&m), XdrProc(xdr_bool),
                      reinterpret_cast<caddr_t>(&ok), kTimeout),
            RPC_SUCCESS);
  EXPECT_TRUE(ok);
  EXPECT_EQ(portmapper_.table().Lookup(0x20000001, 1, "tcp"), std::nullopt);
  clnt_destroy(c);
}

TEST_F(PortmapperServerTest, SetFromARemoteAddressIsRefused) {
  pmap m{0x20000002, 1, IPPROTO_UDP, 6000};
  absl::StatusOr<std::string> call =
      EncodeCall(1, CallTarget{kPortmapProgram, PMAPVERS, PMAPPROC_SET},
                 CallCredentials::None(), XdrProc(xdr_pmap), &m);
  ASSERT_TRUE(call.ok());
  CallContext remote;
  remote.peer_address = "198.18.0.9";
  std::optional<std::string> reply;
  dispatcher_.Dispatch(remote, *call,
                       [&reply](std::optional<std::string> r) { reply = r; });
  ASSERT_TRUE(reply.has_value());
  bool_t ok = TRUE;
  LW_ASSERT_OK(DecodeReply(*reply, 1, XdrProc(xdr_bool), &ok));
  EXPECT_FALSE(ok);
  EXPECT_EQ(portmapper_.table().Lookup(0x20000002, 1, "udp"), std::nullopt);
}

TEST_F(PortmapperServerTest, RpcbindGetAddrReturnsUniversalAddresses) {
  EXPECT_EQ(GetAddr(RPCBVERS, RPCBPROC_GETADDR, NLM_PROG, NLM4_VERS, "tcp"),
            "127.0.0.1.15.205");
  EXPECT_EQ(GetAddr(RPCBVERS4, RPCBPROC_GETADDR, NLM_PROG, NLM4_VERS, "udp6"),
            "::1.15.205");
  EXPECT_EQ(GetAddr(RPCBVERS4, RPCBPROC_GETADDR, 100099, 1, "udp"), "");
  // GETVERSADDR wants the exact version; GETADDR falls back.
  EXPECT_EQ(GetAddr(RPCBVERS4, RPCBPROC_GETVERSADDR, NLM_PROG, 1, "udp"), "");
  EXPECT_EQ(GetAddr(RPCBVERS4, RPCBPROC_GETADDR, NLM_PROG, 1, "udp"),
            "127.0.0.1.15.205");
}

TEST_F(PortmapperServerTest, RpcbindDumpListsEveryNetid) {
  CLIENT* c = Client(RPCBVERS4);
  rpcblist_ptr list = nullptr;
  ASSERT_EQ(clnt_call(c, RPCBPROC_DUMP, XdrVoid(), nullptr,
                      XdrProc(xdr_rpcblist_ptr),
                      reinterpret_cast<caddr_t>(&list), kTimeout),
            RPC_SUCCESS);
  std::set<std::string> netids;
  for (rp__list* p = list; p != nullptr; p = p->rpcb_next) {
    netids.insert(p->rpcb_map.r_netid);
    EXPECT_STREQ(p->rpcb_map.r_owner, "lockwarden");
  }
  EXPECT_EQ(netids, (std::set<std::string>{"tcp", "tcp6", "udp", "udp6"}));
  XdrFree(XdrProc(xdr_rpcblist_ptr), &list);
  clnt_destroy(c);
}

TEST_F(PortmapperServerTest, RpcClientGetPortQueriesTheEmbeddedPortmapper) {
  RpcClient client(pool_.context());
  std::promise<absl::StatusOr<uint16_t>> found, missing;
  client.GetPort("127.0.0.1", NLM_PROG, NLM4_VERS, TransportKind::kTcp,
                 [&](absl::StatusOr<uint16_t> p) { found.set_value(p); },
                 server_->port());
  client.GetPort("127.0.0.1", 100099, 1, TransportKind::kUdp,
                 [&](absl::StatusOr<uint16_t> p) { missing.set_value(p); },
                 server_->port());
  absl::StatusOr<uint16_t> port = found.get_future().get();
  LW_ASSERT_OK(port.status());
  EXPECT_EQ(*port, kNlmPort);
  EXPECT_THAT(missing.get_future().get().status(),
              StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace lockwarden::gateway
