#include "gateway/nsm/nsm_test_fixture.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <future>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "server/store/borrowed_store.h"

namespace lockwarden::gateway::nsm::testing {
namespace {

constexpr timeval kCallTimeout{5, 0};

// The sm_stat_res of an SM_STAT/SM_MON call made with CallNsm; {STAT_FAIL,
// -1} (a state no server sends) if the call could not be made or failed.
sm_stat_res StatResOf(std::optional<clnt_stat> st, const sm_stat_res& res) {
  if (!st.has_value()) return sm_stat_res{stat_fail, -1};
  EXPECT_EQ(*st, RPC_SUCCESS);
  return *st == RPC_SUCCESS ? res : sm_stat_res{stat_fail, -1};
}

// A loopback port nothing listens on (bind, read, close).
int FreePort() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  auto server = builder.BuildAndStart();
  server->Shutdown();
  return port;
}

std::unique_ptr<grpc::ClientContext> Ctx() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(5));
  return ctx;
}

}  // namespace

FakePeer::FakePeer(asio::io_context& io, uint32_t prog, uint32_t vers,
                   uint32_t proc, bool status_shape) {
  auto record = [this](ReceivedCall call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
  };
  ProcedureSpec spec;
  if (status_shape) {
    spec = MakeVoidResultProcedure(
        "fake_status_callback", xdr_nlm_sm_status,
        [record](std::unique_ptr<RpcCall> call) {
          const nlm_sm_status* a = call->args<nlm_sm_status>();
          record(ReceivedCall{a->mon_name, a->state,
                              std::string(a->priv, SM_PRIV_SIZE),
                              call->context().peer_address});
          (void)call->Reply(nullptr);
        });
  } else {
    spec = MakeVoidResultProcedure(
        "fake_sm_notify", xdr_stat_chge,
        [record](std::unique_ptr<RpcCall> call) {
          const stat_chge* a = call->args<stat_chge>();
          record(ReceivedCall{a->mon_name, a->state, "",
                              call->context().peer_address});
          (void)call->Reply(nullptr);
        });
  }
  EXPECT_TRUE(dispatcher_.RegisterProcedure(prog, vers, proc, std::move(spec))
                  .ok());
  server_ = std::make_unique<RpcServer>(
      io, dispatcher_, RpcServerOptions{.bind_address = "127.0.0.1"});
  EXPECT_TRUE(server_->Start().ok());
}

std::vector<ReceivedCall> FakePeer::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

