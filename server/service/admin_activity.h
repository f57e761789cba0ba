// GatewayActivity: what the lock service's own request traffic says about
// gateways and clients, plus the drain flags of gateway identities. It feeds
// AdminService.ListGateways (connected event streams, last_seen_at,
// draining), ListClients (last_activity_at, addresses), DrainGateway and the
// metrics (stream counts, delivery outcomes).
//
// It is fed by a gRPC server interceptor (NewInterceptorFactory) that looks
// at every LockService and MonitorService request after it is decoded and
// before its handler runs, so the services themselves need no bookkeeping:
//   - every request carrying a gateway_id marks the identity seen;
//   - requests naming a client (LOCK, UNLOCK, ..., SM_NOTIFY) mark it active;
//     SM_NOTIFY also records the client's source address;
//   - WatchGrants / WatchNotifications / Session register a stream until the
//     call ends (the interceptor's destructor);
//   - a blocking LOCK through a draining identity is counted (the core
//     itself answers it without queueing: core::DrainGatewayCmd). The calls
//     batched in a LockService.Session message are treated like their unary
//     forms, one by one.
//
// Everything here is leader-local memory: a restart or a failover starts
// with no activity. The drain flags here are only a copy of the durable
// ones in the core (loaded when the service starts, updated by
// DrainGateway), used to count drained LOCKs for the metrics.
//
// Limits: kActivityGatewaysMax identities, kActivityClientsMax clients (the
// oldest tenth is forgotten when full), kStreamsPerGatewayMax streams listed.
//
// Thread-safety: every method may be called from any thread (one mutex,
// held only for map updates; never across I/O).
#ifndef LOCKWARDEN_SERVER_SERVICE_ADMIN_ACTIVITY_H_
#define LOCKWARDEN_SERVER_SERVICE_ADMIN_ACTIVITY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/support/server_interceptor.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace lockwarden::service {

inline constexpr size_t kActivityGatewaysMax = 10'000;
inline constexpr size_t kActivityClientsMax = 100'000;
inline constexpr size_t kStreamsPerGatewayMax = 64;
// Distinct source addresses remembered per client.
inline constexpr size_t kClientAddressesMax = 4;

enum class StreamKind { kGrants, kNotifications, kSession };

struct StreamInfo {
  uint64_t id = 0;
  StreamKind kind = StreamKind::kGrants;
  std::string gateway;
  std::string instance_name;
  std::string peer;  // gRPC peer, e.g. "ipv4:127.0.0.1:51234".
  int64_t connected_ms = 0;
};

// Outcome counters of acknowledged events (for metrics).
struct DeliveryCounts {
  uint64_t grants_delivered = 0;
  uint64_t grants_refused = 0;
  uint64_t grants_failed = 0;
  uint64_t notifications_delivered = 0;
  uint64_t notifications_failed = 0;
  // Blocking LOCKs answered without queueing because of a drain.
  uint64_t drained_blocking_locks = 0;
};

class GatewayActivity {
 public:
  explicit GatewayActivity(const Clock* clock) : clock_(clock) {}

  GatewayActivity(const GatewayActivity&) = delete;
  GatewayActivity& operator=(const GatewayActivity&) = delete;

  // Sets or clears the copy of a drain flag; returns the previous value.
  // Only identities the core knows are set, so the set stays within the
  // core's gateways_max.
  bool SetDraining(const std::string& gateway, bool draining);
  bool IsDraining(const std::string& gateway) const;
  std::vector<std::string> DrainingGateways() const;

  // One request through `gateway` naming `client` ("" = none): marks both
  // seen under one mutex hold and returns whether the identity is draining.
  bool Touch(const std::string& gateway, const std::string& client);
  void TouchGateway(const std::string& gateway);
  // `address`: where the client was seen (SM_NOTIFY source), "" if unknown.
  void TouchClient(const std::string& client, const std::string& address);
  std::optional<int64_t> GatewayLastSeenMs(const std::string& gateway) const;
  std::optional<int64_t> ClientLastActivityMs(const std::string& client) const;
  std::vector<std::string> ClientAddresses(const std::string& client) const;

  uint64_t OpenStream(StreamKind kind, const std::string& gateway,
                      const std::string& instance, const std::string& peer);
  void CloseStream(uint64_t id);
  std::vector<StreamInfo> Streams(const std::string& gateway) const;
  size_t StreamCount(StreamKind kind) const;

  void CountDrainedLock();
  void CountGrantAck(int outcome);         // v1::GrantOutcome value.
  void CountNotificationAck(int outcome);  // v1::NotificationOutcome value.
  DeliveryCounts Deliveries() const;

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators(). Must
  // be placed before interceptors that should see the drained request.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

 private:
  struct ClientActivity {
    int64_t last_ms = 0;
    std::vector<std::string> addresses;
  };
  void EvictOldClients() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TouchGatewayLocked(const std::string& gateway, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TouchClientLocked(const std::string& client, const std::string& address, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> draining_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> gateway_seen_ms_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ClientActivity> clients_ ABSL_GUARDED_BY(mu_);
  absl::btree_map<uint64_t, StreamInfo> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t next_stream_id_ ABSL_GUARDED_BY(mu_) = 1;
  DeliveryCounts deliveries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_ADMIN_ACTIVITY_H_
