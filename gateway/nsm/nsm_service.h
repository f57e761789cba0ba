// NsmService: lockwarden-gateway's NSM (program 100024 version 1), a full,
// durable replacement for rpc.statd.
//
// Every NSM call becomes one asynchronous MonitorService call to
// lockwarden-server, which keeps all NSM state durably (monitor
// registrations, each client's state number, this gateway identity's own
// state number); the gateway keeps none. The outgoing half (SM_NOTIFY to
// monitored clients after a real state loss, and status callbacks to SM_MON
// registrants) comes from the server's WatchNotifications stream and is
// delivered by a NotificationDeliverer this service owns.
//
//   NsmOptions options;
//   options.gateway_id = "nfs.example";
//   NsmService nsm(options, &server_client, &rpc_client, &address_book);
//   LW_RETURN_IF_ERROR(nsm.Register(dispatcher));   // before serving
//   nsm.Start();                                     // notification stream
//   ...
//   nsm.Stop();   // after the transports stopped dispatching
//
// Procedures (see docs/protocol.md, "NSM"):
//   0 SM_NULL        void
//   1 SM_STAT        -> MonitorService.Stat
//   2 SM_MON         -> Mon     (loopback callers only by default)
//   3 SM_UNMON       -> Unmon   (loopback only by default)
//   4 SM_UNMON_ALL   -> UnmonAll (loopback only by default)
//   5 SM_SIMU_CRASH  -> SimuCrash (loopback only by default), void reply
//   6 SM_NOTIFY      -> Notify after the source check, void reply
// When the server cannot be reached within ServerClient's failover wait the
// call is answered STAT_FAIL (SM_STAT/SM_MON) or with state 0 (SM_UNMON*):
// never dropped.
//
// Thread safety: Register once before serving; Start and Stop from one
// owning thread; handlers run on transport threads and never block.
// Stop waits (bounded by the RPC and gRPC timeouts) for every callback this
// service started, so the service may be destroyed right after Stop.
#ifndef LOCKWARDEN_GATEWAY_NSM_NSM_SERVICE_H_
#define LOCKWARDEN_GATEWAY_NSM_NSM_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/client/server_client.h"
#include "gateway/nsm/client_address_book.h"
#include "gateway/nsm/notification_deliverer.h"
#include "gateway/nsm/notification_stream.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/rpc_client.h"

namespace lockwarden::gateway::nsm {

class HostResolver;
class NotificationDeliverer;
class NotificationStream;
class NotifySourceCheck;
class DelayScheduler;
class OutstandingOps;

// SM_NOTIFY retries (like sm-notify and FreeBSD's statd): 1 s, doubling to
// 512 s, then every 15 minutes until 24 hours after the first attempt.
std::vector<absl::Duration> DefaultNotifyRetrySchedule();
// Status callbacks go to the local lockd, which is normally there: 1 s,
// doubling to 30 s, then every 30 s for about 10 minutes.
std::vector<absl::Duration> DefaultCallbackRetrySchedule();

struct NsmOptions {
  // --name: the host name clients mount. It is the gateway identity in
  // every MonitorService call and the name announced in our SM_NOTIFY.
  std::string gateway_id;

  // Who may report a reboot with SM_NOTIFY for `mon_name`:
  //   kStrict: the source address is the one recorded for mon_name in the
  //     ClientAddressBook, or mon_name is that IP literal, or mon_name
  //     resolves to it;
  //   kTrustName: anyone (for clients behind NAT or with unresolvable
  //     names; any host on the network can then drop another's locks).
  enum class NotifySourceCheck { kStrict, kTrustName };
  NotifySourceCheck notify_source_check = NotifySourceCheck::kStrict;

  // SM_MON/SM_UNMON/SM_UNMON_ALL/SM_SIMU_CRASH are the local lock
  // manager's private interface (Linux statd accepts them only from
  // loopback): a remote caller could otherwise register callbacks to
  // arbitrary hosts, unmonitor other clients, or declare our lock state
  // lost. true accepts them from anywhere (e.g. a kernel lockd in another
  // container of the pod whose traffic is not loopback).
  bool allow_remote_mon = false;

  // Delay before attempt 2, 3, ... of one SmNotify event; after a failed
  // attempt beyond the last entry the event is acked GAVE_UP.
  std::vector<absl::Duration> notify_retry_schedule =
      DefaultNotifyRetrySchedule();
  // The same for StatusCallback events.
  std::vector<absl::Duration> callback_retry_schedule =
      DefaultCallbackRetrySchedule();

