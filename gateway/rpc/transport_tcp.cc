// RpcServer::TcpConnection: one accepted TCP connection (see
// transport_internal.h for the threading of its reply path).
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <utility>

#include "common/logging.h"
#include "gateway/rpc/transport_internal.h"

namespace lockwarden::gateway {

using asio::ip::tcp;

RpcServer::TcpConnection::TcpConnection(std::shared_ptr<Shared> shared,
                                        uint64_t id, tcp::socket socket)
    : shared_(std::move(shared)),
      id_(id),
      socket_(std::move(socket)),
      fd_(socket_.native_handle()),
      idle_timer_(socket_.get_executor()),
      decoder_(shared_->options.max_record_bytes) {
  asio::error_code ec;
  tcp::endpoint peer = socket_.remote_endpoint(ec);
  context_.transport = TransportKind::kTcp;
  const asio::ip::address address = NormalizeAddress(peer.address());
  context_.peer_address = address.to_string();
  context_.peer_port = peer.port();
  context_.peer_is_loopback = address.is_loopback();
  const tcp::endpoint local = socket_.local_endpoint(ec);
  context_.local_address = NormalizedAddressString(local.address());
  context_.local_port = local.port();
}

void RpcServer::TcpConnection::Start() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->last_activity_ = std::chrono::steady_clock::now();
    self->ArmIdleTimer(self->IdleTimeout());
    self->Read();
  });
}

void RpcServer::TcpConnection::CloseFromOutside() {
  asio::post(socket_.get_executor(),
             [self = shared_from_this()] { self->Close(); });
}

void RpcServer::TcpConnection::BeginDrain() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->draining_ = true;
    self->MaybeFinishDrain();
  });
}

std::chrono::steady_clock::duration RpcServer::TcpConnection::IdleTimeout()
    const {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(shared_->options.tcp_idle_timeout));
}

void RpcServer::TcpConnection::MaybeFinishDrain() {
  if (draining_ && in_flight_ == 0 && WriteIdle()) Close();
}

bool RpcServer::TcpConnection::WriteIdle() const {
  absl::MutexLock lock(&write_mu_);
  return !strand_writing_;
}

void RpcServer::TcpConnection::Read() {
  if (closed_ || reading_ || draining_) return;
  // Resumed by OnReply when the count drops from the limit.
  if (in_flight_ >= shared_->options.max_calls_in_flight_per_connection) {
    return;
  }
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(read_buffer_),
      [self = shared_from_this()](const asio::error_code& ec, size_t n) {
        self->reading_ = false;
        self->OnRead(ec, n);
      });
}

void RpcServer::TcpConnection::OnRead(const asio::error_code& ec, size_t n) {
  if (closed_) return;
  if (ec) {
    Close();  // EOF or reset
    return;
  }
  last_activity_ = std::chrono::steady_clock::now();
  records_.clear();
  absl::Status s =
      decoder_.Feed(absl::string_view(read_buffer_.data(), n), &records_);
  // Records completed before a framing error are still served: they
  // were well-formed.
  for (const std::string& record : records_) DispatchRecord(record);
  if (!s.ok()) {
    shared_->Count(&RpcServerStats::tcp_framing_errors);
    LogEvent(LogLevel::kWarn, "rpc_tcp_framing_error",
             {{"peer", context_.peer_address}, {"status", s}});
    Close();
    return;
  }
  Read();
}

void RpcServer::TcpConnection::DispatchRecord(absl::string_view record) {
  ++in_flight_;
  ++shared_->calls_in_flight;
  std::weak_ptr<TcpConnection> weak = weak_from_this();
  shared_->dispatcher.Dispatch(
      context_, record,
      [weak, shared = shared_](std::optional<std::string> reply) {
        if (auto self = weak.lock()) {
          self->OnReply(reply);
        } else {
          --shared->calls_in_flight;  // the connection is gone
        }
      });
}

void RpcServer::TcpConnection::OnReply(
    const std::optional<std::string>& reply) {
  if (reply.has_value()) SendReply(*reply);
  // Counted done after the reply is sent or queued, so a drain that sees
  // no call in flight also sees the bytes still to write.
  const size_t before = in_flight_.fetch_sub(1);
  --shared_->calls_in_flight;
  if (before >= shared_->options.max_calls_in_flight_per_connection ||
      draining_) {
    // Reading paused at the limit, or a drain waits for this answer.
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->Read();
      self->MaybeFinishDrain();
    });
  }
}

