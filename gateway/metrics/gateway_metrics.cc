#include "gateway/metrics/gateway_metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gateway/metrics/reply_classifier.h"
#include "gateway/metrics/sampled_metrics.h"
#include "gateway/rpc/rpc_message.h"

namespace lockwarden::gateway::metrics {
namespace {

// Gateway calls: 50 us (a DRC replay) to 10 s (a held request during a
// failover; --failover-wait-ms defaults to 5 s).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
  return *kBuckets;
}

const char* TransportName(TransportKind t) {
  return t == TransportKind::kUdp ? "udp" : "tcp";
}

// Names of the procedures the gateway calls (outgoing_calls_total).
std::string OutgoingProcedureName(uint32_t prog, uint32_t proc) {
  if (prog == kNlmProgram) {
    switch (proc) {
      case 5:
        return "GRANTED";
      case 10:
        return "GRANTED_MSG";
      case 11:
        return "TEST_RES";
      case 12:
        return "LOCK_RES";
      case 13:
        return "CANCEL_RES";
      case 14:
        return "UNLOCK_RES";
      case 15:
        return "GRANTED_RES";
      case 16:
        return "SM_NOTIFY_CALLBACK";
    }
  } else if (prog == kNsmProgram && proc == 6) {
    return "SM_NOTIFY";
  } else if (prog == kPortmapProgram && proc == 3) {
    return "GETPORT";
  }
  return absl::StrCat(proc);
}

std::string StatusName(const absl::Status& s) {
  if (s.ok()) return "ok";
  std::string name = absl::StatusCodeToString(s.code());
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return name;
}

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "OTHER";
  }
}

// The codes after which ServerClient waits and retries (server_client.h).
bool IsFailoverCode(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE ||
         code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::FAILED_PRECONDITION ||
         code == grpc::StatusCode::ABORTED;
}

}  // namespace

