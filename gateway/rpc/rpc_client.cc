#include "gateway/rpc/rpc_client.h"

#include <rpc/pmap_prot.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "gateway/rpc/address.h"
#include "gateway/rpc/reserved_port.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {
namespace {

using asio::ip::tcp;
using asio::ip::udp;

constexpr size_t kMaxDatagramBytes = 65507;

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      absl::ToChronoNanoseconds(d));
}

uint32_t RandomXid() {
  std::random_device rd;
  return (uint32_t{rd()} << 1) ^ uint32_t{rd()};
}

}  // namespace

absl::Status RpcReply::DecodeResults(xdrproc_t decoder, void* result) const {
  absl::Status s = ReplyStatus(header);
  if (!s.ok()) return s;
  return XdrDecode(decoder, absl::string_view(message).substr(
                                header.results_offset),
                   result);
}

// State common to UDP and TCP calls. Every member is used on the strand.
class CallState {
 public:
  CallState(asio::io_context& io, std::shared_ptr<std::atomic<size_t>> slots,
            uint32_t xid, std::string message, RpcReplyCallback reply_cb,
            RpcSentCallback sent_cb, OutgoingCallObserver* observer,
            std::string observed_message,
            std::shared_ptr<std::atomic<uint64_t>> fallbacks)
      : strand_(asio::make_strand(io)),
        deadline_(strand_),
        slots_(std::move(slots)),
        xid_(xid),
        message_(std::move(message)),
        observer_(observer),
        observed_message_(std::move(observed_message)),
        fallbacks_(std::move(fallbacks)),
        reply_cb_(std::move(reply_cb)),
        sent_cb_(std::move(sent_cb)) {}
  virtual ~CallState() = default;

 protected:
  bool expects_reply() const { return static_cast<bool>(reply_cb_); }

  // Exactly once: releases the slot and runs the callback.
  void Finish(absl::StatusOr<RpcReply> result) {
    if (done_) return;
    done_ = true;
    deadline_.cancel();
    CloseSocket();
    slots_->fetch_sub(1);
    if (observer_ != nullptr) {
      observer_->OnOutgoingDone(observed_message_, result.status());
    }
    if (reply_cb_) {
      reply_cb_(std::move(result));
    } else {
      sent_cb_(result.status());
    }
  }

  // True if `message` is the reply to this call.
  bool MatchReply(absl::string_view message) {
    std::optional<MessageKind> kind = PeekMessage(message);
    if (!kind.has_value() || kind->is_call || kind->xid != xid_) return false;
    absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(message);
    if (!h.ok()) return false;
    Finish(RpcReply{*h, std::string(message)});
    return true;
  }

  void ArmDeadline(absl::Duration timeout, std::shared_ptr<CallState> self) {
    deadline_.expires_after(ToChrono(timeout));
    deadline_.async_wait([self, timeout](const asio::error_code& ec) {
      if (ec) return;
      self->Finish(absl::DeadlineExceededError(absl::StrCat(
          "no RPC reply within ", absl::FormatDuration(timeout))));
    });
  }

  virtual void CloseSocket() = 0;

  // Binds the open socket `fd` to a reserved source port (see
  // RpcClientOptions::privileged_source_port). OK also when the privilege
  // is missing: the call then leaves from an ephemeral port.
  absl::Status BindSourcePort(int fd, int family) {
    absl::StatusOr<uint16_t> port = BindReservedPort(fd, family);
    if (port.ok()) return absl::OkStatus();
    if (absl::IsPermissionDenied(port.status())) {
      if (fallbacks_->fetch_add(1) == 0) {
        LogEvent(LogLevel::kWarn, "rpc_client_privileged_port_unavailable",
                 {{"error", port.status()},
                  {"effect",
                   "callbacks leave from ephemeral ports; a kernel lockd "
                   "ignores them"}});
      }
      return absl::OkStatus();
    }
    return absl::UnavailableError(
        absl::StrCat("no reserved source port: ", port.status().message()));
  }

  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer deadline_;
  std::shared_ptr<std::atomic<size_t>> slots_;
  const uint32_t xid_;
  const std::string message_;
  bool done_ = false;

