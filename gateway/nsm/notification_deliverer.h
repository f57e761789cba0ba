// NotificationDeliverer: carries out the server's NSM notification events
// (MonitorService.WatchNotifications) and acknowledges them.
//
//   SmNotify{target_host, target_addresses, announced_name, state}
//     -> SM_NOTIFY(mon_name = announced_name, state) to the target's statd
//        (100024/1/6, port from the target's rpcbind, UDP). Address, by
//        attempt number, rotating over: each of target_addresses, the
//        ClientAddressBook's address for target_host, then target_host
//        resolved (an IP literal resolves to itself).
//   StatusCallback{mon_name, state, my_id, priv}
//     -> my_id.my_prog/my_vers/my_proc at my_id.my_name (resolved; port from
//        its rpcbind, UDP) with {mon_name, state, priv[16]} (nlm_sm_status
//        for NLM, program 100021; the same XDR shape for other programs, as
//        statd does). Registrations the gateway's own NLM holds (my_name ==
//        gateway_id, my_prog == 100021) are acked DELIVERED without a call:
//        the server already released that client's locks.
//
// An attempt is delivered when the call gets an accepted RPC reply (the
// procedures have no result data); it then acks DELIVERED. A failed
// attempt acks FAILED(attempts, last_error) (the per-client status the
// server shows) and is retried after the next delay of the event kind's
// retry schedule; a failure after the last delay acks GAVE_UP. The attempt
// count starts from the server's NotificationEvent.attempts, so the
// schedule continues across gateway restarts and failovers.
//
// Limits: `max_in_flight` attempts run at once, the rest wait in FIFO
// order; waiting for a retry takes no slot. At most `max_tracked` events
// are known at once: Offer refuses more (kFull), and the event stays
// pending on the server. Whenever an event was refused or forgotten (its
// final ack could not be recorded) and the table has drained below half,
// `on_refetch` is called so the stream reopens from sequence 0 and the
// server sends those events again (events still tracked are recognised by
// sequence and not duplicated).
//
// Thread safety: Offer/Stop/stats are thread-safe. Work runs on RpcClient,
// gRPC, resolver and scheduler threads; nothing blocks, no lock is held
// across a call. Every asynchronous step is counted in `ops`, so the owner
// can wait for them after Stop.
#ifndef LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_DELIVERER_H_
#define LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_DELIVERER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/client/server_client.h"
#include "gateway/nsm/client_address_book.h"
#include "gateway/nsm/delay_scheduler.h"
#include "gateway/nsm/host_resolver.h"
#include "gateway/nsm/outstanding_ops.h"
#include "gateway/rpc/rpc_client.h"
#include "lockwarden/v1/monitor_service.pb.h"

namespace lockwarden::gateway::nsm {

inline constexpr uint32_t kNsmProgram = 100024;
inline constexpr uint32_t kNsmVersion = 1;
inline constexpr uint32_t kNsmNotifyProc = 6;
inline constexpr uint32_t kNlmProgram = 100021;

struct DelivererOptions {
  std::string gateway_id;
  std::vector<absl::Duration> notify_retry_schedule;
  std::vector<absl::Duration> callback_retry_schedule;
  size_t max_in_flight = 64;
  size_t max_tracked = 10000;
  uint16_t rpcbind_port = 111;
  absl::Duration resolve_timeout = absl::Seconds(5);
  int max_ack_attempts = 5;
  absl::Duration ack_retry_delay = absl::Seconds(1);
};

struct DelivererStats {
  uint64_t delivered = 0;        // acked DELIVERED after a reply
  uint64_t self_acked = 0;       // own-NLM callbacks acked without sending
  uint64_t failed_attempts = 0;  // attempts that failed
  uint64_t gave_up = 0;          // acked GAVE_UP
  uint64_t refused_full = 0;     // Offer answered kFull
  uint64_t forgotten = 0;        // final ack not recorded; left to the server
  // The SM_NOTIFY share of delivered / failed_attempts / gave_up (the rest
  // are statd -> lockd status callbacks).
  uint64_t notify_delivered = 0;
  uint64_t notify_failed_attempts = 0;
  uint64_t notify_gave_up = 0;
};

class NotificationDeliverer {
 public:
  enum class OfferResult { kAccepted, kDuplicate, kFull, kStopped };

