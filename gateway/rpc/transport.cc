#include "gateway/rpc/transport.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "gateway/rpc/transport_internal.h"

namespace lockwarden::gateway {
namespace {

using asio::ip::tcp;
using asio::ip::udp;

// Largest UDP payload (65535 - 8 byte UDP header - 20 byte IPv4 header).
constexpr size_t kMaxDatagramBytes = 65507;
// Attempts at finding an ephemeral port free for both UDP and TCP.
constexpr int kEphemeralBindAttempts = 8;
// Back-off after accept() fails (e.g. out of descriptors).
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

absl::Status OsError(absl::string_view what, const asio::error_code& ec) {
  return absl::UnavailableError(absl::StrCat(what, ": ", ec.message()));
}

}  // namespace

// ---------------------------------------------------------------------------

// One UDP socket: receive, dispatch, reply to the source.
class RpcServer::UdpEndpoint
    : public std::enable_shared_from_this<UdpEndpoint> {
 public:
  UdpEndpoint(std::shared_ptr<Shared> shared, udp::socket socket)
      : shared_(std::move(shared)),
        strand_(asio::make_strand(shared_->io)),
        socket_(std::move(socket)),
        fd_(socket_.native_handle()),
        buffer_(kMaxDatagramBytes + 1) {}

  void Start() {
    asio::post(strand_, [self = shared_from_this()] { self->Receive(); });
  }
  void Close() {
    asio::post(strand_, [self = shared_from_this()] {
      {
        // No direct send may use the descriptor number once it is closed
        // (it could be reused).
        absl::MutexLock lock(&self->send_mu_);
        self->fd_closed_ = true;
      }
      asio::error_code ec;
      self->socket_.close(ec);
    });
  }
  // Stops receiving; the socket stays open for the replies still due.
  void StopReceiving() {
    asio::post(strand_, [self = shared_from_this()] {
      self->receiving_ = false;
      asio::error_code ec;
      self->socket_.cancel(ec);
    });
  }

 private:
  void Receive() {
    socket_.async_receive_from(
        asio::buffer(buffer_), sender_,
        asio::bind_executor(strand_, [self = shared_from_this()](
                                         const asio::error_code& ec, size_t n) {
          self->OnReceive(ec, n);
        }));
  }

  void OnReceive(const asio::error_code& ec, size_t n) {
    if (ec == asio::error::operation_aborted || !socket_.is_open() ||
        !receiving_) {
      return;
    }
    // Other errors (e.g. ECONNREFUSED from an ICMP error for an earlier
    // reply) concern one peer only: keep serving.
    if (!ec) HandleDatagram(n);
    Receive();
  }

  void HandleDatagram(size_t n) {
    shared_->Count(&RpcServerStats::udp_datagrams);
    if (n > kMaxDatagramBytes) return;  // truncated: cannot be valid
    if (in_flight_.load() >= shared_->options.max_udp_calls_in_flight) {
      shared_->Count(&RpcServerStats::udp_dropped_overload);
      return;  // the client retransmits
    }
    ++in_flight_;
    ++shared_->calls_in_flight;
    CallContext context;
    context.transport = TransportKind::kUdp;
    const asio::ip::address peer = NormalizeAddress(sender_.address());
    context.peer_address = peer.to_string();
    context.peer_port = sender_.port();
    context.peer_is_loopback = peer.is_loopback();
    asio::error_code ec;
    const udp::endpoint local = socket_.local_endpoint(ec);
    context.local_address = NormalizedAddressString(local.address());
    context.local_port = local.port();
    udp::endpoint to = sender_;
    shared_->dispatcher.Dispatch(
        context, absl::string_view(buffer_.data(), n),
        [self = shared_from_this(), to](std::optional<std::string> reply) {
          if (!reply.has_value()) {
            self->CallDone();
            return;
          }
          // Most replies go out here, on the thread that completed the
          // call (a gRPC thread), without waking an I/O thread.
          if (self->TrySendNow(to, *reply)) {
            self->CallDone();
            return;
          }
          asio::post(self->strand_, [self, to, r = std::move(*reply)]() mutable {
            self->Send(to, std::move(r));
            // Counted done once the send is started, so Drain does not
            // close the socket under a reply still to go out.
            self->CallDone();
          });
        });
  }

  void CallDone() {
    --in_flight_;
    --shared_->calls_in_flight;
  }

  // A non-blocking sendto(2) on the descriptor from any thread (the kernel
  // serialises datagram sends; no Asio state is touched). True when the
  // datagram is sent, or is lost for a reason a retry here would not fix
  // (the client retransmits, as for any lost reply); false when the socket
  // buffer is full or the socket closed, so the strand's path decides.
  bool TrySendNow(const udp::endpoint& to, const std::string& bytes) {
    absl::MutexLock lock(&send_mu_);
    if (fd_closed_) return false;
    const ssize_t n = ::sendto(fd_, bytes.data(), bytes.size(),
                               MSG_DONTWAIT | MSG_NOSIGNAL, to.data(),
                               static_cast<socklen_t>(to.size()));
    if (n >= 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  }

  void Send(const udp::endpoint& to, std::string bytes) {
    if (!socket_.is_open()) return;
    auto buf = std::make_shared<std::string>(std::move(bytes));
    socket_.async_send_to(
        asio::buffer(*buf), to,
        asio::bind_executor(strand_, [buf](const asio::error_code&, size_t) {
          // A lost UDP reply is recovered by the client's retransmission
          // and the DRC.
        }));
  }

  std::shared_ptr<Shared> shared_;
  asio::strand<asio::io_context::executor_type> strand_;
  udp::socket socket_;
  // The socket's descriptor, for TrySendNow; valid while !fd_closed_.
  const int fd_;
  absl::Mutex send_mu_;
  bool fd_closed_ ABSL_GUARDED_BY(send_mu_) = false;
  std::vector<char> buffer_;  // one receive at a time
  udp::endpoint sender_;
  bool receiving_ = true;  // strand only
  std::atomic<size_t> in_flight_{0};
};

class RpcServer::TcpAcceptor
    : public std::enable_shared_from_this<TcpAcceptor> {
 public:
  TcpAcceptor(std::shared_ptr<Shared> shared, tcp::acceptor acceptor)
      : shared_(std::move(shared)),
        acceptor_(std::move(acceptor)),
        retry_timer_(acceptor_.get_executor()) {}

  void Start() {
    asio::post(acceptor_.get_executor(),
               [self = shared_from_this()] { self->Accept(); });
  }
  void Close() {
    asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
      asio::error_code ec;
      self->acceptor_.close(ec);
      self->retry_timer_.cancel();
    });
  }

