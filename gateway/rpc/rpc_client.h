// Asynchronous outgoing ONC RPC calls over UDP or TCP (standalone Asio):
// NLM GRANTED/GRANTED_MSG and *_RES callbacks, SM_NOTIFY, statd -> lockd
// callbacks, and rpcbind (portmapper) GETPORT queries.
//
//   RpcClient client(pool.context());
//   nlm4_testargs args = ...;
//   client.Call(RpcEndpoint{"192.0.2.7", port, TransportKind::kUdp},
//               CallTarget{NLM_PROG, NLM4_VERS, NLMPROC4_GRANTED_MSG},
//               CallCredentials::None(), XdrProc(xdr_nlm4_testargs), &args,
//               [](absl::StatusOr<RpcReply> reply) { ... });
//
// UDP: the call is sent from a fresh connected socket and retransmitted,
// with the same xid, after each interval of `udp_retransmit_intervals`
// (the last interval repeats) until a reply with that xid arrives or
// `timeout` expires (DeadlineExceeded). An ICMP "port unreachable" ends the
// call at once with Unavailable. TCP: connect, send one record, read
// records until the reply with the xid arrives; no connection reuse (these
// calls are rare, and a fresh connection has no stale state).
//
// Procedures without a reply (NLM *_MSG, *_RES, SM_NOTIFY) would only ever
// time out: use Send(), which reports when the datagram was sent (UDP) or
// the record was written (TCP).
//
// The callback is called exactly once, on an io_context thread, never from
// inside Call()/Send(). At most `max_calls_in_flight` calls are
// outstanding; beyond that a call fails with ResourceExhausted.
//
// Thread safety: Call/Send/GetPort are thread-safe. The io_context must
// outlive every call (stop its threads before destroying it).
#ifndef LOCKWARDEN_GATEWAY_RPC_RPC_CLIENT_H_
#define LOCKWARDEN_GATEWAY_RPC_RPC_CLIENT_H_

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <asio.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/record_marking.h"
#include "gateway/rpc/rpc_message.h"

namespace lockwarden::gateway {

struct RpcEndpoint {
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  TransportKind transport = TransportKind::kUdp;
};

// Sees every outgoing call once, when it has finished (gateway/metrics
// counts them). Runs on an io_context thread; must not block.
class OutgoingCallObserver {
 public:
  virtual ~OutgoingCallObserver() = default;
  // `call_message`: the encoded CALL (header and arguments); `status`: OK
  // when the reply arrived (Call) or the message was sent (Send), else why
  // not (an RPC-level error in the reply is still OK here).
  virtual void OnOutgoingDone(absl::string_view call_message,
                              const absl::Status& status) = 0;
};

struct RpcClientOptions {
  std::vector<absl::Duration> udp_retransmit_intervals = {
      absl::Milliseconds(500), absl::Seconds(1), absl::Seconds(2),
      absl::Seconds(4)};
  absl::Duration timeout = absl::Seconds(10);
  size_t max_calls_in_flight = 256;
  size_t max_reply_bytes = kMaxRecordBytes;
  OutgoingCallObserver* observer = nullptr;  // optional, not owned
  // Send every call from a port in the reserved range (reserved_port.h): a
  // kernel lockd ignores GRANTED, *_RES and statd callbacks from
  // unprivileged ports. Without the privilege to bind one (no root, no
  // CAP_NET_BIND_SERVICE) the call goes out from an ephemeral port: counted
  // in privileged_port_fallbacks() and logged once.
  bool privileged_source_port = false;
};

// A received reply whose xid matched the call.
struct RpcReply {
  ReplyHeader header;
  std::string message;

  // OK and the decoded results (into a zero-initialised `*result` the
  // caller later frees with XdrFree), or the RPC error as a Status.
  absl::Status DecodeResults(xdrproc_t decoder, void* result) const;
};

using RpcReplyCallback = std::function<void(absl::StatusOr<RpcReply>)>;
using RpcSentCallback = std::function<void(absl::Status)>;

class RpcClient {
 public:
  explicit RpcClient(asio::io_context& io, RpcClientOptions options = {});
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // `args` is encoded before Call returns; it need not outlive the call.
  void Call(const RpcEndpoint& to, const CallTarget& target,
            const CallCredentials& creds, xdrproc_t args_encoder,
            const void* args, RpcReplyCallback done);

  // Sends a call that has no reply (one datagram, or one record).
  void Send(const RpcEndpoint& to, const CallTarget& target,
            const CallCredentials& creds, xdrproc_t args_encoder,
            const void* args, RpcSentCallback done);

  // PMAP v2 GETPORT (program 100000, procedure 3) at address:rpcbind_port
  // over UDP. NotFound if the program/version/protocol is not registered.
  void GetPort(const std::string& address, uint32_t prog, uint32_t vers,
               TransportKind transport,
               std::function<void(absl::StatusOr<uint16_t>)> done,
               uint16_t rpcbind_port = 111);

  size_t calls_in_flight() const { return in_flight_->load(); }
  // Calls sent from an ephemeral port because binding a reserved one was
  // not permitted (see RpcClientOptions::privileged_source_port).
  uint64_t privileged_port_fallbacks() const { return fallbacks_->load(); }

 private:
  class UdpCall;
  class TcpCall;

  uint32_t NextXid() { return next_xid_.fetch_add(1); }
  // Reserves an in-flight slot; false at the limit.
  bool Reserve();
  // Shared body of Call and Send: exactly one of reply_cb/sent_cb is set,
  // and it is the callback the started UdpCall/TcpCall reports to.
  void StartCall(const RpcEndpoint& to, const CallTarget& target,
                 const CallCredentials& creds, xdrproc_t args_encoder,
                 const void* args, RpcReplyCallback reply_cb,
                 RpcSentCallback sent_cb);

  asio::io_context& io_;
  const RpcClientOptions options_;
  std::atomic<uint32_t> next_xid_;
  // Shared with the calls, which may finish after the client is destroyed.
  std::shared_ptr<std::atomic<size_t>> in_flight_;
  std::shared_ptr<std::atomic<uint64_t>> fallbacks_;
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_RPC_CLIENT_H_