 private:
  OutgoingCallObserver* const observer_;
  // The CALL without record marking, kept only for the observer.
  const std::string observed_message_;
  const std::shared_ptr<std::atomic<uint64_t>> fallbacks_;
  RpcReplyCallback reply_cb_;
  RpcSentCallback sent_cb_;
};

class RpcClient::UdpCall : public CallState,
                           public std::enable_shared_from_this<UdpCall> {
 public:
  UdpCall(asio::io_context& io, const RpcClientOptions& options,
          std::shared_ptr<std::atomic<size_t>> slots, udp::endpoint to,
          uint32_t xid, std::string message, RpcReplyCallback reply_cb,
          RpcSentCallback sent_cb, std::string observed,
          std::shared_ptr<std::atomic<uint64_t>> fallbacks)
      : CallState(io, std::move(slots), xid, std::move(message),
                  std::move(reply_cb), std::move(sent_cb), options.observer,
                  std::move(observed), std::move(fallbacks)),
        options_(options),
        to_(to),
        socket_(strand_),
        retransmit_(strand_),
        buffer_(kMaxDatagramBytes + 1) {}

  void Start() {
    asio::post(strand_, [self = shared_from_this()] { self->Begin(); });
  }

 private:
  void Begin() {
    asio::error_code ec;
    socket_.open(to_.protocol(), ec);
    if (!ec && options_.privileged_source_port) {
      absl::Status bound = BindSourcePort(socket_.native_handle(),
                                          to_.protocol().family());
      if (!bound.ok()) {
        Finish(bound);
        return;
      }
    }
    // A connected UDP socket only sees datagrams from the peer and learns
    // of ICMP port-unreachable errors.
    if (!ec) socket_.connect(to_, ec);
    if (ec) {
      Finish(absl::UnavailableError(
          absl::StrCat("UDP to ", to_.address().to_string(), ":", to_.port(),
                       ": ", ec.message())));
      return;
    }
    if (expects_reply()) {
      ArmDeadline(options_.timeout, shared_from_this());
      Receive();
    }
    Transmit();
  }

  void Transmit() {
    socket_.async_send(
        asio::buffer(message_),
        [self = shared_from_this()](const asio::error_code& ec, size_t) {
          if (self->done_) return;
          if (!self->expects_reply()) {
            self->Finish(ec ? absl::StatusOr<RpcReply>(absl::UnavailableError(
                                  ec.message()))
                            : absl::StatusOr<RpcReply>(RpcReply{}));
            return;
          }
          self->ScheduleRetransmit();
        });
  }

  void ScheduleRetransmit() {
    const auto& intervals = options_.udp_retransmit_intervals;
    if (intervals.empty()) return;
    const absl::Duration wait =
        intervals[std::min(sent_, intervals.size() - 1)];
    ++sent_;
    retransmit_.expires_after(ToChrono(wait));
    retransmit_.async_wait(
        [self = shared_from_this()](const asio::error_code& ec) {
          if (ec || self->done_) return;
          self->Transmit();
        });
  }

  void Receive() {
    socket_.async_receive(
        asio::buffer(buffer_),
        [self = shared_from_this()](const asio::error_code& ec, size_t n) {
          if (self->done_) return;
          if (ec == asio::error::connection_refused) {
            self->Finish(absl::UnavailableError(absl::StrCat(
                "nothing listens on UDP ", self->to_.address().to_string(),
                ":", self->to_.port(), " (ICMP port unreachable)")));
            return;
          }
          if (ec) {
            self->Finish(absl::UnavailableError(ec.message()));
            return;
          }
          if (n <= kMaxDatagramBytes &&
              self->MatchReply(absl::string_view(self->buffer_.data(), n))) {
            return;
          }
          self->Receive();  // a stale reply to an earlier transmission
        });
  }

  void CloseSocket() override {
    asio::error_code ec;
    retransmit_.cancel();
    socket_.close(ec);
  }

  const RpcClientOptions options_;  // a copy: the client may go first
  const udp::endpoint to_;
  udp::socket socket_;
  asio::steady_timer retransmit_;
  std::vector<char> buffer_;
  size_t sent_ = 0;
};