// Everything the observers, the interceptors and the scrapes share. Held by
// shared_ptr: a globally registered interceptor factory keeps it alive.
struct GatewayMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry =
      std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("lockwarden_gateway_rpc_requests_total")
          .Help("ONC RPC calls that reached a procedure, by outcome.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("lockwarden_gateway_rpc_request_duration_seconds")
          .Help("ONC RPC call latency, decode to answer.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& denied_nolocks =
      prometheus::BuildCounter()
          .Name("lockwarden_gateway_nlm_denied_nolocks_total")
          .Help("NLM requests answered DENIED_NOLOCKS (form: reply or res).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& outgoing =
      prometheus::BuildCounter()
          .Name("lockwarden_gateway_outgoing_calls_total")
          .Help("Calls the gateway made to clients and rpcbinds, by result.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& server_calls =
      prometheus::BuildCounter()
          .Name("lockwarden_gateway_server_calls_total")
          .Help("gRPC attempts to lockwarden-server, by method and code.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& server_latency =
      prometheus::BuildHistogram()
          .Name("lockwarden_gateway_server_call_duration_seconds")
          .Help("Latency of unary gRPC attempts to lockwarden-server.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& failover_waits =
      prometheus::BuildCounter()
          .Name("lockwarden_gateway_server_failover_waits_total")
          .Help(
              "Server attempts that failed retryably: the request waited "
              "(retry, or DENIED_NOLOCKS past --failover-wait-ms).")
          .Register(*registry);
  std::shared_ptr<SampledMetrics> sampled = std::make_shared<SampledMetrics>();

  // Series of one procedure, looked up once (Family::Add hashes labels).
  struct CallSeries {
    prometheus::Histogram* latency = nullptr;
    prometheus::Counter* outcomes[kCallOutcomes] = {};  // by CallOutcome
    prometheus::Counter* denied_nolocks = nullptr;
  };
  using CallKey = std::tuple<uint32_t, uint32_t, uint32_t, TransportKind>;
  absl::Mutex mu;
  absl::flat_hash_map<CallKey, CallSeries> calls ABSL_GUARDED_BY(mu);

  CallSeries& SeriesFor(const RpcCall& call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const CallHeader& h = call.header();
    const CallKey key{h.prog, h.vers, h.proc, call.context().transport};
    auto [it, inserted] = calls.try_emplace(key);
    CallSeries& series = it->second;
    if (!inserted) return series;
    const std::string program = ProgramName(h.prog);
    const std::string version = absl::StrCat(h.vers);
    const std::string& procedure = call.procedure().name;
    series.latency = &latency.Add(
        {{"program", program}, {"version", version}, {"procedure", procedure}},
        LatencyBuckets());
    for (int o = 0; o < kCallOutcomes; ++o) {
      series.outcomes[o] = &requests.Add(
          {{"program", program},
           {"version", version},
           {"procedure", procedure},
           {"transport", TransportName(call.context().transport)},
           {"outcome", CallOutcomeName(static_cast<CallOutcome>(o))}});
    }
    if (h.prog == kNlmProgram && HasNlmResult(h.proc)) {
      series.denied_nolocks =
          &denied_nolocks.Add({{"procedure", procedure}, {"form", "reply"}});
    }
    return series;
  }

  void RecordServerCall(const std::string& method, bool streaming,
                        grpc::StatusCode code, double seconds) {
    server_calls.Add({{"method", method}, {"code", GrpcCodeName(code)}})
        .Increment();
    // A stream's lifetime is not a latency.
    if (!streaming) {
      server_latency.Add({{"method", method}}, LatencyBuckets())
          .Observe(seconds);
    }
    if (IsFailoverCode(code)) {
      failover_waits.Add({{"method", method}}).Increment();
    }
  }
};

namespace {

class ServerCallInterceptor final : public grpc::experimental::Interceptor {
 public:
  ServerCallInterceptor(std::shared_ptr<GatewayMetrics::Impl> impl,
                        std::string method, bool streaming)
      : impl_(std::move(impl)),
        method_(std::move(method)),
        streaming_(streaming),
        start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_STATUS)) {
      const grpc::Status* status = methods->GetRecvStatus();
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start_)
                                 .count();
      impl_->RecordServerCall(
          method_, streaming_,
          status != nullptr ? status->error_code() : grpc::StatusCode::UNKNOWN,
          seconds);
    }
    methods->Proceed();
  }

 private:
  const std::shared_ptr<GatewayMetrics::Impl> impl_;
  const std::string method_;
  const bool streaming_;
  const std::chrono::steady_clock::time_point start_;
};

class ServerCallInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ServerCallInterceptorFactory(
      std::shared_ptr<GatewayMetrics::Impl> impl)
      : impl_(std::move(impl)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    const bool streaming =
        info->type() != grpc::experimental::ClientRpcInfo::Type::UNARY;
    return new ServerCallInterceptor(
        impl_, info->method() != nullptr ? info->method() : "", streaming);
  }

 private:
  const std::shared_ptr<GatewayMetrics::Impl> impl_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayMetrics>> GatewayMetrics::Start(
    const std::string& listen) {
  std::unique_ptr<GatewayMetrics> m(new GatewayMetrics);
  m->impl_ = std::make_shared<Impl>();
  if (listen.empty()) return m;
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("--metrics-listen=", listen,
                                               ": cannot listen: ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->impl_->registry);
  m->exposer_->RegisterCollectable(m->impl_->sampled);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports.front();
  return m;
}

GatewayMetrics::~GatewayMetrics() {
  exposer_.reset();  // no scrape runs past this point
}

void GatewayMetrics::SetSources(GatewayMetricsSources sources) {
  impl_->sampled->SetSources(std::move(sources));
}

void GatewayMetrics::ClearSources() { impl_->sampled->ClearSources(); }

void GatewayMetrics::OnAnswered(const RpcCall& call,
                                std::optional<absl::string_view> reply) {
  const double seconds =
      absl::ToDoubleSeconds(absl::Now() - call.received_at());
  const CallOutcome outcome = ClassifyReply(reply, call.answered());
  bool denied = false;
  if (outcome == CallOutcome::kSuccess && call.header().prog == kNlmProgram &&
      HasNlmResult(call.header().proc)) {
    denied = NlmStatOfReply(*reply) == kNlmDeniedNoLocks;
  }
  absl::MutexLock lock(&impl_->mu);
  Impl::CallSeries& series = impl_->SeriesFor(call);
  series.outcomes[static_cast<int>(outcome)]->Increment();
  series.latency->Observe(seconds);
  if (denied && series.denied_nolocks != nullptr) {
    series.denied_nolocks->Increment();
  }
}

void GatewayMetrics::OnOutgoingDone(absl::string_view call_message,
                                    const absl::Status& status) {
  const DecodedCall call = DecodeCall(call_message);
  if (call.outcome != DecodedCall::Outcome::kOk) return;
  const CallHeader& h = call.header;
  const std::string procedure = OutgoingProcedureName(h.prog, h.proc);
  impl_->outgoing
      .Add({{"program", ProgramName(h.prog)},
            {"procedure", procedure},
            {"result", StatusName(status)}})
      .Increment();
  // *_RES calls carry the answer to a *_MSG request (procedures 11-14).
  if (h.prog == kNlmProgram && h.proc >= 11 && h.proc <= 14 &&
      h.args_offset <= call_message.size() &&
      LeadingNlmStat(call_message.substr(h.args_offset)) == kNlmDeniedNoLocks) {
    impl_->denied_nolocks.Add({{"procedure", procedure}, {"form", "res"}})
        .Increment();
  }
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
GatewayMetrics::NewServerCallInterceptorFactory() {
  return std::make_unique<ServerCallInterceptorFactory>(impl_);
}

std::string GatewayMetrics::Serialize() const {
  std::vector<prometheus::MetricFamily> families = impl_->registry->Collect();
  std::vector<prometheus::MetricFamily> sampled = impl_->sampled->Collect();
  families.insert(families.end(), std::make_move_iterator(sampled.begin()),
                  std::make_move_iterator(sampled.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace lockwarden::gateway::metrics
