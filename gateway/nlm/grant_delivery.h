// GrantDelivery: delivers the server's GrantEvents (blocked locks that were
// granted) to the clients' NLM as GRANTED_MSG or GRANTED, and acknowledges
// each event once its fate is known.
//
//   GrantDelivery grants(GrantDeliveryOptions{.gateway_name = "nfs.example"},
//                        &server_client, &callback_client, pool.context());
//   grants.Start();        // the WatchGrants stream thread
//   ... NlmService passes GRANTED_RES calls to grants.OnGrantedRes ...
//   grants.Stop();
//
// Stream: one dedicated thread reads LockService.WatchGrants(gateway_id)
// with gRPC's synchronous streaming API from ServerClient::Current(). When
// the stream breaks it rotates to the next server (or the leader named in
// the trailers), waits with exponential backoff (bounded) and resumes with
// after_sequence = the highest sequence received below which nothing is
// still being delivered (0 for a fresh process: the server redelivers
// everything unacknowledged). Redelivered events already in hand are
// skipped. A stream silent for `stream_idle_timeout` (the server sends a
// heartbeat every 15 s) is cancelled and reopened. At most
// `deliveries_in_flight_max` events are in hand; at the limit the stream
// thread stops reading until one finishes (back-pressure, nothing dropped).
//
// Delivery of one event (sequence S):
//   - the callback arguments are built from the event: cookie = S as 8
//     bytes big-endian (so a GRANTED_RES names its event), caller_name =
//     the event's callback.caller_name (the gateway name), the lock = fh,
//     oh, svid and range (mapped to the client's NLM version), exclusive;
//   - the client's NLM port: callback.client_port, or GETPORT at the
//     client's rpcbind (NlmCallbackClient), on callback.transport with
//     version callback.nlm_version;
//   - GRANTED_MSG (callback.use_granted_msg): the matching GRANTED_RES
//     (procedure 15, our cookie) decides: GRANTED -> ack DELIVERED,
//     DENIED_GRACE_PERIOD -> retry, anything else -> ack REFUSED;
//     synchronous GRANTED: the reply decides the same way;
//   - no answer, or the call failed: retry every `retry_interval` (10 s,
//     as Linux lockd does) while the event's deadline minus
//     `deadline_margin` has not passed; then ack UNDELIVERABLE. Nothing is
//     ever sent after that point (the client must not believe it holds a
//     lock the server has passed on).
// A GRANTED_RES for a cookie this process is not delivering (another
// process of the same gateway identity sent the GRANTED_MSG, or this one
// restarted) is acknowledged all the same: the ack is keyed by sequence and
// idempotent on the server.
// Acks carry request ids derived from (gateway name, sequence, outcome), so
// a retried ack is deduplicated; a failed ack is retried every
// `ack_retry_interval`, at most `ack_attempts_max` times.
//
// Thread safety: all public methods are thread-safe. The io_context's
// threads must be stopped before the object is destroyed (timers and RPC
// completions refer to it), and Stop() must have been called.
#ifndef LOCKWARDEN_GATEWAY_NLM_GRANT_DELIVERY_H_
#define LOCKWARDEN_GATEWAY_NLM_GRANT_DELIVERY_H_

#ifndef ASIO_STANDALONE
#define ASIO_STANDALONE
#endif
#include <asio.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/client/server_client.h"
#include "gateway/nlm/nlm_callback_client.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::gateway::nlm {

inline constexpr size_t kGrantDeliveriesInFlightMax = 1024;

struct GrantDeliveryOptions {
  std::string gateway_name;   // gateway_id of the stream and the acks
  std::string instance_name;  // shown in AdminService.ListGateways
  size_t deliveries_in_flight_max = kGrantDeliveriesInFlightMax;
  absl::Duration retry_interval = absl::Seconds(10);
  // Clock-skew margin: no callback is sent later than deadline - margin.
  absl::Duration deadline_margin = absl::Seconds(2);
  // Deadline assumed for an event that carries none, counted from when this
  // process received it: set it to the server's --grant-timeout-ms.
  absl::Duration default_grant_timeout = absl::Seconds(60);
  absl::Duration reconnect_backoff_initial = absl::Milliseconds(100);
  absl::Duration reconnect_backoff_max = absl::Seconds(5);
  absl::Duration stream_idle_timeout = absl::Seconds(45);
  absl::Duration ack_retry_interval = absl::Seconds(1);
  int ack_attempts_max = 60;
  // Stop() waits at most this long for acks in flight.
  absl::Duration stop_timeout = absl::Seconds(3);
};

struct GrantDeliveryStats {
  uint64_t events_received = 0;
  uint64_t events_skipped = 0;  // redelivered while already in hand
  uint64_t attempts = 0;        // GRANTED / GRANTED_MSG calls made
  uint64_t retries = 0;         // attempts after an event's first
  uint64_t delivered = 0;
  uint64_t refused = 0;
  uint64_t undeliverable = 0;
  uint64_t acks_failed = 0;     // given up after ack_attempts_max
  uint64_t granted_res_unmatched = 0;
  uint64_t stream_reconnects = 0;
  size_t in_flight = 0;
};

class GrantDelivery {
 public:
  GrantDelivery(GrantDeliveryOptions options, ServerClient* server,
                NlmCallbackClient* callbacks, asio::io_context& io);
  ~GrantDelivery();  // Stop()
  GrantDelivery(const GrantDelivery&) = delete;
  GrantDelivery& operator=(const GrantDelivery&) = delete;

  // Starts the stream thread. Idempotent.
  void Start();
  // Ends the stream, cancels retries, waits (bounded) for acks in flight.
  // Idempotent.
  void Stop();

  // A GRANTED_RES (or its v1/v3 form) from `from` carrying `cookie`.
  void OnGrantedRes(const std::string& cookie, v1::LockStatus status,
                    const std::string& from);

  // Delivers one event (the stream thread calls this; tests may too).
  // Returns false if the event is already in hand.
  bool Deliver(const v1::GrantEvent& event);

  GrantDeliveryStats stats() const;

  static std::string CookieFor(uint64_t sequence);
  static std::optional<uint64_t> SequenceFromCookie(const std::string& cookie);

 private:
  struct Delivery;
  using DeliveryPtr = std::shared_ptr<Delivery>;

  void StreamLoop();
  // The after_sequence to resume from.
  uint64_t ResumePoint() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Attempt(uint64_t sequence);
  void ScheduleRetry(const DeliveryPtr& d);
  // Decides the event's fate (once) and acks it.
  void Conclude(uint64_t sequence, v1::GrantOutcome outcome,
                const std::string& detail);
  void SendAck(uint64_t sequence, v1::GrantOutcome outcome,
               const std::string& detail, int attempt, bool tracked);
  void Forget(uint64_t sequence);

  const GrantDeliveryOptions options_;
  ServerClient* const server_;
  NlmCallbackClient* const callbacks_;
  asio::io_context& io_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Time last_stream_message_ ABSL_GUARDED_BY(mu_);
  uint64_t last_received_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, DeliveryPtr> active_ ABSL_GUARDED_BY(mu_);
  GrantDeliveryStats stats_ ABSL_GUARDED_BY(mu_);
  int acks_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread stream_thread_;
};

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_GRANT_DELIVERY_H_