class RpcClient::TcpCall : public CallState,
                           public std::enable_shared_from_this<TcpCall> {
 public:
  TcpCall(asio::io_context& io, const RpcClientOptions& options,
          std::shared_ptr<std::atomic<size_t>> slots, tcp::endpoint to,
          uint32_t xid, std::string message, RpcReplyCallback reply_cb,
          RpcSentCallback sent_cb, std::string observed,
          std::shared_ptr<std::atomic<uint64_t>> fallbacks)
      : CallState(io, std::move(slots), xid, EncodeRecord(message),
                  std::move(reply_cb), std::move(sent_cb), options.observer,
                  std::move(observed), std::move(fallbacks)),
        options_(options),
        to_(to),
        socket_(strand_),
        decoder_(options.max_reply_bytes) {}

  void Start() {
    asio::post(strand_, [self = shared_from_this()] { self->Begin(); });
  }

 private:
  void Begin() {
    ArmDeadline(options_.timeout, shared_from_this());
    if (options_.privileged_source_port) {
      asio::error_code ec;
      socket_.open(to_.protocol(), ec);
      // The port of a recent connection may sit in TIME_WAIT; reusing it
      // towards another peer is fine.
      if (!ec) socket_.set_option(tcp::socket::reuse_address(true), ec);
      if (ec) {
        Finish(absl::UnavailableError(
            absl::StrCat("TCP socket: ", ec.message())));
        return;
      }
      absl::Status bound = BindSourcePort(socket_.native_handle(),
                                          to_.protocol().family());
      if (!bound.ok()) {
        Finish(bound);
        return;
      }
    }
    socket_.async_connect(
        to_, [self = shared_from_this()](const asio::error_code& ec) {
          if (self->done_) return;
          if (ec) {
            self->Finish(absl::UnavailableError(absl::StrCat(
                "TCP connect to ", self->to_.address().to_string(), ":",
                self->to_.port(), ": ", ec.message())));
            return;
          }
          self->Write();
        });
  }

  void Write() {
    asio::async_write(
        socket_, asio::buffer(message_),
        [self = shared_from_this()](const asio::error_code& ec, size_t) {
          if (self->done_) return;
          if (ec) {
            self->Finish(absl::UnavailableError(ec.message()));
          } else if (!self->expects_reply()) {
            self->Finish(RpcReply{});
          } else {
            self->Read();
          }
        });
  }

  void Read() {
    socket_.async_read_some(
        asio::buffer(buffer_),
        [self = shared_from_this()](const asio::error_code& ec, size_t n) {
          if (self->done_) return;
          if (ec) {
            self->Finish(absl::UnavailableError(
                absl::StrCat("connection closed before the reply: ",
                             ec.message())));
            return;
          }
          std::vector<std::string> records;
          absl::Status s = self->decoder_.Feed(
              absl::string_view(self->buffer_.data(), n), &records);
          for (const std::string& r : records) {
            if (self->MatchReply(r)) return;
          }
          if (!s.ok()) {
            self->Finish(s);
            return;
          }
          self->Read();
        });
  }

  void CloseSocket() override {
    asio::error_code ec;
    socket_.close(ec);
  }

  const RpcClientOptions options_;
  const tcp::endpoint to_;
  tcp::socket socket_;
  RecordDecoder decoder_;
  std::array<char, 8192> buffer_;
};

RpcClient::RpcClient(asio::io_context& io, RpcClientOptions options)
    : io_(io),
      options_(std::move(options)),
      next_xid_(RandomXid()),
      in_flight_(std::make_shared<std::atomic<size_t>>(0)),
      fallbacks_(std::make_shared<std::atomic<uint64_t>>(0)) {}

bool RpcClient::Reserve() {
  size_t current = in_flight_->load();
  while (current < options_.max_calls_in_flight) {
    if (in_flight_->compare_exchange_weak(current, current + 1)) return true;
  }
  return false;
}

