#include "gateway/nlm/nlm_test_env.h"

#include <netinet/in.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/nlm/nlm_args.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"
#include "server/store/memory_store.h"

namespace lockwarden::gateway::nlm {
namespace {

// A port nothing listens on: bind, read the port, close.
int DeadPort() {
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  auto s = b.BuildAndStart();
  s->Shutdown();
  return port;
}

}  // namespace

NlmTestEnv::NlmTestEnv(NlmTestEnvOptions options)
    : options_(options),
      client_answers_granted_(options.client_answers_granted) {
  int server_port = 0;
  if (options_.server_down) {
    server_port = DeadPort();
  } else {
    service::LockServerOptions o;
    o.listen = "127.0.0.1:0";
    o.core.grant_timeout_ms = options_.grant_timeout_ms;
    auto s = service::LockServer::Start(
        o, std::make_unique<store::MemoryStore>(), &clock_);
    EXPECT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    server_port = server_->port();
  }
  const std::string address = absl::StrCat("127.0.0.1:", server_port);
  ServerClientOptions sco;
  sco.servers = {address};
  sco.failover_wait_ms = options_.failover_wait_ms;
  sco.rpc_timeout_ms = options_.rpc_timeout_ms;
  server_client_ = std::make_unique<ServerClient>(sco);
  admin_ = v1::AdminService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  RpcClientOptions rco;
  rco.timeout = absl::Seconds(2);
  rpc_ = std::make_unique<RpcClient>(pool_.context(), rco);
  StartClientHost();

  StartGateway();
}

void NlmTestEnv::StartGateway() {
  dispatcher_ = std::make_unique<Dispatcher>(DispatcherOptions{&drc_, nullptr});
  NlmCallbackClientOptions cco;
  cco.rpcbind_port = client_pm_server_->port();
  cco.machine_name = "gw.test";
  callbacks_ = std::make_unique<NlmCallbackClient>(rpc_.get(), cco);
  GrantDeliveryOptions gdo;
  gdo.gateway_name = "gw.test";
  gdo.instance_name = "test";
  gdo.retry_interval = options_.grant_retry_interval;
  gdo.deadline_margin = absl::Milliseconds(200);
  // The server's GrantEvents carry no deadline yet: assume its timeout.
  gdo.default_grant_timeout = absl::Milliseconds(options_.grant_timeout_ms);
  gdo.reconnect_backoff_initial = absl::Milliseconds(20);
  gdo.reconnect_backoff_max = absl::Milliseconds(200);
  grants_ = std::make_unique<GrantDelivery>(gdo, server_client_.get(),
                                            callbacks_.get(), pool_.context());
  NlmServiceOptions no;
  no.gateway_name = "gw.test";
  no.use_granted_msg = options_.use_granted_msg;
  no.record_client_address = [this](const std::string& name,
                                    const std::string& addr) {
    absl::MutexLock lock(&mu_);
    if (addresses_.size() < 1000) addresses_.emplace_back(name, addr);
  };
  nlm_ = std::make_unique<NlmService>(no, server_client_.get(),
                                      callbacks_.get(), grants_.get());
  EXPECT_TRUE(nlm_->Register(*dispatcher_).ok());
  gateway_server_ = std::make_unique<RpcServer>(
      pool_.context(), *dispatcher_,
      RpcServerOptions{.bind_address = "127.0.0.1"});
  EXPECT_TRUE(gateway_server_->Start().ok());
  if (!options_.server_down) grants_->Start();
}

void NlmTestEnv::RestartGateway() {
  gateway_server_->Stop();
  grants_->Stop();
  // The old objects may still be referenced by callbacks queued on the
  // pool; keep them alive until the environment goes away.
  retired_.push_back(std::shared_ptr<void>(std::move(gateway_server_)));
  retired_.push_back(std::shared_ptr<void>(std::move(nlm_)));
  retired_.push_back(std::shared_ptr<void>(std::move(grants_)));
  retired_.push_back(std::shared_ptr<void>(std::move(callbacks_)));
  retired_.push_back(std::shared_ptr<void>(std::move(dispatcher_)));
  StartGateway();
}

NlmTestEnv::~NlmTestEnv() {
  gateway_server_->Stop();
  grants_->Stop();
  client_server_->Stop();
  client_pm_server_->Stop();
  pool_.Stop();
  retired_.clear();
  if (server_) server_->Shutdown();
}

void NlmTestEnv::Record(ClientNlmEvent e) {
  absl::MutexLock lock(&mu_);
  events_.push_back(std::move(e));
}

void NlmTestEnv::StartClientHost() {
  client_dispatcher_ = std::make_unique<Dispatcher>();
  Dispatcher& d = *client_dispatcher_;
  // GRANTED_MSG (v4 and v1): record, then answer GRANTED_RES to the caller's
  // NLM port (the gateway's, which is where a real client sends it).
  auto granted_msg4 = [this](std::unique_ptr<RpcCall> call) {
    nlm4_testargs* a = call->args<nlm4_testargs>();
    ClientNlmEvent e{4, NLMPROC4_GRANTED_MSG, NetobjBytes(a->cookie), 0,
                     static_cast<uint32_t>(a->alock.svid), a->alock.l_offset,
                     a->alock.l_len,
                     a->alock.caller_name ? a->alock.caller_name : ""};
    Record(e);
    (void)call->ReplyNone();
    if (!client_answers_granted_.load()) return;
    std::string cookie = e.cookie;
    nlm4_res res{};
    res.cookie = NetobjOf(cookie);
    res.stat.stat = NLM4_GRANTED;
    rpc_->Send(RpcEndpoint{"127.0.0.1", gateway_port(), TransportKind::kUdp},
               CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED_RES},
               CallCredentials::None(), XdrProc(xdr_nlm4_res), &res,
               [](absl::Status) {});
  };
  EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED_MSG,
                                  MakeVoidResultProcedure(
                                      "GRANTED_MSG", xdr_nlm4_testargs,
                                      granted_msg4))
                  .ok());
  auto granted_msg1 = [this](std::unique_ptr<RpcCall> call) {
    nlm_testargs* a = call->args<nlm_testargs>();
    ClientNlmEvent e{1, NLMPROC_GRANTED_MSG, NetobjBytes(a->cookie), 0,
                     static_cast<uint32_t>(a->alock.svid), a->alock.l_offset,
                     a->alock.l_len,
                     a->alock.caller_name ? a->alock.caller_name : ""};
    Record(e);
    (void)call->ReplyNone();
    if (!client_answers_granted_.load()) return;
    std::string cookie = e.cookie;
    nlm_res res{};
    res.cookie = NetobjOf(cookie);
    res.stat.stat = LCK_GRANTED;
    rpc_->Send(RpcEndpoint{"127.0.0.1", gateway_port(), TransportKind::kUdp},
               CallTarget{NLM_PROG, NLM_VERS, NLMPROC_GRANTED_RES},
               CallCredentials::None(), XdrProc(xdr_nlm_res), &res,
               [](absl::Status) {});
  };
  EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM_VERS, NLMPROC_GRANTED_MSG,
                                  MakeVoidResultProcedure(
                                      "GRANTED_MSG", xdr_nlm_testargs,
                                      granted_msg1))
                  .ok());
  // Synchronous GRANTED (v4).
  auto granted4 = [this](std::unique_ptr<RpcCall> call) {
    nlm4_testargs* a = call->args<nlm4_testargs>();
    Record(ClientNlmEvent{4, NLMPROC4_GRANTED, NetobjBytes(a->cookie), 0,
                          static_cast<uint32_t>(a->alock.svid),
                          a->alock.l_offset, a->alock.l_len,
                          a->alock.caller_name ? a->alock.caller_name : ""});
    std::string cookie = NetobjBytes(a->cookie);
    nlm4_res res{};
    res.cookie = NetobjOf(cookie);
    res.stat.stat =
        client_answers_granted_.load() ? NLM4_GRANTED : NLM4_DENIED;
    (void)call->Reply(&res);
  };
  EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED,
                                  MakeProcedure("GRANTED", xdr_nlm4_testargs,
                                                xdr_nlm4_res, granted4))
                  .ok());
  // *_RES answers to our *_MSG requests.
  auto res4 = [this](std::unique_ptr<RpcCall> call) {
    nlm4_res* r = call->args<nlm4_res>();
    ClientNlmEvent e;
    e.vers = 4;
    e.proc = call->header().proc;
    e.cookie = NetobjBytes(r->cookie);
    e.stat = static_cast<uint32_t>(r->stat.stat);
    Record(std::move(e));
    (void)call->ReplyNone();
  };
  for (uint32_t proc : {NLMPROC4_LOCK_RES, NLMPROC4_CANCEL_RES,
                        NLMPROC4_UNLOCK_RES}) {
    EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM4_VERS, proc,
                                    MakeVoidResultProcedure(
                                        "RES", xdr_nlm4_res, res4))
                    .ok());
  }
  auto test_res4 = [this](std::unique_ptr<RpcCall> call) {
    nlm4_testres* r = call->args<nlm4_testres>();
    ClientNlmEvent e;
    e.vers = 4;
    e.proc = call->header().proc;
    e.cookie = NetobjBytes(r->cookie);
    e.stat = static_cast<uint32_t>(r->stat.stat);
    Record(std::move(e));
    (void)call->ReplyNone();
  };
  EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM4_VERS, NLMPROC4_TEST_RES,
                                  MakeVoidResultProcedure(
                                      "TEST_RES", xdr_nlm4_testres, test_res4))
                  .ok());
  client_server_ = std::make_unique<RpcServer>(
      pool_.context(), d, RpcServerOptions{.bind_address = "127.0.0.1"});
  EXPECT_TRUE(client_server_->Start().ok());

  client_portmapper_ = std::make_unique<Portmapper>();
  client_pm_dispatcher_ = std::make_unique<Dispatcher>();
  EXPECT_TRUE(
      client_portmapper_->RegisterProcedures(*client_pm_dispatcher_).ok());
  for (uint32_t vers : {NLM_VERS, NLM_VERSX, NLM4_VERS}) {
    EXPECT_TRUE(
        client_portmapper_->AddService(NLM_PROG, vers, client_server_->port())
            .ok());
  }
  client_pm_server_ = std::make_unique<RpcServer>(
      pool_.context(), *client_pm_dispatcher_,
      RpcServerOptions{.bind_address = "127.0.0.1"});
  EXPECT_TRUE(client_pm_server_->Start().ok());
}