bool FakePeer::WaitForCalls(size_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return calls_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

void NsmServiceTest::SetUp() {
  server_port_ = FreePort();
  StartLockServer();
  pool_ = std::make_unique<IoThreadPool>(2);
  ServerClientOptions so;
  so.servers = {absl::StrCat("127.0.0.1:", server_port_)};
  so.failover_wait_ms = 3000;
  so.rpc_timeout_ms = 1000;
  server_client_ = std::make_unique<ServerClient>(so);
  RpcClientOptions ro;
  ro.udp_retransmit_intervals = {absl::Milliseconds(100),
                                 absl::Milliseconds(200)};
  ro.timeout = absl::Seconds(1);
  rpc_client_ = std::make_unique<RpcClient>(pool_->context(), ro);

  ASSERT_TRUE(portmapper_.RegisterProcedures(portmap_dispatcher_).ok());
  portmap_server_ = std::make_unique<RpcServer>(
      pool_->context(), portmap_dispatcher_,
      RpcServerOptions{.bind_address = "127.0.0.1"});
  ASSERT_TRUE(portmap_server_->Start().ok());
  statd_ = std::make_unique<FakePeer>(pool_->context(), 100024, 1, 6, false);
  lockd_ = std::make_unique<FakePeer>(pool_->context(), 100021, 4, 16, true);
  ASSERT_TRUE(portmapper_.AddService(100024, 1, statd_->port(), false).ok());
  ASSERT_TRUE(portmapper_.AddService(100021, 4, lockd_->port(), false).ok());
  StartNsm(DefaultOptions());
}

void NsmServiceTest::TearDown() {
  StopNsm();
  portmap_server_->Stop();
  pool_->Stop();
  statd_.reset();
  lockd_.reset();
  portmap_server_.reset();
  rpc_client_.reset();
  server_client_.reset();
  retired_services_.clear();
  retired_dispatchers_.clear();
  pool_.reset();
  StopLockServer();
}

NsmOptions NsmServiceTest::DefaultOptions() const {
  NsmOptions o;
  o.gateway_id = kGatewayId;
  o.rpcbind_port = portmap_server_->port();
  o.notify_retry_schedule = std::vector<absl::Duration>(
      50, absl::Milliseconds(100));
  o.callback_retry_schedule = std::vector<absl::Duration>(
      50, absl::Milliseconds(100));
  o.resolve_timeout = absl::Seconds(2);
  o.watch_backoff_initial = absl::Milliseconds(50);
  o.watch_backoff_max = absl::Milliseconds(500);
  o.instance_name = "nsm-test";
  return o;
}

void NsmServiceTest::StartNsm(NsmOptions options) {
  nsm_dispatcher_ = std::make_unique<Dispatcher>();
  nsm_ = std::make_unique<NsmService>(std::move(options),
                                      server_client_.get(), rpc_client_.get(),
                                      &book_);
  ASSERT_TRUE(nsm_->Register(*nsm_dispatcher_).ok());
  nsm_server_ = std::make_unique<RpcServer>(
      pool_->context(), *nsm_dispatcher_,
      RpcServerOptions{.bind_address = "127.0.0.1"});
  ASSERT_TRUE(nsm_server_->Start().ok());
  nsm_->Start();
}

void NsmServiceTest::StopNsm() {
  if (nsm_ == nullptr) return;
  nsm_server_->Stop();
  nsm_->Stop();
  nsm_server_.reset();
  retired_services_.push_back(std::move(nsm_));
  retired_dispatchers_.push_back(std::move(nsm_dispatcher_));
}

void NsmServiceTest::StartLockServer() {
  service::LockServerOptions o;
  o.listen = absl::StrCat("127.0.0.1:", server_port_);
  o.core.grace_period_ms = 3000;
  // Open WatchNotifications streams would otherwise hold a restart for
  // the default 5 s.
  o.shutdown_timeout_ms = 200;
  // The MemoryStore is the fixture's; the server gets a forwarding view.
  auto server = service::LockServer::Start(
      o, std::make_unique<store::BorrowedStore>(&store_), &clock_);
  ASSERT_TRUE(server.ok()) << server.status();
  lock_server_ = *std::move(server);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_port_),
                          grpc::InsecureChannelCredentials());
  lock_stub_ = v1::LockService::NewStub(channel);
  monitor_stub_ = v1::MonitorService::NewStub(channel);
  admin_stub_ = v1::AdminService::NewStub(channel);
}

void NsmServiceTest::StopLockServer() {
  lock_stub_.reset();
  monitor_stub_.reset();
  admin_stub_.reset();
  if (lock_server_ != nullptr) lock_server_->Shutdown();
  lock_server_.reset();
}

