#include "gateway/health/gateway_health.h"

#include <utility>

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::gateway::health {

absl::StatusOr<std::unique_ptr<GatewayHealth>> GatewayHealth::Start(
    GatewayHealthOptions options, ServerClient* server) {
  if (options.probe_interval_ms <= 0) {
    return absl::InvalidArgumentError("health probe interval must be positive");
  }
  std::unique_ptr<GatewayHealth> h(new GatewayHealth(std::move(options), server));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(h->options_.listen, grpc::InsecureServerCredentials(), &h->port_);
  h->grpc_server_ = builder.BuildAndStart();
  if (h->grpc_server_ == nullptr || h->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("--health-listen: cannot listen on ",
                                               h->options_.listen));
  }
  h->Set(false, "not probed yet");
  h->thread_ = std::thread([raw = h.get()] { raw->ProbeLoop(); });
  return h;
}

GatewayHealth::~GatewayHealth() { Stop(); }

void GatewayHealth::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  // NOT_SERVING at once (a shutting-down gateway takes no new clients).
  if (grpc_server_ != nullptr) grpc_server_->GetHealthCheckService()->Shutdown();
  if (thread_.joinable()) thread_.join();
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
}

bool GatewayHealth::serving() const {
  absl::MutexLock lock(&mu_);
  return serving_;
}

std::string GatewayHealth::last_reason() const {
  absl::MutexLock lock(&mu_);
  return reason_;
}

void GatewayHealth::Set(bool serving, const std::string& reason) {
  bool changed;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;  // The health service was shut down.
    changed = serving != serving_ || reason != reason_;
    serving_ = serving;
    reason_ = reason;
  }
  grpc::HealthCheckServiceInterface* service = grpc_server_->GetHealthCheckService();
  service->SetServingStatus(serving);
  service->SetServingStatus(kGatewayHealthService, serving);
  if (changed) {
    LogEvent(serving ? LogLevel::kInfo : LogLevel::kWarn, "gateway_readiness",
             {{"serving", serving}, {"gateway", options_.gateway_name}, {"reason", reason}});
  }
}

void GatewayHealth::ProbeLoop() {
  // Bounded by Stop(): every wait ends when stopping_ is set.
  while (true) {
    absl::StatusOr<bool> drained = ProbeOnce();
    if (!drained.ok()) {
      Set(false, absl::StrCat("no leader: ", drained.status().message()));
    } else if (*drained) {
      Set(false, "gateway identity is drained");
    } else {
      Set(true, "leader reachable, not drained");
    }
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping),
                             absl::Milliseconds(options_.probe_interval_ms))) {
      return;
    }
  }
}

absl::StatusOr<bool> GatewayHealth::ProbeOnce() {
  struct Result {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    grpc::Status status ABSL_GUARDED_BY(mu);
    v1::ListGatewaysResponse response ABSL_GUARDED_BY(mu);
  };
  auto result = std::make_shared<Result>();
  v1::ListGatewaysRequest request;
  request.set_gateway_id(options_.gateway_name);
  server_->Call<v1::ListGatewaysResponse>(
      [request](ServerClient::Stubs& stubs, grpc::ClientContext* ctx,
                v1::ListGatewaysResponse* response, std::function<void(grpc::Status)> done) {
        // The stub lives until its call completes.
        std::shared_ptr<v1::AdminService::Stub> stub =
            v1::AdminService::NewStub(stubs.channel);
        auto owned_request = std::make_shared<v1::ListGatewaysRequest>(request);
        stub->async()->ListGateways(
            ctx, owned_request.get(), response,
            [stub, owned_request, done = std::move(done)](grpc::Status s) { done(s); });
      },
      [result](const grpc::Status& s, const v1::ListGatewaysResponse& r) {
        absl::MutexLock lock(&result->mu);
        result->status = s;
        result->response = r;
        result->done = true;
      });
  // The call always completes (within the ServerClient's failover wait);
  // Stop() does not wait for it: the result is shared with the callback.
  absl::MutexLock lock(&result->mu);
  while (!result->mu.AwaitWithTimeout(absl::Condition(&result->done),
                                      absl::Milliseconds(kStopPollMs))) {
    absl::MutexLock stop_lock(&mu_);
    if (stopping_) return absl::CancelledError("stopping");
  }
  if (!result->status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "ListGateways: ", result->status.error_code(), " ", result->status.error_message()));
  }
  for (const v1::Gateway& g : result->response.gateways()) {
    if (g.gateway_id() == options_.gateway_name) return g.draining();
  }
  return false;  // Unknown to the server yet: not drained.
}

}  // namespace lockwarden::gateway::health