void RpcServer::TcpConnection::SendReply(absl::string_view reply) {
  bool start_strand_write = false;
  bool close = false;
  size_t slow_reader_bytes = 0;  // > 0: closed for not reading its replies
  bool queued = false;           // left to the strand's writer
  {
    absl::MutexLock lock(&write_mu_);
    if (write_closed_) return;
    if (strand_writing_ || reply.size() > kMaxFragmentBytes) {
      std::string framed;
      AppendRecord(reply, &framed);
      close = !QueueLocked(std::move(framed), &start_strand_write);
      queued = true;
      if (close) slow_reader_bytes = queued_bytes_;
    } else {
      // Record mark and reply gathered: one syscall, no copy.
      unsigned char mark[4];
      const uint32_t word = kLastFragmentBit | static_cast<uint32_t>(reply.size());
      for (int i = 0; i < 4; ++i) mark[i] = static_cast<unsigned char>(word >> (24 - 8 * i));
      iovec iov[2] = {{mark, sizeof(mark)},
                      {const_cast<char*>(reply.data()), reply.size()}};
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = 2;
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      const size_t total = sizeof(mark) + reply.size();
      if (n == static_cast<ssize_t>(total)) return;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // Reset or shut down by the peer: the strand closes the connection
        // (its read sees the same error).
        write_closed_ = true;
        close = true;
      } else {
        // The socket buffer is full: the strand writes the rest once the
        // client reads.
        std::string framed;
        AppendRecord(reply, &framed);
        framed.erase(0, n > 0 ? static_cast<size_t>(n) : 0);
        close = !QueueLocked(std::move(framed), &start_strand_write);
        queued = true;
        if (close) slow_reader_bytes = queued_bytes_;
      }
    }
  }
  if (queued && !close) {
    shared_->Count(&RpcServerStats::tcp_replies_queued);
  }
  if (slow_reader_bytes > 0) {
    shared_->Count(&RpcServerStats::tcp_slow_reader_closed);
    LogEvent(LogLevel::kWarn, "rpc_tcp_slow_reader_closed",
             {{"peer", context_.peer_address},
              {"queued_bytes", slow_reader_bytes}});
  }
  if (close) {
    CloseFromOutside();
  } else if (start_strand_write) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this()] { self->StrandWrite(); });
  }
}

bool RpcServer::TcpConnection::QueueLocked(std::string framed,
                                           bool* start_strand_write) {
  queued_bytes_ += framed.size();
  if (queued_bytes_ > shared_->options.max_queued_reply_bytes_per_connection) {
    // A client that does not read its replies: disconnect it rather than
    // buffer without bound (the caller counts and logs it).
    write_closed_ = true;
    write_queue_.clear();
    return false;
  }
  write_queue_.push_back(std::move(framed));
  if (!strand_writing_) {
    strand_writing_ = true;
    *start_strand_write = true;
  }
  return true;
}

void RpcServer::TcpConnection::StrandWrite() {
  if (closed_) return;
  {
    absl::MutexLock lock(&write_mu_);
    if (write_closed_) return;
    if (write_queue_.empty()) {
      strand_writing_ = false;  // direct sends resume
    } else {
      strand_batch_.clear();
      while (!write_queue_.empty() &&
             strand_batch_.size() < kTcpRepliesPerGatheredWrite) {
        strand_batch_.push_back(std::move(write_queue_.front()));
        write_queue_.pop_front();
      }
    }
  }
  if (strand_batch_.empty()) {
    MaybeFinishDrain();
    return;
  }
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(strand_batch_.size());
  for (const std::string& s : strand_batch_) buffers.push_back(asio::buffer(s));
  asio::async_write(
      socket_, buffers,
      [self = shared_from_this()](const asio::error_code& ec, size_t n) {
        if (self->closed_) return;
        {
          absl::MutexLock lock(&self->write_mu_);
          self->queued_bytes_ -= std::min(n, self->queued_bytes_);
        }
        self->strand_batch_.clear();
        if (ec) {
          self->Close();
          return;
        }
        self->StrandWrite();
      });
}

void RpcServer::TcpConnection::ArmIdleTimer(
    std::chrono::steady_clock::duration after) {
  idle_timer_.expires_after(after);
  idle_timer_.async_wait([self = shared_from_this()](
                             const asio::error_code& ec) {
    if (ec || self->closed_) return;
    const auto idle = std::chrono::steady_clock::now() - self->last_activity_;
    if (self->in_flight_ == 0 && self->WriteIdle() &&
        idle >= self->IdleTimeout()) {
      self->shared_->Count(&RpcServerStats::tcp_idle_closed);
      self->Close();
      return;
    }
    const auto left = self->IdleTimeout() - idle;
    self->ArmIdleTimer(left > decltype(left)::zero() ? left
                                                     : self->IdleTimeout());
  });
}

void RpcServer::TcpConnection::Close() {
  if (closed_) return;
  closed_ = true;
  {
    // After this no replying thread touches the descriptor (it could be
    // reused once closed).
    absl::MutexLock lock(&write_mu_);
    write_closed_ = true;
    write_queue_.clear();
    queued_bytes_ = 0;
    strand_writing_ = false;
  }
  asio::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  idle_timer_.cancel();
  shared_->OnConnectionClosed(id_);
}

}  // namespace lockwarden::gateway