  // Not owned; all must outlive the deliverer and its outstanding `ops`.
  NotificationDeliverer(DelivererOptions options, ServerClient* server,
                        RpcClient* rpc, const ClientAddressBook* addresses,
                        HostResolver* resolver, DelayScheduler* scheduler,
                        OutstandingOps* ops);
  NotificationDeliverer(const NotificationDeliverer&) = delete;
  NotificationDeliverer& operator=(const NotificationDeliverer&) = delete;

  // Set before the first Offer. Called on any thread; must not block.
  void set_on_refetch(std::function<void()> on_refetch) {
    on_refetch_ = std::move(on_refetch);
  }

  // Takes one event from the stream.
  OfferResult Offer(const v1::NotificationEvent& event);

  // Starts nothing new and forgets every event (they stay pending on the
  // server). Steps already running finish through `ops`. Idempotent.
  void Stop();

  size_t tracked() const;
  DelivererStats stats() const;

 private:
  // One event being delivered. Its fields are used by one step of its
  // chain at a time (attempt, then ack, then maybe a retry timer).
  struct Delivery {
    v1::NotificationEvent event;
    uint32_t attempts = 0;  // failed attempts so far
    std::string last_error;
    int ack_attempts = 0;
    bool self = false;  // own-NLM callback, acked without sending
  };
  using DeliveryPtr = std::shared_ptr<Delivery>;
  using Done = std::function<void(absl::Status)>;

  // Starts due deliveries while slots are free.
  void Pump();
  void Attempt(const DeliveryPtr& d);
  void AttemptSmNotify(const DeliveryPtr& d, Done done);
  void AttemptCallback(const DeliveryPtr& d, Done done);
  // What one attempt sends: the target procedure and its arguments.
  struct Outgoing {
    enum class Shape { kStatChge, kNlmSmStatus, kSmStatus };
    Shape shape = Shape::kStatChge;
    CallTarget target;
    std::string mon_name;
    int32_t state = 0;
    std::string priv;  // exactly 16 bytes for the status shapes
  };
  // Picks the address for attempt number `attempt` among `known` and
  // `host` resolved, then GETPORT, then the call.
  void CallHost(const std::string& host, std::vector<std::string> known,
                uint32_t attempt, Outgoing out, Done done);
  void CallAddress(const std::string& address, Outgoing out, Done done);
  void AttemptDone(const DeliveryPtr& d, absl::Status status);
  // Reports `outcome`; final outcomes remove the event when recorded.
  void Ack(const DeliveryPtr& d, v1::NotificationOutcome outcome);
  void Requeue(uint64_t sequence);
  // Drops the event locally; it stays pending on the server.
  void Forget(uint64_t sequence);
  void Erase(const DeliveryPtr& d);
  // Calls on_refetch_ if something is owed and the table has room.
  void MaybeRefetch();
  bool IsCurrent(const DeliveryPtr& d) const;
  const std::vector<absl::Duration>& ScheduleFor(const Delivery& d) const;

  const DelivererOptions options_;
  ServerClient* const server_;
  RpcClient* const rpc_;
  const ClientAddressBook* const addresses_;
  HostResolver* const resolver_;
  DelayScheduler* const scheduler_;
  OutstandingOps* const ops_;
  std::function<void()> on_refetch_;
  // Distinguishes this process's ack request ids from another gateway
  // instance's acks of the same event (the server deduplicates by id).
  const std::string request_id_prefix_;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<uint64_t, DeliveryPtr> tracked_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> ready_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool refetch_owed_ ABSL_GUARDED_BY(mu_) = false;
  DelivererStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_DELIVERER_H_
