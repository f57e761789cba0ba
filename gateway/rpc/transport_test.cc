// Loopback tests of RpcServer (UDP and TCP) with libtirpc clients and with
// RpcClient: replies, RPC errors, asynchronous handlers, DRC absorption of
// retransmissions, framing errors, idle timeout, connection limit, address
// normalisation.
#include "gateway/rpc/transport.h"

#include <arpa/inet.h>
#include <rpc/rpc.h>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

using asio::ip::tcp;

// NLM v4 TEST answers at once (echoing the cookie); LOCK answers from
// another thread after `lock_delay`; NULL for v1.
class TestService {
 public:
  explicit TestService(Dispatcher& d, absl::Duration lock_delay)
      : lock_delay_(lock_delay) {
    EXPECT_TRUE(d.RegisterProcedure(
                     NLM_PROG, NLM4_VERS, NLMPROC4_TEST,
                     MakeProcedure("TEST", xdr_nlm4_testargs, xdr_nlm4_testres,
                                   [this](std::unique_ptr<RpcCall> call) {
                                     OnTest(std::move(call));
                                   }))
                    .ok());
    EXPECT_TRUE(d.RegisterProcedure(
                     NLM_PROG, NLM4_VERS, NLMPROC4_LOCK,
                     MakeProcedure("LOCK", xdr_nlm4_lockargs, xdr_nlm4_res,
                                   [this](std::unique_ptr<RpcCall> call) {
                                     OnLock(std::move(call));
                                   }))
                    .ok());
    EXPECT_TRUE(d.RegisterProcedure(NLM_PROG, NLM_VERS, NLMPROC_NULL,
                                    MakeVoidProcedure(
                                        "NULL",
                                        [](std::unique_ptr<RpcCall> call) {
                                          (void)call->Reply(nullptr);
                                        }))
                    .ok());
  }
  ~TestService() {
    for (std::thread& t : workers_) t.join();
  }

  int lock_executions() const { return lock_executions_.load(); }
  std::string last_peer() {
    absl::MutexLock lock(&mu_);
    return last_peer_;
  }

 private:
  void OnTest(std::unique_ptr<RpcCall> call) {
    {
      absl::MutexLock lock(&mu_);
      last_peer_ = call->context().peer_address;
    }
    nlm4_testres res{};
    res.cookie = call->args<nlm4_testargs>()->cookie;
    res.stat.stat = NLM4_GRANTED;
    (void)call->Reply(&res);
  }
  void OnLock(std::unique_ptr<RpcCall> call) {
    ++lock_executions_;
    absl::MutexLock lock(&mu_);
    // Asynchronous completion on a thread of our own.
    workers_.emplace_back([this, c = std::move(call)]() mutable {
      absl::SleepFor(lock_delay_);
      nlm4_res res{};
      res.cookie = c->args<nlm4_lockargs>()->cookie;
      res.stat.stat = NLM4_BLOCKED;
      (void)c->Reply(&res);
    });
  }

  const absl::Duration lock_delay_;
  std::atomic<int> lock_executions_{0};
  absl::Mutex mu_;
  std::string last_peer_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

nlm4_testargs TestArgs() {
  static char name[] = "client";
  static char bytes[] = "cookiefh";
  nlm4_testargs a{};
  a.cookie = {6, bytes};
  a.alock.caller_name = name;
  a.alock.fh = {2, bytes + 6};
  a.alock.oh = {2, bytes + 6};
  return a;
}

class TransportTest : public ::testing::Test {
 protected:
  void StartServer(RpcServerOptions options,
                   absl::Duration lock_delay = absl::ZeroDuration()) {
    service_ = std::make_unique<TestService>(dispatcher_, lock_delay);
    server_ = std::make_unique<RpcServer>(pool_.context(), dispatcher_,
                                          std::move(options));
    LW_ASSERT_OK(server_->Start());
    ASSERT_NE(server_->port(), 0);
  }
  void TearDown() override {
    if (server_) server_->Stop();
    pool_.Stop();
  }

