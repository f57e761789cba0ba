// NotificationStream: the gateway's consumer of
// MonitorService.WatchNotifications for one gateway identity.
//
// One dedicated thread runs the synchronous streaming call against
// ServerClient::Current() and hands every event to the sink (the
// NotificationDeliverer). When the stream ends (server restart, failover,
// FAILED_PRECONDITION from a standby, network error) it moves to the leader
// named in the trailers, else the next server (ServerClient::Rotate), and
// reconnects after a backoff (`backoff_initial` doubling to `backoff_max`,
// reset by any message). A reconnect asks for events after the highest
// sequence already received, so events still being delivered are not sent
// twice; RequestRefetch makes the next connection start from 0 (the
// deliverer asks for that after it had to refuse or forget events).
//
// Every wait is bounded: the server sends a heartbeat every 15 s, and a
// watchdog cancels a stream silent for `idle_timeout` (a half-open TCP
// connection would otherwise block Read forever). Stop cancels the call
// (ClientContext::TryCancel) and returns within one backoff step.
//
//   NotificationStream stream(options, &server_client,
//       [&](const v1::NotificationEvent& e) { deliverer.Offer(e); });
//   stream.Start();
//   ...
//   stream.Stop();
//
// Thread safety: Start/Stop from one owning thread; RequestRefetch and
// stats from any thread. The sink runs on the stream thread and must not
// block.
#ifndef LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_STREAM_H_
#define LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_STREAM_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/client/server_client.h"
#include "lockwarden/v1/monitor_service.pb.h"

namespace lockwarden::gateway::nsm {

struct NotificationStreamOptions {
  std::string gateway_id;
  std::string instance_name;
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(5);
  absl::Duration idle_timeout = absl::Seconds(45);
};

struct NotificationStreamStats {
  uint64_t connects = 0;      // streams opened
  uint64_t stream_errors = 0;  // streams that ended other than by request
  uint64_t idle_cancels = 0;   // cancelled by the watchdog
  uint64_t events = 0;
  uint64_t heartbeats = 0;
};

class NotificationStream {
 public:
  using EventSink = std::function<void(const v1::NotificationEvent&)>;

  NotificationStream(NotificationStreamOptions options, ServerClient* server,
                     EventSink sink);
  ~NotificationStream();  // Stop()
  NotificationStream(const NotificationStream&) = delete;
  NotificationStream& operator=(const NotificationStream&) = delete;

  // Starts the stream and watchdog threads. Idempotent.
  void Start();
  // Cancels the stream and joins the threads. Idempotent.
  void Stop();
  // Reopens the stream from sequence 0 as soon as possible.
  void RequestRefetch();

  // True while a stream is open and has received at least one message.
  bool connected() const;
  NotificationStreamStats stats() const;

 private:
  void Run();
  void Watchdog();
  // Sleeps up to `delay`; false if stopping.
  bool SleepUnlessStopping(absl::Duration delay);

  const NotificationStreamOptions options_;
  ServerClient* const server_;
  const EventSink sink_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The open call, for TryCancel; owned by the stream thread.
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  bool refetch_ ABSL_GUARDED_BY(mu_) = false;
  bool restart_ ABSL_GUARDED_BY(mu_) = false;  // cancelled on purpose
  uint64_t after_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_message_ ABSL_GUARDED_BY(mu_);
  NotificationStreamStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread stream_thread_;
  std::thread watchdog_thread_;
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_NOTIFICATION_STREAM_H_