CLIENT* NsmServiceTest::NsmClient() const {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(nsm_server_->port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int sock = RPC_ANYSOCK;
  CLIENT* c = clntudp_create(&addr, SM_PROG, SM_VERS, timeval{0, 200000},
                             &sock);
  EXPECT_NE(c, nullptr) << clnt_spcreateerror("clntudp_create");
  return c;
}

sm_stat_res NsmServiceTest::Mon(const std::string& mon_name,
                                const std::string& my_name, int prog,
                                int vers, int proc, const std::string& priv) {
  mon args{};
  args.mon_id.mon_name = const_cast<char*>(mon_name.c_str());
  args.mon_id.my_id.my_name = const_cast<char*>(my_name.c_str());
  args.mon_id.my_id.my_prog = prog;
  args.mon_id.my_id.my_vers = vers;
  args.mon_id.my_id.my_proc = proc;
  std::memcpy(args.priv, priv.data(), std::min<size_t>(priv.size(), 16));
  sm_stat_res res{};
  return StatResOf(CallNsm(SM_MON, XdrProc(xdr_mon), &args,
                           XdrProc(xdr_sm_stat_res), &res),
                   res);
}

sm_stat_res NsmServiceTest::Stat(const std::string& mon_name) {
  sm_name args{const_cast<char*>(mon_name.c_str())};
  sm_stat_res res{};
  return StatResOf(CallNsm(SM_STAT, XdrProc(xdr_sm_name), &args,
                           XdrProc(xdr_sm_stat_res), &res),
                   res);
}

bool NsmServiceTest::SimuCrash() {
  return CallNsm(SM_SIMU_CRASH, XdrVoid(), nullptr, XdrVoid(), nullptr) ==
         RPC_SUCCESS;
}

bool NsmServiceTest::Notify(const std::string& mon_name, int state) {
  stat_chge args{const_cast<char*>(mon_name.c_str()), state};
  return CallNsm(SM_NOTIFY, XdrProc(xdr_stat_chge), &args, XdrVoid(),
                 nullptr) == RPC_SUCCESS;
}

bool NsmServiceTest::NotifyAnsweredFrom(const std::string& peer,
                                        const std::string& mon_name,
                                        int state) {
  stat_chge args{const_cast<char*>(mon_name.c_str()), state};
  return DispatchFrom(peer, SM_NOTIFY, XdrProc(xdr_stat_chge), &args)
      .has_value();
}

std::optional<clnt_stat> NsmServiceTest::CallNsm(rpcproc_t proc,
                                                 xdrproc_t encoder, void* args,
                                                 xdrproc_t decoder,
                                                 void* result) const {
  CLIENT* c = NsmClient();
  if (c == nullptr) return std::nullopt;
  clnt_stat st =
      clnt_call(c, proc, encoder, reinterpret_cast<caddr_t>(args), decoder,
                reinterpret_cast<caddr_t>(result), kCallTimeout);
  clnt_destroy(c);
  return st;
}

std::optional<std::string> NsmServiceTest::DispatchFrom(
    const std::string& peer, uint32_t proc, xdrproc_t encoder,
    const void* args) {
  static std::atomic<uint32_t> xid{0x4e534d00};
  absl::StatusOr<std::string> message = EncodeCall(
      xid.fetch_add(1), CallTarget{SM_PROG, SM_VERS, proc},
      CallCredentials::None(), encoder, args);
  EXPECT_TRUE(message.ok()) << message.status();
  if (!message.ok()) return std::nullopt;
  CallContext context;
  context.transport = TransportKind::kUdp;
  context.peer_address = peer;
  context.peer_port = 700;
  context.local_address = "127.0.0.1";
  context.local_port = nsm_server_->port();
  context.peer_is_loopback = absl::StartsWith(peer, "127.");
  auto promise = std::make_shared<std::promise<std::optional<std::string>>>();
  std::future<std::optional<std::string>> reply = promise->get_future();
  nsm_dispatcher_->Dispatch(context, *message,
                            [promise](std::optional<std::string> bytes) {
                              promise->set_value(std::move(bytes));
                            });
  if (reply.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    return std::nullopt;
  }
  return reply.get();
}

v1::LockStatus NsmServiceTest::LockFor(const std::string& client,
                                       int32_t client_state,
                                       const std::string& fh) {
  v1::LockRequest r;
  r.set_request_id(absl::StrCat("nsm-test-lock-", ++request_seq_));
  r.set_gateway_id(kGatewayId);
  r.set_file_handle(fh);
  r.mutable_owner()->set_client_name(client);
  r.mutable_owner()->set_svid(1);
  r.mutable_owner()->set_oh(absl::StrCat("oh-", client));
  r.mutable_range()->set_offset(0);
  r.mutable_range()->set_length(10);
  r.set_exclusive(true);
  r.set_client_state(client_state);
  r.set_monitored(true);
  r.mutable_callback()->set_client_address("127.0.0.1");
  r.mutable_callback()->set_nlm_version(4);
  v1::LockResponse resp;
  grpc::Status s = lock_stub_->Lock(Ctx().get(), r, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.status();
}

size_t NsmServiceTest::CountLocks(const std::string& fh) {
  v1::ListLocksRequest r;
  r.mutable_filter()->set_file_handle(fh);
  r.set_page_size(1000);
  v1::ListLocksResponse resp;
  grpc::Status s = admin_stub_->ListLocks(Ctx().get(), r, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.locks_size();
}

std::optional<v1::NotificationEvent>
NsmServiceTest::FirstPendingNotification(absl::Duration wait) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + wait));
  v1::WatchNotificationsRequest r;
  r.set_gateway_id(kGatewayId);
  auto reader = monitor_stub_->WatchNotifications(&ctx, r);
  v1::WatchNotificationsResponse resp;
  std::optional<v1::NotificationEvent> first;
  while (reader->Read(&resp)) {
    if (resp.events_size() > 0) {
      first = resp.events(0);
      break;
    }
  }
  ctx.TryCancel();
  (void)reader->Finish();
  return first;
}

bool NsmServiceTest::Eventually(const std::function<bool()>& done,
                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace lockwarden::gateway::nsm::testing