  sockaddr_in Loopback() const {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(server_->port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }

  CLIENT* TirpcClient(bool tcp, u_long prog, u_long vers) {
    sockaddr_in addr = Loopback();
    int sock = RPC_ANYSOCK;
    if (tcp) return clnttcp_create(&addr, prog, vers, &sock, 0, 0);
    return clntudp_create(&addr, prog, vers, timeval{0, 200000}, &sock);
  }

  DuplicateRequestCache drc_;
  Dispatcher dispatcher_{DispatcherOptions{&drc_, nullptr}};
  IoThreadPool pool_{2};
  std::unique_ptr<TestService> service_;
  std::unique_ptr<RpcServer> server_;
};

const timeval kTimeout{5, 0};

void ExpectTirpcTestCall(CLIENT* clnt) {
  ASSERT_NE(clnt, nullptr) << clnt_spcreateerror("create");
  nlm4_testargs args = TestArgs();
  nlm4_testres res{};
  ASSERT_EQ(clnt_call(clnt, NLMPROC4_TEST, XdrProc(xdr_nlm4_testargs),
                      reinterpret_cast<caddr_t>(&args),
                      XdrProc(xdr_nlm4_testres),
                      reinterpret_cast<caddr_t>(&res), kTimeout),
            RPC_SUCCESS);
  EXPECT_EQ(res.stat.stat, NLM4_GRANTED);
  EXPECT_EQ(std::string(res.cookie.n_bytes, res.cookie.n_len), "cookie");
  XdrFree(XdrProc(xdr_nlm4_testres), &res);
}

clnt_stat CallStatus(CLIENT* clnt, u_long proc, xdrproc_t args_proc,
                     void* args) {
  EXPECT_NE(clnt, nullptr);
  if (clnt == nullptr) return RPC_FAILED;
  nlm4_testres res{};
  clnt_stat st = clnt_call(clnt, proc, args_proc, static_cast<caddr_t>(args),
                           XdrProc(xdr_nlm4_testres),
                           reinterpret_cast<caddr_t>(&res), kTimeout);
  XdrFree(XdrProc(xdr_nlm4_testres), &res);
  return st;
}

void ExpectRpcErrors(TransportTest* t, bool tcp,
                     std::function<CLIENT*(bool, u_long, u_long)> make) {
  nlm4_testargs args = TestArgs();
  u_int junk = 7;
  CLIENT* c = make(tcp, 100099, 1);
  EXPECT_EQ(CallStatus(c, 1, XdrProc(xdr_nlm4_testargs), &args),
            RPC_PROGUNAVAIL);
  clnt_destroy(c);
  c = make(tcp, NLM_PROG, 2);
  EXPECT_EQ(CallStatus(c, 1, XdrProc(xdr_nlm4_testargs), &args),
            RPC_PROGVERSMISMATCH);
  rpc_err err{};
  clnt_geterr(c, &err);
  EXPECT_EQ(err.re_vers.low, 1u);
  EXPECT_EQ(err.re_vers.high, 4u);
  clnt_destroy(c);
  c = make(tcp, NLM_PROG, NLM4_VERS);
  EXPECT_EQ(CallStatus(c, 99, XdrProc(xdr_nlm4_testargs), &args),
            RPC_PROCUNAVAIL);
  EXPECT_EQ(CallStatus(c, NLMPROC4_TEST, XdrProc(xdr_u_int), &junk),
            RPC_CANTDECODEARGS);  // GARBAGE_ARGS
  clnt_destroy(c);
  (void)t;
}

TEST_F(TransportTest, TirpcUdpClientGetsRepliesAndRpcErrors) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"});
  CLIENT* c = TirpcClient(false, NLM_PROG, NLM4_VERS);
  ExpectTirpcTestCall(c);
  clnt_destroy(c);
  ExpectRpcErrors(this, false, [this](bool tcp, u_long p, u_long v) {
    return TirpcClient(tcp, p, v);
  });
  EXPECT_EQ(service_->last_peer(), "127.0.0.1");
}

TEST_F(TransportTest, TirpcTcpClientGetsRepliesAndRpcErrors) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"});
  CLIENT* c = TirpcClient(true, NLM_PROG, NLM4_VERS);
  for (int i = 0; i < 20; ++i) ExpectTirpcTestCall(c);
  clnt_destroy(c);
  ExpectRpcErrors(this, true, [this](bool tcp, u_long p, u_long v) {
    return TirpcClient(tcp, p, v);
  });
}

// RpcClient round trip; blocks the test thread until the reply.
absl::StatusOr<nlm4_stats> ClientLock(RpcClient& client, RpcEndpoint to,
                                      RpcClientOptions = {}) {
  nlm4_lockargs args{};
  nlm4_testargs t = TestArgs();
  args.cookie = t.cookie;
  args.alock = t.alock;
  std::promise<absl::StatusOr<nlm4_stats>> done;
  client.Call(to, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_LOCK},
              CallCredentials::None(), XdrProc(xdr_nlm4_lockargs), &args,
              [&done](absl::StatusOr<RpcReply> reply) {
                if (!reply.ok()) {
                  done.set_value(reply.status());
                  return;
                }
                XdrObject<nlm4_res> res(XdrProc(xdr_nlm4_res));
                absl::Status s =
                    reply->DecodeResults(XdrProc(xdr_nlm4_res), res.get());
                if (!s.ok()) {
                  done.set_value(s);
                } else {
                  done.set_value(res.value().stat.stat);
                }
              });
  return done.get_future().get();
}