  // Deliveries (resolve + GETPORT + call) running at once; further due
  // events wait in FIFO order for a slot.
  size_t max_deliveries_in_flight = 64;
  // Events known to the deliverer (running, waiting for a slot, or waiting
  // for their next retry). Beyond it an event is left pending on the server
  // and fetched again when the table has drained (the stream is reopened).
  size_t max_tracked_events = 10000;

  // Port of the peers' rpcbind for GETPORT (tests run an embedded
  // portmapper on an ephemeral port).
  uint16_t rpcbind_port = 111;
  // One getaddrinfo() (run off the I/O threads) at most this long.
  absl::Duration resolve_timeout = absl::Seconds(5);
  size_t resolver_threads = 2;
  size_t max_pending_resolutions = 256;

  // WatchNotifications: reconnect backoff after the stream fails, and how
  // long a silent stream (the server sends a heartbeat every 15 s) may stay
  // open before it is cancelled and reopened.
  absl::Duration watch_backoff_initial = absl::Milliseconds(100);
  absl::Duration watch_backoff_max = absl::Seconds(5);
  absl::Duration watch_idle_timeout = absl::Seconds(45);
  // Shown in the server's admin listings (e.g. the pod name).
  std::string instance_name;
  // Attempts to report one outcome with AckNotification before the event is
  // forgotten locally (it then stays pending on the server and returns on
  // the next stream).
  int max_ack_attempts = 5;
};

// Counters for metrics (gateway/metrics) and shutdown logs.
struct NsmServiceStats {
  DelivererStats deliveries;        // outgoing SM_NOTIFY and status callbacks
  NotificationStreamStats stream;   // the WatchNotifications stream
  bool stream_connected = false;
};

class NsmService {
 public:
  // Not owned; all must outlive the service.
  NsmService(NsmOptions options, ServerClient* server, RpcClient* rpc,
             ClientAddressBook* addresses);
  ~NsmService();
  NsmService(const NsmService&) = delete;
  NsmService& operator=(const NsmService&) = delete;

  // Registers program 100024 version 1, procedures 0-6.
  absl::Status Register(Dispatcher& dispatcher);

  // Starts the WatchNotifications consumer (one thread). Idempotent.
  void Start();
  // Stops the consumer promptly (cancels the stream), stops retries, and
  // waits for outstanding callbacks. Idempotent.
  void Stop();

  const NsmOptions& options() const { return options_; }
  NsmServiceStats stats() const;

  // The state number of the last successful MonitorService answer (0 if
  // none yet); used in replies when the server cannot be reached.
  int32_t last_known_state() const { return last_known_state_.load(); }
  // Notification delivery counters (see notification_deliverer.h).
  NotificationDeliverer* deliverer_for_testing() { return deliverer_.get(); }
  NotificationStream* stream_for_testing() { return stream_.get(); }

 private:
  void HandleStat(std::unique_ptr<RpcCall> call);
  void HandleMon(std::unique_ptr<RpcCall> call);
  void HandleUnmon(std::unique_ptr<RpcCall> call);
  void HandleUnmonAll(std::unique_ptr<RpcCall> call);
  void HandleSimuCrash(std::unique_ptr<RpcCall> call);
  void HandleNotify(std::unique_ptr<RpcCall> call);
  // Forwards an accepted SM_NOTIFY to MonitorService.Notify and answers.
  void ForwardNotify(std::shared_ptr<RpcCall> call, std::string mon_name,
                     int32_t state);
  // False (and logs) if a private-interface call comes from a remote peer.
  bool AllowPrivateCall(const RpcCall& call) const;
  // A fresh idempotency key for one NSM call (reused by ServerClient's
  // retries of that call).
  std::string NextRequestId();
  // A MonitorService request with a fresh request id and this gateway's id
  // (defined in the .cc, the only user).
  template <typename Request>
  std::shared_ptr<Request> NewRequest();
  void NoteState(int32_t state) { last_known_state_.store(state); }

  const NsmOptions options_;
  ServerClient* const server_;
  RpcClient* const rpc_;
  ClientAddressBook* const addresses_;
  std::unique_ptr<OutstandingOps> ops_;
  std::unique_ptr<DelayScheduler> scheduler_;
  std::unique_ptr<HostResolver> resolver_;
  std::unique_ptr<NotifySourceCheck> source_check_;
  std::unique_ptr<NotificationDeliverer> deliverer_;
  std::unique_ptr<NotificationStream> stream_;
  const std::string request_id_prefix_;
  std::atomic<uint64_t> next_request_{0};
  std::atomic<int32_t> last_known_state_{0};
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_NSM_SERVICE_H_
