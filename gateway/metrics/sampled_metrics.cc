#include "gateway/metrics/sampled_metrics.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/metric_family.h"
#include "gateway/nlm/grant_delivery.h"
#include "gateway/nlm/nlm_service.h"
#include "gateway/nsm/nsm_service.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/duplicate_request_cache.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"

namespace lockwarden::gateway::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Builds the families of one scrape.
class Families {
 public:
  // Adds one sample to the family `name` (created on first use, in order).
  void Add(const std::string& name, const char* help, MetricType type,
           double value, std::vector<ClientMetric::Label> labels = {}) {
    MetricFamily* f = Find(name);
    if (f == nullptr) {
      out_.push_back(
          MakeMetricFamily(absl::StrCat("lockwarden_gateway_", name), help, type));
      f = &out_.back();
    }
    AddMetricSample(f, value, std::move(labels));
  }
  void Counter(const std::string& name, const char* help, double value,
               std::vector<ClientMetric::Label> labels = {}) {
    Add(name, help, MetricType::Counter, value, std::move(labels));
  }
  void Gauge(const std::string& name, const char* help, double value,
             std::vector<ClientMetric::Label> labels = {}) {
    Add(name, help, MetricType::Gauge, value, std::move(labels));
  }
  std::vector<MetricFamily> Take() { return std::move(out_); }

 private:
  MetricFamily* Find(const std::string& name) {
    const std::string full = absl::StrCat("lockwarden_gateway_", name);
    for (MetricFamily& f : out_) {
      if (f.name == full) return &f;
    }
    return nullptr;
  }

  std::vector<MetricFamily> out_;
};

// One family for both event streams (grants, notifications), labelled by
// stream; its name and help live only here so the two cannot drift apart.
void StreamReconnects(Families& f, const char* stream, uint64_t reconnects) {
  f.Counter("event_stream_reconnects_total",
            "Event streams reopened after the first (server restart, "
            "failover, idle watchdog).",
            static_cast<double>(reconnects), {{"stream", stream}});
}

void CollectService(const GatewayMetricsSources::Service& s, Families& f) {
  const std::vector<ClientMetric::Label> service = {{"service", s.name}};
  if (s.dispatcher != nullptr) {
    const DispatcherStats d = s.dispatcher->stats();
    const std::pair<const char*, uint64_t> errors[] = {
        {"prog_unavail", d.prog_unavail},
        {"prog_mismatch", d.prog_mismatch},
        {"proc_unavail", d.proc_unavail},
        {"garbage_args", d.garbage_args},
        {"auth_error", d.auth_errors},
        {"rpc_mismatch", d.rpc_mismatch},
        {"dropped", d.dropped}};
    for (const auto& [error, count] : errors) {
      f.Counter("rpc_errors_total",
                "RPC-level errors answered (or messages dropped), by service.",
                static_cast<double>(count),
                {{"service", s.name}, {"error", error}});
    }
  }
  if (s.server != nullptr) {
    const RpcServerStats t = s.server->stats();
    f.Gauge("connections_open", "TCP connections open.",
            static_cast<double>(t.tcp_connections), service);
    f.Counter("tcp_connections_accepted_total", "TCP connections accepted.",
              static_cast<double>(t.tcp_accepted), service);
    f.Counter("tcp_connections_rejected_total",
              "TCP connections closed at once (connection limit).",
              static_cast<double>(t.tcp_rejected_limit), service);
    f.Counter("udp_datagrams_dropped_total",
              "UDP calls dropped at the in-flight limit (clients retransmit).",
              static_cast<double>(t.udp_dropped_overload), service);
    const std::pair<const char*, uint64_t> closed[] = {
        {"framing_error", t.tcp_framing_errors},
        {"idle", t.tcp_idle_closed},
        {"slow_reader", t.tcp_slow_reader_closed}};
    for (const auto& [reason, count] : closed) {
      f.Counter("tcp_connections_closed_total",
                "TCP connections the gateway closed, by reason (bad record "
                "marking, idle timeout, a client not reading its replies).",
                static_cast<double>(count),
                {{"service", s.name}, {"reason", reason}});
    }
    f.Counter("tcp_replies_queued_total",
              "TCP replies that found the socket buffer full and waited for "
              "the connection's writer (a slow or congested client).",
              static_cast<double>(t.tcp_replies_queued), service);
    f.Gauge("calls_in_flight", "Calls dispatched and not yet answered.",
            static_cast<double>(s.server->calls_in_flight()), service);
  }
}

void CollectDrc(const DuplicateRequestCache& drc, Families& f) {
  const DrcStats d = drc.stats();
  f.Counter("drc_hits_total", "Retransmissions answered from the DRC.",
            static_cast<double>(d.hits));
  f.Counter("drc_misses_total", "New calls entered in the DRC.",
            static_cast<double>(d.misses));
  f.Counter("drc_absorbed_total",
            "Retransmissions dropped while the original was executing.",
            static_cast<double>(d.in_progress));
  f.Counter("drc_evictions_total", "DRC entries evicted at its bounds.",
            static_cast<double>(d.evictions));
  f.Counter("drc_expirations_total", "DRC entries dropped after their TTL.",
            static_cast<double>(d.expirations));
  f.Gauge("drc_entries", "DRC entries.", static_cast<double>(d.entries));
  f.Gauge("drc_reply_bytes", "Bytes of cached replies.",
          static_cast<double>(d.reply_bytes));
}