TEST_F(TransportTest, RpcClientOverUdpAndTcpWithAsynchronousHandler) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"},
              absl::Milliseconds(20));
  RpcClient client(pool_.context());
  for (TransportKind kind : {TransportKind::kUdp, TransportKind::kTcp}) {
    absl::StatusOr<nlm4_stats> st =
        ClientLock(client, RpcEndpoint{"127.0.0.1", server_->port(), kind});
    LW_ASSERT_OK(st.status());
    EXPECT_EQ(*st, NLM4_BLOCKED);
  }
  EXPECT_EQ(client.calls_in_flight(), 0u);
}

TEST_F(TransportTest, UdpRetransmissionsAreAbsorbedByTheDrc) {
  // The handler takes 700 ms; the client retransmits every 100 ms.
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"},
              absl::Milliseconds(700));
  RpcClient client(pool_.context(),
                   RpcClientOptions{.udp_retransmit_intervals =
                                        {absl::Milliseconds(100)}});
  absl::StatusOr<nlm4_stats> st = ClientLock(
      client, RpcEndpoint{"127.0.0.1", server_->port(), TransportKind::kUdp});
  LW_ASSERT_OK(st.status());
  EXPECT_EQ(service_->lock_executions(), 1);
  EXPECT_GE(drc_.stats().in_progress, 3u);
}

TEST_F(TransportTest, ManyTcpCallsInFlightOnOneConnection) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1",
                               .max_calls_in_flight_per_connection = 4},
              absl::Milliseconds(5));
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  std::string burst;
  nlm4_lockargs args{};
  nlm4_testargs t = TestArgs();
  args.cookie = t.cookie;
  args.alock = t.alock;
  constexpr int kCalls = 32;
  for (uint32_t xid = 1; xid <= kCalls; ++xid) {
    AppendRecord(*EncodeCall(xid, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_LOCK},
                             CallCredentials::None(),
                             XdrProc(xdr_nlm4_lockargs), &args),
                 &burst);
  }
  asio::write(s, asio::buffer(burst));
  RecordDecoder decoder;
  std::vector<std::string> replies;
  std::array<char, 4096> buf;
  while (replies.size() < kCalls) {
    size_t n = s.read_some(asio::buffer(buf));
    LW_ASSERT_OK(decoder.Feed(absl::string_view(buf.data(), n), &replies));
  }
  std::set<uint32_t> xids;
  for (const std::string& r : replies) {
    absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(r);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->accept_stat, AcceptStat::kSuccess);
    xids.insert(h->xid);
  }
  EXPECT_EQ(xids.size(), size_t{kCalls});
}

// `calls` NLM4 TEST calls (xids first..first+calls-1), record-marked.
std::string TestCallBurst(uint32_t first, uint32_t calls) {
  nlm4_testargs args = TestArgs();
  std::string burst;
  for (uint32_t xid = first; xid < first + calls; ++xid) {
    AppendRecord(*EncodeCall(xid, CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_TEST},
                             CallCredentials::None(),
                             XdrProc(xdr_nlm4_testargs), &args),
                 &burst);
  }
  return burst;
}

// A client socket with a small receive buffer, so that the server's replies
// fill the socket buffers while the client does not read.
void ConnectWithSmallReceiveBuffer(tcp::socket& s, uint16_t port) {
  s.open(tcp::v4());
  s.set_option(asio::socket_base::receive_buffer_size(4096));
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
}

// Sends bursts of TEST calls without reading replies until `done` (checked
// between bursts) or the connection fails; returns the calls sent.
template <typename Done>
uint32_t SendWithoutReading(tcp::socket& s, Done done) {
  constexpr uint32_t kBurst = 1000;
  constexpr int kMaxBursts = 200;  // ~10 MiB of replies: beyond any buffer
  uint32_t sent = 0;
  for (int i = 0; i < kMaxBursts && !done(); ++i) {
    asio::error_code ec;
    asio::write(s, asio::buffer(TestCallBurst(sent + 1, kBurst)), ec);
    if (ec) break;
    sent += kBurst;
    absl::SleepFor(absl::Milliseconds(2));  // let the server answer them
  }
  return sent;
}