 private:
  void Accept() {
    acceptor_.async_accept(
        asio::make_strand(shared_->io),
        [self = shared_from_this()](const asio::error_code& ec,
                                    tcp::socket socket) {
          self->OnAccept(ec, std::move(socket));
        });
  }

  void OnAccept(const asio::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      LogEvent(LogLevel::kWarn, "rpc_tcp_accept_failed",
               {{"error", ec.message()}});
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait(
          [self = shared_from_this()](const asio::error_code& wait_ec) {
            if (!wait_ec) self->Accept();
          });
      return;
    }
    std::shared_ptr<TcpConnection> connection;
    {
      absl::MutexLock lock(&shared_->mu);
      if (!shared_->stopped && shared_->connections.size() <
                                   shared_->options.max_tcp_connections) {
        const uint64_t id = shared_->next_connection_id++;
        connection =
            std::make_shared<TcpConnection>(shared_, id, std::move(socket));
        shared_->connections.emplace(id, connection);
        ++shared_->stats.tcp_accepted;
      } else {
        ++shared_->stats.tcp_rejected_limit;
      }
    }
    if (connection) {
      connection->Start();
    } else {
      asio::error_code close_ec;
      socket.close(close_ec);
    }
    Accept();
  }

  std::shared_ptr<Shared> shared_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
};

// ---------------------------------------------------------------------------

RpcServer::RpcServer(asio::io_context& io, Dispatcher& dispatcher,
                     RpcServerOptions options)
    : shared_(std::make_shared<Shared>(io, dispatcher, std::move(options))) {}

RpcServer::~RpcServer() { Stop(); }

