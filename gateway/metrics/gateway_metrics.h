// Prometheus metrics of lockwarden-gateway, served over HTTP at
// http://<--metrics-listen>/metrics (prometheus-cpp's exposer).
//
//   auto metrics = GatewayMetrics::Start("0.0.0.0:9464");
//   Dispatcher nlm(DispatcherOptions{.drc = &drc,
//                                    .observer = (*metrics).get()});
//   RpcClient rpc(io, RpcClientOptions{.observer = (*metrics).get()});
//   ... build the services ...
//   (*metrics)->SetSources({...});      // sampled on every scrape
//   grpc::experimental::RegisterGlobalClientInterceptorFactory(
//       (*metrics)->NewServerCallInterceptorFactory().release());
//   ... serve ...
//   (*metrics)->ClearSources();         // before the sources are destroyed
//
// Series (all prefixed lockwarden_gateway_):
// Counted as they happen:
//   rpc_requests_total{program,version,procedure,transport,outcome}
//       every call that reached a procedure; outcome = success | no_reply |
//       dropped | garbage_args | system_err | error
//   rpc_request_duration_seconds{program,version,procedure}   histogram,
//       decode to answer (NLM: until the reply; *_MSG: until the RPC is
//       answered, the *_RES call follows separately)
//   nlm_denied_nolocks_total{procedure,form}   DENIED_NOLOCKS answered,
//       form = reply (synchronous) | res (in a *_RES call)
//   outgoing_calls_total{program,procedure,result}   GRANTED(_MSG), *_RES,
//       SM_NOTIFY, statd callbacks, GETPORT; result = ok | a status code
//   server_calls_total{method,code}   every gRPC attempt to lockwarden-server
//   server_call_duration_seconds{method}   histogram, unary attempts
//   server_failover_waits_total{method}   attempts that failed with a
//       retryable code (UNAVAILABLE, DEADLINE_EXCEEDED, FAILED_PRECONDITION,
//       ABORTED): the gateway waits and retries or, past
//       --failover-wait-ms, answers DENIED_NOLOCKS
// Sampled on every scrape (SetSources):
//   rpc_errors_total{service,error}   prog_unavail, prog_mismatch,
//       proc_unavail, garbage_args, auth_error, rpc_mismatch, dropped
//   drc_hits_total, drc_misses_total, drc_absorbed_total,
//   drc_evictions_total, drc_expirations_total, drc_entries, drc_reply_bytes
//   connections_open{service}, tcp_connections_accepted_total{service},
//   tcp_connections_rejected_total{service},
//   udp_datagrams_dropped_total{service}, calls_in_flight{service}
//   tcp_connections_closed_total{service,reason}  framing_error, idle,
//       slow_reader; tcp_replies_queued_total{service}
//   nlm_server_errors_total (NLM requests answered DENIED_NOLOCKS/FAILED
//       because the server call failed), nlm_requests_in_flight,
//   nlm_res_sent_total, nlm_res_failed_total
//   granted_events_total, granted_attempts_total, granted_retries_total,
//   granted_delivered_total, granted_refused_total,
//   granted_undeliverable_total, granted_acks_failed_total,
//   granted_deliveries_in_flight
//   sm_notify_delivered_total, sm_notify_failed_attempts_total,
//   sm_notify_gave_up_total, statd_callbacks_delivered_total,
//   statd_callback_failed_attempts_total, statd_callbacks_gave_up_total
//   event_stream_reconnects_total{stream}   stream = grants | notifications
//   event_stream_connected{stream="notifications"}
//   privileged_port_fallbacks_total, outgoing_calls_in_flight
//
// Thread-safety: every method may be called from any thread; scrapes run
// on the exposer's threads and read the sources under a mutex, so
// ClearSources() returns only once no scrape uses them any more.
#ifndef LOCKWARDEN_GATEWAY_METRICS_GATEWAY_METRICS_H_
#define LOCKWARDEN_GATEWAY_METRICS_GATEWAY_METRICS_H_

#include <grpcpp/support/client_interceptor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/metrics/sampled_metrics.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/rpc_client.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace lockwarden::gateway::metrics {

class GatewayMetrics final : public CallObserver, public OutgoingCallObserver {
 public:
  // Listens on `listen` (HOST:PORT, port 0 = ephemeral); an empty `listen`
  // serves nothing (tests read Serialize()). UNAVAILABLE if it cannot bind.
  static absl::StatusOr<std::unique_ptr<GatewayMetrics>> Start(
      const std::string& listen);
  ~GatewayMetrics() override;

  // The bound HTTP port (0 without a listener).
  int port() const { return port_; }

  void SetSources(GatewayMetricsSources sources);
  void ClearSources();

  // CallObserver: one answered inbound call.
  void OnAnswered(const RpcCall& call,
                  std::optional<absl::string_view> reply) override;
  // OutgoingCallObserver: one finished outbound call.
  void OnOutgoingDone(absl::string_view call_message,
                      const absl::Status& status) override;

  // A client interceptor factory recording every attempt to the server.
  // The factory keeps what it records into alive on its own (it may
  // outlive this object when registered globally with gRPC).
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
  NewServerCallInterceptorFactory();

  // The text exposition format, as a scrape would return it.
  std::string Serialize() const;

  struct Impl;  // defined in gateway_metrics.cc

 private:
  GatewayMetrics() = default;

  std::shared_ptr<Impl> impl_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace lockwarden::gateway::metrics

#endif  // LOCKWARDEN_GATEWAY_METRICS_GATEWAY_METRICS_H_