TEST_F(TransportTest, TcpRepliesQueuedBehindAFullSocketBufferKeepTheirOrder) {
  // Calls sent before the client notices the queue are still in the socket
  // buffers, and are answered too: room for all of them.
  StartServer(RpcServerOptions{
      .bind_address = "127.0.0.1",
      .max_queued_reply_bytes_per_connection = 64 * 1024 * 1024});
  asio::io_context io;
  tcp::socket s(io);
  ConnectWithSmallReceiveBuffer(s, server_->port());
  const uint32_t calls = SendWithoutReading(
      s, [&] { return server_->stats().tcp_replies_queued > 0; });
  ASSERT_GT(server_->stats().tcp_replies_queued, 0u);
  RecordDecoder decoder;
  std::vector<std::string> replies;
  std::array<char, 16384> buf;
  while (replies.size() < calls) {
    size_t n = s.read_some(asio::buffer(buf));
    LW_ASSERT_OK(decoder.Feed(absl::string_view(buf.data(), n), &replies));
  }
  ASSERT_EQ(replies.size(), size_t{calls});
  // TEST answers synchronously, so replies complete in xid order and must
  // reach the wire in that order whichever thread wrote them.
  for (uint32_t i = 0; i < calls; ++i) {
    absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(replies[i]);
    ASSERT_TRUE(h.ok());
    ASSERT_EQ(h->xid, i + 1);
  }
  EXPECT_EQ(server_->stats().tcp_slow_reader_closed, 0u);
}

TEST_F(TransportTest, ClientThatDoesNotReadItsRepliesIsDisconnected) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1",
                               .max_queued_reply_bytes_per_connection = 4096});
  asio::io_context io;
  tcp::socket s(io);
  ConnectWithSmallReceiveBuffer(s, server_->port());
  SendWithoutReading(
      s, [&] { return server_->stats().tcp_slow_reader_closed > 0; });
  ASSERT_EQ(server_->stats().tcp_slow_reader_closed, 1u);
  // What the kernel had buffered, then the end of the stream.
  asio::error_code ec;
  std::array<char, 16384> buf;
  for (int i = 0; i < 100000 && !ec; ++i) s.read_some(asio::buffer(buf), ec);
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset)
      << ec.message();
}

// Reads until EOF or error; true if the server closed the connection.
bool ServerCloses(tcp::socket& s) {
  std::array<char, 64> buf;
  asio::error_code ec;
  for (int i = 0; i < 100 && !ec; ++i) s.read_some(asio::buffer(buf), ec);
  return ec == asio::error::eof || ec == asio::error::connection_reset;
}

TEST_F(TransportTest, OversizeRecordClosesTheConnection) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"});
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  asio::write(s, asio::buffer(std::string("\x80\x10\x00\x00", 4)));  // 1 MiB
  EXPECT_TRUE(ServerCloses(s));
  EXPECT_EQ(server_->stats().tcp_framing_errors, 1u);
}

TEST_F(TransportTest, IdleConnectionIsClosed) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1",
                               .tcp_idle_timeout = absl::Milliseconds(200)});
  asio::io_context io;
  tcp::socket s(io);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(ServerCloses(s));
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(150));
  EXPECT_EQ(server_->stats().tcp_idle_closed, 1u);
}

TEST_F(TransportTest, ConnectionsBeyondTheLimitAreClosed) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1",
                               .max_tcp_connections = 1});
  CLIENT* first = TirpcClient(true, NLM_PROG, NLM4_VERS);
  ExpectTirpcTestCall(first);
  asio::io_context io;
  tcp::socket second(io);
  second.connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  EXPECT_TRUE(ServerCloses(second));
  EXPECT_EQ(server_->stats().tcp_rejected_limit, 1u);
  ExpectTirpcTestCall(first);  // the first connection still works
  clnt_destroy(first);
}

TEST_F(TransportTest, DualStackNormalisesIpv4MappedPeers) {
  StartServer(RpcServerOptions{.bind_address = "::"});
  RpcClient client(pool_.context());
  for (const char* addr : {"127.0.0.1", "::1"}) {
    nlm4_testargs args = TestArgs();
    std::promise<absl::Status> done;
    client.Call(RpcEndpoint{addr, server_->port(), TransportKind::kUdp},
                CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_TEST},
                CallCredentials::None(), XdrProc(xdr_nlm4_testargs), &args,
                [&done](absl::StatusOr<RpcReply> r) {
                  done.set_value(r.status());
                });
    LW_ASSERT_OK(done.get_future().get());
    EXPECT_EQ(service_->last_peer(), std::string(addr));
  }
}

