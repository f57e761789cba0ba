// Private to the transport (transport.cc, transport_tcp.cc): the state an
// RpcServer shares with its sockets, and the TCP connection.
//
// TCP replies are written by the thread that completes the call (usually a
// gRPC thread), not by the connection's strand: when nothing is queued
// ahead of a reply, that thread sends it with one non-blocking sendmsg(2)
// (record mark + reply gathered, no copy), so a reply costs no hop to an
// I/O thread and no wake-up. Only a full socket buffer (a client slow to
// read) queues bytes; the strand then writes the queue, gathered, with
// asynchronous writes until it is empty, and direct sends wait behind it so
// the byte stream keeps reply order.
//
// Thread safety: Shared's fields are guarded as annotated. A TcpConnection's
// reading, framing, dispatch, idle timer and Close run on its strand (the
// socket's executor); OnReply may run on any thread. The write state is
// guarded by write_mu_, which a replying thread holds across one
// non-blocking send (it never waits for the peer) and Close holds while it
// marks the descriptor closed, so no send can reach a reused descriptor.
#ifndef LOCKWARDEN_GATEWAY_RPC_TRANSPORT_INTERNAL_H_
#define LOCKWARDEN_GATEWAY_RPC_TRANSPORT_INTERNAL_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "gateway/rpc/transport.h"

namespace lockwarden::gateway {

inline constexpr size_t kTcpReadChunkBytes = 16 * 1024;
// Queued replies gathered into one asynchronous write (bounds the iovec).
inline constexpr size_t kTcpRepliesPerGatheredWrite = 64;

struct RpcServer::Shared {
  Shared(asio::io_context& io_in, Dispatcher& dispatcher_in,
         RpcServerOptions options_in)
      : io(io_in), dispatcher(dispatcher_in), options(std::move(options_in)) {}

  void OnConnectionClosed(uint64_t id) {
    absl::MutexLock lock(&mu);
    connections.erase(id);
  }
  void Count(uint64_t RpcServerStats::*counter) {
    absl::MutexLock lock(&mu);
    ++(stats.*counter);
  }

  asio::io_context& io;
  Dispatcher& dispatcher;
  const RpcServerOptions options;
  // Calls dispatched and not yet answered (UDP + TCP), for Drain.
  std::atomic<size_t> calls_in_flight{0};

  absl::Mutex mu;
  bool started ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;
  bool draining ABSL_GUARDED_BY(mu) = false;
  RpcServerStats stats ABSL_GUARDED_BY(mu);
  uint64_t next_connection_id ABSL_GUARDED_BY(mu) = 1;
  absl::flat_hash_map<uint64_t, std::weak_ptr<TcpConnection>> connections
      ABSL_GUARDED_BY(mu);
  std::shared_ptr<UdpEndpoint> udp ABSL_GUARDED_BY(mu);
  std::shared_ptr<TcpAcceptor> acceptor ABSL_GUARDED_BY(mu);
};

class RpcServer::TcpConnection
    : public std::enable_shared_from_this<TcpConnection> {
 public:
  TcpConnection(std::shared_ptr<Shared> shared, uint64_t id,
                asio::ip::tcp::socket socket);

  void Start();
  void CloseFromOutside();
  // Reads no new calls; closes once every call in flight is answered and
  // written.
  void BeginDrain();

 private:
  std::chrono::steady_clock::duration IdleTimeout() const;
  void Read();
  void OnRead(const asio::error_code& ec, size_t n);
  void DispatchRecord(absl::string_view record);
  // Any thread: one call's answer (nullopt: nothing to send).
  void OnReply(const std::optional<std::string>& reply);
  // Any thread: sends `reply` at once or queues it (see the file comment).
  void SendReply(absl::string_view reply) ABSL_LOCKS_EXCLUDED(write_mu_);
  // Queues the unsent tail of a record, setting *start_strand_write when
  // the strand must start writing. False past the byte limit: nothing more
  // will be sent and the caller closes the connection.
  bool QueueLocked(std::string framed, bool* start_strand_write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Strand: writes the queue, gathered, until it is empty.
  void StrandWrite();
  bool WriteIdle() const ABSL_LOCKS_EXCLUDED(write_mu_);
  void MaybeFinishDrain();
  void ArmIdleTimer(std::chrono::steady_clock::duration after);
  void Close();

  const std::shared_ptr<Shared> shared_;
  const uint64_t id_;
  asio::ip::tcp::socket socket_;  // its executor is this connection's strand
  const int fd_;                  // socket_'s descriptor; see write_mu_
  asio::steady_timer idle_timer_;
  CallContext context_;

  // Strand only.
  RecordDecoder decoder_;
  std::array<char, kTcpReadChunkBytes> read_buffer_;
  std::vector<std::string> records_;       // reused by OnRead
  std::vector<std::string> strand_batch_;  // the asynchronous write's bytes
  bool reading_ = false;
  bool closed_ = false;
  std::chrono::steady_clock::time_point last_activity_;

  // Calls dispatched and not yet answered; reading pauses at the limit.
  std::atomic<size_t> in_flight_{0};
  std::atomic<bool> draining_{false};

  mutable absl::Mutex write_mu_;
  // Record-marked bytes not yet written, oldest first; non-empty only while
  // strand_writing_.
  std::deque<std::string> write_queue_ ABSL_GUARDED_BY(write_mu_);
  // Bytes queued or in the strand's write (bounded by
  // max_queued_reply_bytes_per_connection).
  size_t queued_bytes_ ABSL_GUARDED_BY(write_mu_) = 0;
  // The strand owns writing: replies queue behind it.
  bool strand_writing_ ABSL_GUARDED_BY(write_mu_) = false;
  // No more sends: the descriptor is (being) closed.
  bool write_closed_ ABSL_GUARDED_BY(write_mu_) = false;
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_TRANSPORT_INTERNAL_H_