CLIENT* NlmTestEnv::Client(bool tcp, uint32_t vers) const {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(gateway_port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int sock = RPC_ANYSOCK;
  CLIENT* c =
      tcp ? clnttcp_create(&addr, NLM_PROG, vers, &sock, 0, 0)
          : clntudp_create(&addr, NLM_PROG, vers, timeval{0, 500000}, &sock);
  EXPECT_NE(c, nullptr) << clnt_spcreateerror("gateway");
  return c;
}

std::vector<ClientNlmEvent> NlmTestEnv::client_events() const {
  absl::MutexLock lock(&mu_);
  return events_;
}

bool NlmTestEnv::WaitForClientEvent(uint32_t proc,
                                    absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto seen = [this, proc]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& e : events_) {
      if (e.proc == proc) return true;
    }
    return false;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
}

std::vector<std::pair<std::string, std::string>>
NlmTestEnv::recorded_addresses() const {
  absl::MutexLock lock(&mu_);
  return addresses_;
}

std::vector<v1::Lock> NlmTestEnv::ListLocks() {
  grpc::ClientContext ctx;
  v1::ListLocksRequest req;
  req.set_page_size(1000);
  v1::ListLocksResponse resp;
  grpc::Status s = admin_->ListLocks(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return {resp.locks().begin(), resp.locks().end()};
}

std::vector<v1::Waiter> NlmTestEnv::ListWaiters() {
  grpc::ClientContext ctx;
  v1::ListWaitersRequest req;
  req.set_page_size(1000);
  v1::ListWaitersResponse resp;
  grpc::Status s = admin_->ListWaiters(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return {resp.waiters().begin(), resp.waiters().end()};
}

}  // namespace lockwarden::gateway::nlm