TEST_F(TransportTest, DrainLetsCallsInFlightFinishThenStops) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"},
              absl::Milliseconds(300));
  RpcClient client(pool_.context());
  const uint16_t port = server_->port();
  std::vector<std::future<absl::StatusOr<nlm4_stats>>> calls;
  for (TransportKind kind : {TransportKind::kUdp, TransportKind::kTcp}) {
    calls.push_back(std::async(std::launch::async, [&client, port, kind] {
      return ClientLock(client, RpcEndpoint{"127.0.0.1", port, kind});
    }));
  }
  // Both calls reach the server before the drain starts.
  for (int i = 0; i < 200 && server_->calls_in_flight() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(server_->calls_in_flight(), 2u);
  EXPECT_EQ(server_->Drain(absl::Seconds(5)), 0u);
  for (auto& f : calls) {
    absl::StatusOr<nlm4_stats> st = f.get();
    LW_ASSERT_OK(st.status());
    EXPECT_EQ(*st, NLM4_BLOCKED);
  }
  // Nothing listens any more.
  asio::io_context io;
  tcp::socket s(io);
  asio::error_code ec;
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  EXPECT_TRUE(ec);
}

TEST(AddressTest, NormalizeAddressMapsIpv4MappedToIpv4) {
  EXPECT_EQ(NormalizedAddressString(asio::ip::make_address("::ffff:10.1.2.3")),
            "10.1.2.3");
  EXPECT_EQ(NormalizedAddressString(asio::ip::make_address("2001:db8::1")),
            "2001:db8::1");
  EXPECT_EQ(NormalizedAddressString(asio::ip::make_address("192.0.2.1")),
            "192.0.2.1");
  EXPECT_TRUE(ParseAddress("::ffff:127.0.0.1")->is_v4());
  EXPECT_FALSE(ParseAddress("not-an-address").ok());
}

TEST_F(TransportTest, RpcClientTimesOutAndReportsUnreachablePorts) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"});
  // A UDP socket that never answers.
  asio::io_context io;
  asio::ip::udp::socket silent(
      io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  RpcClient client(pool_.context(),
                   RpcClientOptions{.udp_retransmit_intervals =
                                        {absl::Milliseconds(50)},
                                    .timeout = absl::Milliseconds(300)});
  absl::StatusOr<nlm4_stats> st =
      ClientLock(client, RpcEndpoint{"127.0.0.1", silent.local_endpoint().port(),
                                     TransportKind::kUdp});
  EXPECT_THAT(st.status(),
              testing::StatusIs(absl::StatusCode::kDeadlineExceeded));
  const uint16_t closed_port = silent.local_endpoint().port();
  silent.close();
  st = ClientLock(client,
                  RpcEndpoint{"127.0.0.1", closed_port, TransportKind::kUdp});
  EXPECT_THAT(st.status(), testing::StatusIs(absl::StatusCode::kUnavailable));
  st = ClientLock(client,
                  RpcEndpoint{"127.0.0.1", closed_port, TransportKind::kTcp});
  EXPECT_THAT(st.status(), testing::StatusIs(absl::StatusCode::kUnavailable));
  std::promise<absl::StatusOr<uint16_t>> port;
  client.GetPort("127.0.0.1", NLM_PROG, NLM4_VERS, TransportKind::kUdp,
                 [&port](absl::StatusOr<uint16_t> p) { port.set_value(p); },
                 closed_port);
  EXPECT_THAT(port.get_future().get().status(),
              testing::StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(TransportTest, SendDeliversMessagesWithoutReply) {
  StartServer(RpcServerOptions{.bind_address = "127.0.0.1"});
  RpcClient client(pool_.context());
  nlm4_testargs args = TestArgs();
  for (TransportKind kind : {TransportKind::kUdp, TransportKind::kTcp}) {
    std::promise<absl::Status> sent;
    client.Send(RpcEndpoint{"127.0.0.1", server_->port(), kind},
                CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_TEST},
                CallCredentials::None(), XdrProc(xdr_nlm4_testargs), &args,
                [&sent](absl::Status s) { sent.set_value(s); });
    LW_EXPECT_OK(sent.get_future().get());
  }
}

}  // namespace
}  // namespace lockwarden::gateway