absl::Status RpcServer::BindAll(const asio::ip::address& address) {
  const RpcServerOptions& o = shared_->options;
  for (int attempt = 0; attempt < kEphemeralBindAttempts; ++attempt) {
    asio::error_code ec;
    uint16_t port = o.port;
    std::optional<udp::socket> udp_socket;
    if (o.enable_udp) {
      udp_socket.emplace(shared_->io);
      udp::endpoint ep(address, port);
      udp_socket->open(ep.protocol(), ec);
      if (!ec && address.is_v6()) {
        udp_socket->set_option(asio::ip::v6_only(false), ec);
      }
      if (!ec) udp_socket->bind(ep, ec);
      if (ec) return OsError(absl::StrCat("bind UDP ", address.to_string(),
                                          " port ", port), ec);
      port = udp_socket->local_endpoint().port();
    }
    std::optional<tcp::acceptor> acceptor;
    if (o.enable_tcp) {
      acceptor.emplace(shared_->io);
      tcp::endpoint ep(address, port);
      acceptor->open(ep.protocol(), ec);
      if (!ec && address.is_v6()) {
        acceptor->set_option(asio::ip::v6_only(false), ec);
      }
      // Lets a restarted gateway rebind while old connections linger in
      // TIME_WAIT.
      if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acceptor->bind(ep, ec);
      if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
      if (ec == asio::error::address_in_use && o.port == 0 && o.enable_udp) {
        continue;  // UDP's ephemeral port is taken for TCP: try another
      }
      if (ec) return OsError(absl::StrCat("bind TCP ", address.to_string(),
                                          " port ", port), ec);
      port = acceptor->local_endpoint().port();
    }
    absl::MutexLock lock(&shared_->mu);
    if (udp_socket) {
      shared_->udp =
          std::make_shared<UdpEndpoint>(shared_, std::move(*udp_socket));
      shared_->udp->Start();
    }
    if (acceptor) {
      shared_->acceptor =
          std::make_shared<TcpAcceptor>(shared_, std::move(*acceptor));
      shared_->acceptor->Start();
    }
    port_.store(port);
    return absl::OkStatus();
  }
  return absl::UnavailableError(
      "no ephemeral port was free for both UDP and TCP");
}

absl::Status RpcServer::Start() {
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->started) {
      return absl::FailedPreconditionError("RpcServer already started");
    }
    shared_->started = true;
  }
  if (!shared_->options.enable_udp && !shared_->options.enable_tcp) {
    return absl::InvalidArgumentError("neither UDP nor TCP is enabled");
  }
  absl::StatusOr<asio::ip::address> address =
      ParseAddress(shared_->options.bind_address);
  if (!address.ok()) return address.status();
  absl::Status s = BindAll(*address);
  if (s.ok()) {
    LogEvent(LogLevel::kInfo, "rpc_server_listening",
             {{"address", shared_->options.bind_address},
              {"port", static_cast<unsigned>(port_.load())},
              {"udp", shared_->options.enable_udp},
              {"tcp", shared_->options.enable_tcp}});
  }
  return s;
}

void RpcServer::Stop() {
  std::shared_ptr<UdpEndpoint> udp;
  std::shared_ptr<TcpAcceptor> acceptor;
  std::vector<std::shared_ptr<TcpConnection>> connections;
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->stopped) return;
    shared_->stopped = true;
    udp = std::move(shared_->udp);
    acceptor = std::move(shared_->acceptor);
    for (auto& [id, weak] : shared_->connections) {
      if (auto c = weak.lock()) connections.push_back(std::move(c));
    }
  }
  if (udp) udp->Close();
  if (acceptor) acceptor->Close();
  for (auto& c : connections) c->CloseFromOutside();
}

size_t RpcServer::Drain(absl::Duration grace) {
  std::shared_ptr<UdpEndpoint> udp;
  std::shared_ptr<TcpAcceptor> acceptor;
  std::vector<std::shared_ptr<TcpConnection>> connections;
  {
    absl::MutexLock lock(&shared_->mu);
    if (shared_->stopped || shared_->draining) return calls_in_flight();
    shared_->draining = true;
    udp = shared_->udp;
    acceptor = std::move(shared_->acceptor);
    for (auto& [id, weak] : shared_->connections) {
      if (auto c = weak.lock()) connections.push_back(std::move(c));
    }
  }
  if (acceptor) acceptor->Close();
  if (udp) udp->StopReceiving();
  for (auto& c : connections) c->BeginDrain();
  // Poll: the calls finish on other threads, at their own pace; the loop
  // is bounded by the grace period.
  const absl::Time deadline = absl::Now() + grace;
  while (absl::Now() < deadline) {
    bool idle = calls_in_flight() == 0;
    if (idle) {
      absl::MutexLock lock(&shared_->mu);
      idle = shared_->connections.empty();
    }
    if (idle) break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  const size_t abandoned = calls_in_flight();
  LogEvent(abandoned == 0 ? LogLevel::kInfo : LogLevel::kWarn,
           "rpc_server_drained", {{"calls_abandoned", abandoned}});
  Stop();
  return abandoned;
}

size_t RpcServer::calls_in_flight() const {
  return shared_->calls_in_flight.load();
}

RpcServerStats RpcServer::stats() const {
  absl::MutexLock lock(&shared_->mu);
  RpcServerStats s = shared_->stats;
  s.tcp_connections = shared_->connections.size();
  return s;
}

}  // namespace lockwarden::gateway
