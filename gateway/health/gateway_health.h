// GatewayHealth: the gateway's own grpc.health.v1 service for Kubernetes
// readiness (--health-listen=ADDR:PORT).
//
// The gateway is ready (SERVING, for the service name "" and
// "lockwarden.gateway") only while both hold:
//   - its last probe reached the leading lock server: an
//     AdminService.ListGateways(gateway_id) answered through the gateway's
//     ServerClient, which follows the leader like every NLM call does;
//   - its gateway identity is not drained (AdminService.DrainGateway; the
//     flag is durable in the server, ListGateways reports it).
// An identity the server does not know yet (no lock taken through it) is
// not drained. A probe runs every `probe_interval_ms`; the status changes
// only when a probe says so, and each change is logged with its reason. So
// a drained gateway turns NOT_SERVING within one interval: Kubernetes stops
// routing new NFS clients to it while the clients it already has keep
// their locks; undrained, it turns SERVING again.
//
// The probe is a read-only admin call (no credential needed beyond the
// channel's own TLS; see server/service/auth.h).
//
// Thread-safety: Start/Stop from one thread; serving() and last_reason()
// from any thread. The probe thread never blocks longer than one probe
// (bounded by the ServerClient's failover wait).
#ifndef LOCKWARDEN_GATEWAY_HEALTH_GATEWAY_HEALTH_H_
#define LOCKWARDEN_GATEWAY_HEALTH_GATEWAY_HEALTH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gateway/client/server_client.h"

namespace lockwarden::gateway::health {

// How often a probe waiting for its answer checks for Stop().
inline constexpr int64_t kStopPollMs = 100;

// The service name reported besides the overall "" one.
inline constexpr char kGatewayHealthService[] = "lockwarden.gateway";

struct GatewayHealthOptions {
  std::string listen;        // host:port of the health service (port 0 ok).
  std::string gateway_name;  // The identity (--name).
  int64_t probe_interval_ms = 2000;
};

class GatewayHealth {
 public:
  // Starts the health server (NOT_SERVING until the first probe succeeds)
  // and the probe thread. `server` must outlive the returned object.
  static absl::StatusOr<std::unique_ptr<GatewayHealth>> Start(
      GatewayHealthOptions options, ServerClient* server);
  ~GatewayHealth();

  GatewayHealth(const GatewayHealth&) = delete;
  GatewayHealth& operator=(const GatewayHealth&) = delete;

  // Stops probing and the health server (idempotent).
  void Stop();

  int port() const { return port_; }
  bool serving() const;
  std::string last_reason() const;

 private:
  GatewayHealth(GatewayHealthOptions options, ServerClient* server)
      : options_(std::move(options)), server_(server) {}
  void ProbeLoop();
  // One probe: OK(true/false = not drained/drained) or why it failed.
  absl::StatusOr<bool> ProbeOnce();
  void Set(bool serving, const std::string& reason);

  const GatewayHealthOptions options_;
  ServerClient* const server_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  std::string reason_ ABSL_GUARDED_BY(mu_) = "not probed yet";
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lockwarden::gateway::health

#endif  // LOCKWARDEN_GATEWAY_HEALTH_GATEWAY_HEALTH_H_