void CollectNlm(const nlm::NlmService& nlm, Families& f) {
  const nlm::NlmServiceStats s = nlm.stats();
  f.Counter("nlm_server_errors_total",
            "NLM requests answered DENIED_NOLOCKS/FAILED because the server "
            "call failed.",
            static_cast<double>(s.server_errors));
  f.Gauge("nlm_requests_in_flight", "NLM requests being served.",
          static_cast<double>(nlm.in_flight()));
  f.Counter("nlm_res_sent_total", "*_RES calls sent for *_MSG requests.",
            static_cast<double>(s.res_sent));
  f.Counter("nlm_res_failed_total", "*_RES calls that could not be sent.",
            static_cast<double>(s.res_failed));
}

void CollectGrants(const nlm::GrantDelivery& grants, Families& f) {
  const nlm::GrantDeliveryStats g = grants.stats();
  f.Counter("granted_events_total", "Grant events received from the server.",
            static_cast<double>(g.events_received));
  f.Counter("granted_attempts_total", "GRANTED/GRANTED_MSG calls made.",
            static_cast<double>(g.attempts));
  f.Counter("granted_retries_total",
            "GRANTED/GRANTED_MSG calls after an event's first.",
            static_cast<double>(g.retries));
  f.Counter("granted_delivered_total", "Grants the client accepted.",
            static_cast<double>(g.delivered));
  f.Counter("granted_refused_total", "Grants the client refused.",
            static_cast<double>(g.refused));
  f.Counter("granted_undeliverable_total",
            "Grants given up at their deadline (delivery failures).",
            static_cast<double>(g.undeliverable));
  f.Counter("granted_acks_failed_total", "Grant acks given up.",
            static_cast<double>(g.acks_failed));
  f.Gauge("granted_deliveries_in_flight", "Grant events in hand.",
          static_cast<double>(g.in_flight));
  StreamReconnects(f, "grants", g.stream_reconnects);
}

void CollectNsm(const nsm::NsmService& nsm, Families& f) {
  const nsm::NsmServiceStats s = nsm.stats();
  const nsm::DelivererStats& d = s.deliveries;
  f.Counter("sm_notify_delivered_total", "SM_NOTIFY calls answered.",
            static_cast<double>(d.notify_delivered));
  f.Counter("sm_notify_failed_attempts_total", "SM_NOTIFY attempts failed.",
            static_cast<double>(d.notify_failed_attempts));
  f.Counter("sm_notify_gave_up_total",
            "SM_NOTIFY events given up after the retry schedule.",
            static_cast<double>(d.notify_gave_up));
  f.Counter("statd_callbacks_delivered_total",
            "Status callbacks (statd -> lockd) answered.",
            static_cast<double>(d.delivered - d.notify_delivered));
  f.Counter("statd_callback_failed_attempts_total",
            "Status callback attempts failed.",
            static_cast<double>(d.failed_attempts - d.notify_failed_attempts));
  f.Counter("statd_callbacks_gave_up_total", "Status callbacks given up.",
            static_cast<double>(d.gave_up - d.notify_gave_up));
  StreamReconnects(f, "notifications",
                   std::max<uint64_t>(s.stream.connects, 1) - 1);
  f.Gauge("event_stream_connected",
          "1 while the stream is open and has received a message.",
          s.stream_connected ? 1 : 0, {{"stream", "notifications"}});
}

}  // namespace

void SampledMetrics::SetSources(GatewayMetricsSources sources) {
  absl::MutexLock lock(&mu_);
  sources_ = std::move(sources);
}

void SampledMetrics::ClearSources() {
  absl::MutexLock lock(&mu_);
  sources_.reset();
}

std::vector<prometheus::MetricFamily> SampledMetrics::Collect() const {
  absl::MutexLock lock(&mu_);
  Families f;
  if (!sources_.has_value()) return f.Take();
  for (const GatewayMetricsSources::Service& s : sources_->services) {
    CollectService(s, f);
  }
  if (sources_->drc != nullptr) CollectDrc(*sources_->drc, f);
  if (sources_->rpc_client != nullptr) {
    f.Counter("privileged_port_fallbacks_total",
              "Outgoing calls sent from an ephemeral port: binding a port "
              "below 1024 was not permitted.",
              static_cast<double>(
                  sources_->rpc_client->privileged_port_fallbacks()));
    f.Gauge("outgoing_calls_in_flight", "Outgoing calls not yet finished.",
            static_cast<double>(sources_->rpc_client->calls_in_flight()));
  }
  if (sources_->nlm != nullptr) CollectNlm(*sources_->nlm, f);
  if (sources_->grants != nullptr) CollectGrants(*sources_->grants, f);
  if (sources_->nsm != nullptr) CollectNsm(*sources_->nsm, f);
  return f.Take();
}

}  // namespace lockwarden::gateway::metrics
