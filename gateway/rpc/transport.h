// Asynchronous ONC RPC server transport on UDP and TCP (standalone Asio).
//
//   IoThreadPool pool(2);
//   RpcServer server(pool.context(), dispatcher,
//                    RpcServerOptions{.bind_address = "::", .port = 4045});
//   LW_RETURN_IF_ERROR(server.Start());   // binds UDP and TCP
//   ... server.port() ...
//   server.Stop();
//   pool.Stop();
//
// UDP: one datagram is one RPC message; the reply goes back to the source
// address and port from the same socket. At most
// `max_udp_calls_in_flight` calls execute at once; datagrams beyond that
// are dropped (the client retransmits) and counted.
//
// TCP: each connection has a record-marking decoder (record_marking.h),
// many calls in flight (at most `max_calls_in_flight_per_connection`;
// reading pauses at the limit), replies written in completion order by
// the thread that completes the call (a full socket buffer hands them to
// the connection's strand; see transport_internal.h), an idle timeout (a
// connection with calls in flight is never idle), a bound on queued reply
// bytes (a client that does not read its replies is disconnected), and a
// limit on connections (connections past it are accepted and closed at
// once).
//
// UDP and TCP share one port number (what rpcbind registration expects):
// UDP binds first, TCP then binds the port UDP got.
//
// Addresses: a dual-stack socket ("::") reports IPv4 clients as IPv4-mapped
// IPv6 addresses (::ffff:a.b.c.d). NormalizeAddress turns those back into
// IPv4, so that a client has one identity whichever socket it used (the DRC
// key, NSM source checks and logs all use the normalised form).
//
// Thread safety: RpcServer's public methods are thread-safe (Drain
// blocks). Handlers run on the pool's threads; the reads of one socket or
// connection are serialised on its strand, replies are sent by the thread
// that answers. Stop() closes everything; replies of calls still in flight
// are discarded (their RpcCall objects stay valid and may still be
// answered; the answer goes nowhere). The Dispatcher must outlive the
// io_context's threads: stop the IoThreadPool before destroying it.
#ifndef LOCKWARDEN_GATEWAY_RPC_TRANSPORT_H_
#define LOCKWARDEN_GATEWAY_RPC_TRANSPORT_H_

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <asio.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/rpc/address.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/record_marking.h"

namespace lockwarden::gateway {

struct RpcServerOptions {
  // "0.0.0.0" (IPv4 only), "::" (dual stack), "127.0.0.1", ...
  std::string bind_address = "::";
  uint16_t port = 0;  // 0 = ephemeral; see port() after Start()
  bool enable_udp = true;
  bool enable_tcp = true;
  size_t max_udp_calls_in_flight = 1024;
  size_t max_tcp_connections = 256;
  size_t max_calls_in_flight_per_connection = 64;
  size_t max_queued_reply_bytes_per_connection = 1024 * 1024;
  size_t max_record_bytes = kMaxRecordBytes;
  absl::Duration tcp_idle_timeout = absl::Minutes(5);
};

struct RpcServerStats {
  uint64_t udp_datagrams = 0;
  uint64_t udp_dropped_overload = 0;
  uint64_t tcp_accepted = 0;
  uint64_t tcp_rejected_limit = 0;
  uint64_t tcp_framing_errors = 0;
  uint64_t tcp_idle_closed = 0;
  uint64_t tcp_slow_reader_closed = 0;
  // TCP replies that found the socket buffer full (or replies queued ahead)
  // and were written by the connection's strand.
  uint64_t tcp_replies_queued = 0;
  size_t tcp_connections = 0;
};

class RpcServer {
 public:
  RpcServer(asio::io_context& io, Dispatcher& dispatcher,
            RpcServerOptions options);
  ~RpcServer();  // Stop()
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds and starts serving. Unavailable (with the OS error) if a socket
  // cannot be bound; FailedPrecondition if started twice.
  absl::Status Start();
  // The bound port (UDP and TCP share it); 0 before Start.
  uint16_t port() const { return port_.load(); }
  // Closes every socket at once; replies of calls in flight are discarded.
  void Stop();
  // Graceful stop: stops accepting connections and reading new calls, lets
  // the calls in flight finish and their replies go out for at most
  // `grace`, then Stop(). Blocks (polls every few milliseconds): never call
  // it from an io_context thread. Returns the number of calls still in
  // flight when it gave up (0 = clean).
  size_t Drain(absl::Duration grace);
  // Calls dispatched and not yet answered, over UDP and TCP.
  size_t calls_in_flight() const;

  RpcServerStats stats() const;

 private:
  // State shared with the sockets and connections, which may outlive the
  // RpcServer object by the time their last handler runs.
  struct Shared;
  class UdpEndpoint;
  class TcpAcceptor;
  class TcpConnection;

  absl::Status BindAll(const asio::ip::address& address);

  std::shared_ptr<Shared> shared_;
  std::atomic<uint16_t> port_{0};
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_TRANSPORT_H_