namespace {

// Runs `fail` with `status` on the io_context (never inline).
template <typename Callback>
void PostFailure(asio::io_context& io, Callback cb, absl::Status status) {
  asio::post(io, [cb = std::move(cb), status = std::move(status)] {
    cb(status);
  });
}

}  // namespace

void RpcClient::Call(const RpcEndpoint& to, const CallTarget& target,
                     const CallCredentials& creds, xdrproc_t args_encoder,
                     const void* args, RpcReplyCallback done) {
  StartCall(to, target, creds, args_encoder, args, std::move(done), nullptr);
}

void RpcClient::Send(const RpcEndpoint& to, const CallTarget& target,
                     const CallCredentials& creds, xdrproc_t args_encoder,
                     const void* args, RpcSentCallback done) {
  StartCall(to, target, creds, args_encoder, args, nullptr, std::move(done));
}

void RpcClient::StartCall(const RpcEndpoint& to, const CallTarget& target,
                          const CallCredentials& creds, xdrproc_t args_encoder,
                          const void* args, RpcReplyCallback reply_cb,
                          RpcSentCallback sent_cb) {
  // A failure before the call starts goes to whichever callback is set, on
  // the io_context (never inline), as from a started call.
  auto fail = [&](absl::Status status) {
    if (reply_cb != nullptr) {
      PostFailure(io_, std::move(reply_cb), std::move(status));
    } else {
      PostFailure(io_, std::move(sent_cb), std::move(status));
    }
  };
  absl::StatusOr<asio::ip::address> address = ParseAddress(to.address);
  const uint32_t xid = NextXid();
  absl::StatusOr<std::string> message =
      EncodeCall(xid, target, creds, args_encoder, args);
  if (!address.ok() || !message.ok()) {
    fail(!address.ok() ? address.status() : message.status());
    return;
  }
  if (!Reserve()) {
    fail(absl::ResourceExhaustedError(
        absl::StrCat("more than ", options_.max_calls_in_flight,
                     " outgoing RPC calls in flight")));
    return;
  }
  // Only the observer needs the CALL once more (without record marking).
  std::string observed = options_.observer != nullptr ? *message : "";
  if (to.transport == TransportKind::kUdp) {
    std::make_shared<UdpCall>(io_, options_, in_flight_,
                              udp::endpoint(*address, to.port), xid,
                              *std::move(message), std::move(reply_cb),
                              std::move(sent_cb), std::move(observed),
                              fallbacks_)
        ->Start();
  } else {
    std::make_shared<TcpCall>(io_, options_, in_flight_,
                              tcp::endpoint(*address, to.port), xid,
                              *std::move(message), std::move(reply_cb),
                              std::move(sent_cb), std::move(observed),
                              fallbacks_)
        ->Start();
  }
}

void RpcClient::GetPort(const std::string& address, uint32_t prog,
                        uint32_t vers, TransportKind transport,
                        std::function<void(absl::StatusOr<uint16_t>)> done,
                        uint16_t rpcbind_port) {
  pmap query{};
  query.pm_prog = prog;
  query.pm_vers = vers;
  query.pm_prot = transport == TransportKind::kUdp ? IPPROTO_UDP : IPPROTO_TCP;
  Call(RpcEndpoint{address, rpcbind_port, TransportKind::kUdp},
       CallTarget{PMAPPROG, PMAPVERS, PMAPPROC_GETPORT},
       CallCredentials::None(), XdrProc(xdr_pmap), &query,
       [done = std::move(done), prog, vers](absl::StatusOr<RpcReply> reply) {
         if (!reply.ok()) {
           done(absl::Status(reply.status().code(),
                             absl::StrCat("rpcbind GETPORT: ",
                                          reply.status().message())));
           return;
         }
         u_int port = 0;
         absl::Status s = reply->DecodeResults(XdrProc(xdr_u_int), &port);
         if (!s.ok()) {
           done(s);
         } else if (port == 0 || port > 65535) {
           done(absl::NotFoundError(absl::StrCat(
               "program ", prog, " version ", vers,
               " is not registered with rpcbind")));
         } else {
           done(static_cast<uint16_t>(port));
         }
       });
}

}  // namespace lockwarden::gateway
