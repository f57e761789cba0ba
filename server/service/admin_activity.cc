#include "server/service/admin_activity.h"

#include <algorithm>
#include <utility>

#include <grpcpp/server_context.h>

#include "lockwarden/v1/lock_service.pb.h"
#include "lockwarden/v1/monitor_service.pb.h"

namespace lockwarden::service {

bool GatewayActivity::SetDraining(const std::string& gateway, bool draining) {
  absl::MutexLock lock(&mu_);
  const bool was = draining_.contains(gateway);
  if (draining) {
    draining_.insert(gateway);
  } else {
    draining_.erase(gateway);
  }
  return was;
}

bool GatewayActivity::IsDraining(const std::string& gateway) const {
  absl::MutexLock lock(&mu_);
  return draining_.contains(gateway);
}

std::vector<std::string> GatewayActivity::DrainingGateways() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out(draining_.begin(), draining_.end());
  std::sort(out.begin(), out.end());
  return out;
}

bool GatewayActivity::Touch(const std::string& gateway, const std::string& client) {
  const int64_t now = clock_->NowMs();
  absl::MutexLock lock(&mu_);
  TouchGatewayLocked(gateway, now);
  TouchClientLocked(client, "", now);
  return !draining_.empty() && draining_.contains(gateway);
}

void GatewayActivity::TouchGateway(const std::string& gateway) {
  const int64_t now = clock_->NowMs();
  absl::MutexLock lock(&mu_);
  TouchGatewayLocked(gateway, now);
}

void GatewayActivity::TouchClient(const std::string& client, const std::string& address) {
  const int64_t now = clock_->NowMs();
  absl::MutexLock lock(&mu_);
  TouchClientLocked(client, address, now);
}

void GatewayActivity::TouchGatewayLocked(const std::string& gateway, int64_t now) {
  if (gateway.empty()) return;
  auto it = gateway_seen_ms_.find(gateway);
  if (it != gateway_seen_ms_.end()) {
    it->second = now;
  } else if (gateway_seen_ms_.size() < kActivityGatewaysMax) {
    // The core refuses identities past gateways_max too; a name the core
    // would refuse is simply not tracked.
    gateway_seen_ms_.emplace(gateway, now);
  }
}

void GatewayActivity::TouchClientLocked(const std::string& client, const std::string& address,
                                        int64_t now) {
  if (client.empty()) return;
  auto it = clients_.find(client);
  if (it == clients_.end()) {
    if (clients_.size() >= kActivityClientsMax) EvictOldClients();
    it = clients_.emplace(client, ClientActivity{}).first;
  }
  it->second.last_ms = now;
  if (address.empty()) return;
  std::vector<std::string>& addrs = it->second.addresses;
  // Most recent first, distinct, bounded.
  auto found = std::find(addrs.begin(), addrs.end(), address);
  if (found != addrs.end()) addrs.erase(found);
  addrs.insert(addrs.begin(), address);
  if (addrs.size() > kClientAddressesMax) addrs.resize(kClientAddressesMax);
}

void GatewayActivity::EvictOldClients() {
  // Forget the least recently active tenth: O(n) once per n/10 new clients.
  std::vector<int64_t> times;
  times.reserve(clients_.size());
  for (const auto& [name, a] : clients_) times.push_back(a.last_ms);
  const size_t cut = std::max<size_t>(1, times.size() / 10);
  std::nth_element(times.begin(), times.begin() + (cut - 1), times.end());
  const int64_t threshold = times[cut - 1];
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.last_ms <= threshold) {
      clients_.erase(it++);
    } else {
      ++it;
    }
  }
}

std::optional<int64_t> GatewayActivity::GatewayLastSeenMs(const std::string& gateway) const {
  absl::MutexLock lock(&mu_);
  auto it = gateway_seen_ms_.find(gateway);
  if (it == gateway_seen_ms_.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> GatewayActivity::ClientLastActivityMs(const std::string& client) const {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) return std::nullopt;
  return it->second.last_ms;
}

std::vector<std::string> GatewayActivity::ClientAddresses(const std::string& client) const {
  absl::MutexLock lock(&mu_);
  auto it = clients_.find(client);
  if (it == clients_.end()) return {};
  return it->second.addresses;
}

uint64_t GatewayActivity::OpenStream(StreamKind kind, const std::string& gateway,
                                     const std::string& instance, const std::string& peer) {
  const int64_t now = clock_->NowMs();
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_stream_id_++;
  // Streams are bounded by gRPC's own connection limits; each entry is small.
  streams_.emplace(id, StreamInfo{id, kind, gateway, instance, peer, now});
  if (gateway_seen_ms_.size() < kActivityGatewaysMax || gateway_seen_ms_.contains(gateway)) {
    gateway_seen_ms_[gateway] = now;
  }
  return id;
}

void GatewayActivity::CloseStream(uint64_t id) {
  const int64_t now = clock_->NowMs();
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // A stream's end is the last moment its gateway was known to be there.
  auto seen = gateway_seen_ms_.find(it->second.gateway);
  if (seen != gateway_seen_ms_.end()) seen->second = now;
  streams_.erase(it);
}

std::vector<StreamInfo> GatewayActivity::Streams(const std::string& gateway) const {
  absl::MutexLock lock(&mu_);
  std::vector<StreamInfo> out;
  for (const auto& [id, s] : streams_) {
    if (s.gateway != gateway) continue;
    out.push_back(s);
    if (out.size() >= kStreamsPerGatewayMax) break;
  }
  return out;
}

size_t GatewayActivity::StreamCount(StreamKind kind) const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, s] : streams_) n += s.kind == kind ? 1 : 0;
  return n;
}

void GatewayActivity::CountDrainedLock() {
  absl::MutexLock lock(&mu_);
  ++deliveries_.drained_blocking_locks;
}

void GatewayActivity::CountGrantAck(int outcome) {
  absl::MutexLock lock(&mu_);
  switch (outcome) {
    case v1::GRANT_OUTCOME_DELIVERED: ++deliveries_.grants_delivered; break;
    case v1::GRANT_OUTCOME_REFUSED: ++deliveries_.grants_refused; break;
    case v1::GRANT_OUTCOME_UNDELIVERABLE: ++deliveries_.grants_failed; break;
    default: break;
  }
}

void GatewayActivity::CountNotificationAck(int outcome) {
  absl::MutexLock lock(&mu_);
  switch (outcome) {
    case v1::NOTIFICATION_OUTCOME_DELIVERED: ++deliveries_.notifications_delivered; break;
    case v1::NOTIFICATION_OUTCOME_FAILED:
    case v1::NOTIFICATION_OUTCOME_GAVE_UP: ++deliveries_.notifications_failed; break;
    default: break;
  }
}

DeliveryCounts GatewayActivity::Deliveries() const {
  absl::MutexLock lock(&mu_);
  return deliveries_;
}

namespace {

using grpc::experimental::InterceptionHookPoints;

// Which request an RPC carries; decided once from the method name.
enum class Rpc {
  kOther,
  kTest, kLock, kCancel, kUnlock, kShare, kUnshare, kFreeAll,
  kWatchGrants, kAckGrant, kSession,
  kMon, kUnmon, kUnmonAll, kStat, kNotify, kSimuCrash,
  kWatchNotifications, kAckNotification,
};

Rpc RpcOf(const char* method) {
  if (method == nullptr) return Rpc::kOther;
  static const auto* const kByName = new absl::flat_hash_map<std::string, Rpc>{
      {"/lockwarden.v1.LockService/Test", Rpc::kTest},
      {"/lockwarden.v1.LockService/Lock", Rpc::kLock},
      {"/lockwarden.v1.LockService/Cancel", Rpc::kCancel},
      {"/lockwarden.v1.LockService/Unlock", Rpc::kUnlock},
      {"/lockwarden.v1.LockService/Share", Rpc::kShare},
      {"/lockwarden.v1.LockService/Unshare", Rpc::kUnshare},
      {"/lockwarden.v1.LockService/FreeAll", Rpc::kFreeAll},
      {"/lockwarden.v1.LockService/WatchGrants", Rpc::kWatchGrants},
      {"/lockwarden.v1.LockService/AckGrant", Rpc::kAckGrant},
      {"/lockwarden.v1.LockService/Session", Rpc::kSession},
      {"/lockwarden.v1.MonitorService/Mon", Rpc::kMon},
      {"/lockwarden.v1.MonitorService/Unmon", Rpc::kUnmon},
      {"/lockwarden.v1.MonitorService/UnmonAll", Rpc::kUnmonAll},
      {"/lockwarden.v1.MonitorService/Stat", Rpc::kStat},
      {"/lockwarden.v1.MonitorService/Notify", Rpc::kNotify},
      {"/lockwarden.v1.MonitorService/SimuCrash", Rpc::kSimuCrash},
      {"/lockwarden.v1.MonitorService/WatchNotifications", Rpc::kWatchNotifications},
      {"/lockwarden.v1.MonitorService/AckNotification", Rpc::kAckNotification},
  };
  auto it = kByName->find(method);
  return it == kByName->end() ? Rpc::kOther : it->second;
}

class ActivityInterceptor final : public grpc::experimental::Interceptor {
 public:
  ActivityInterceptor(GatewayActivity* activity, Rpc rpc, std::string peer)
      : activity_(activity), rpc_(rpc), peer_(std::move(peer)) {}

  // The call is over (finished, cancelled or failed): its stream is gone.
  ~ActivityInterceptor() override {
    if (stream_id_ != 0) activity_->CloseStream(stream_id_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() != nullptr) {
      Observe(methods->GetRecvMessage());
    }
    methods->Proceed();
  }

 private:
  // `message` is the decoded request of the RPC named by rpc_ (gRPC hands
  // it over as void*; the cast names its real type).
  void Observe(void* message) {
    switch (rpc_) {
      case Rpc::kLock:
        ObserveLock(static_cast<v1::LockRequest*>(message));
        break;
      case Rpc::kTest: {
        auto* r = static_cast<v1::TestRequest*>(message);
        Seen(r->gateway_id(), r->owner().client_name());
        break;
      }
      case Rpc::kCancel: {
        auto* r = static_cast<v1::CancelRequest*>(message);
        Seen(r->gateway_id(), r->owner().client_name());
        break;
      }
      case Rpc::kUnlock: {
        auto* r = static_cast<v1::UnlockRequest*>(message);
        Seen(r->gateway_id(), r->owner().client_name());
        break;
      }
      case Rpc::kShare: {
        auto* r = static_cast<v1::ShareRequest*>(message);
        Seen(r->gateway_id(), r->owner().client_name());
        break;
      }
      case Rpc::kUnshare: {
        auto* r = static_cast<v1::UnshareRequest*>(message);
        Seen(r->gateway_id(), r->owner().client_name());
        break;
      }
      case Rpc::kFreeAll: {
        auto* r = static_cast<v1::FreeAllRequest*>(message);
        Seen(r->gateway_id(), r->client_name());
        break;
      }
      case Rpc::kSession:
        ObserveSession(static_cast<v1::SessionRequest*>(message));
        break;
      case Rpc::kNotify: {
        auto* r = static_cast<v1::NotifyRequest*>(message);
        activity_->TouchGateway(r->gateway_id());
        // The one request that carries the client's own address (the
        // gateway's gRPC peer is the gateway, not the client).
        activity_->TouchClient(r->mon_name(), r->source_address());
        break;
      }
      case Rpc::kAckGrant: {
        auto* r = static_cast<v1::AckGrantRequest*>(message);
        Seen(r->gateway_id(), "");
        activity_->CountGrantAck(r->outcome());
        break;
      }
      case Rpc::kAckNotification: {
        auto* r = static_cast<v1::AckNotificationRequest*>(message);
        Seen(r->gateway_id(), "");
        activity_->CountNotificationAck(r->outcome());
        break;
      }
      case Rpc::kMon:
        Seen(static_cast<v1::MonRequest*>(message)->gateway_id(), "");
        break;
      case Rpc::kUnmon:
        Seen(static_cast<v1::UnmonRequest*>(message)->gateway_id(), "");
        break;
      case Rpc::kUnmonAll:
        Seen(static_cast<v1::UnmonAllRequest*>(message)->gateway_id(), "");
        break;
      case Rpc::kStat:
        Seen(static_cast<v1::StatRequest*>(message)->gateway_id(), "");
        break;
      case Rpc::kSimuCrash:
        Seen(static_cast<v1::SimuCrashRequest*>(message)->gateway_id(), "");
        break;
      case Rpc::kWatchGrants: {
        auto* r = static_cast<v1::WatchGrantsRequest*>(message);
        if (stream_id_ == 0) {
          stream_id_ = activity_->OpenStream(StreamKind::kGrants, r->gateway_id(),
                                             r->instance_name(), peer_);
        }
        break;
      }
      case Rpc::kWatchNotifications: {
        auto* r = static_cast<v1::WatchNotificationsRequest*>(message);
        if (stream_id_ == 0) {
          stream_id_ = activity_->OpenStream(StreamKind::kNotifications, r->gateway_id(),
                                             r->instance_name(), peer_);
        }
        break;
      }
      case Rpc::kOther:
        break;
    }
  }

  void ObserveLock(v1::LockRequest* r) {
    const bool draining = activity_->Touch(r->gateway_id(), r->owner().client_name());
    // Draining: the core queues no new waiter (it grants at once or answers
    // DENIED); counted here for the metrics.
    if (r->block() && draining) activity_->CountDrainedLock();
  }

  // Each call of a Session message, like its unary form.
  void ObserveSession(v1::SessionRequest* r) {
    for (v1::SessionCall& call : *r->mutable_calls()) {
      std::string gateway;
      switch (call.request_case()) {
        case v1::SessionCall::kLock:
          ObserveLock(call.mutable_lock());
          gateway = call.lock().gateway_id();
          break;
        case v1::SessionCall::kTest:
          gateway = call.test().gateway_id();
          Seen(gateway, call.test().owner().client_name());
          break;
        case v1::SessionCall::kCancel:
          gateway = call.cancel().gateway_id();
          Seen(gateway, call.cancel().owner().client_name());
          break;
        case v1::SessionCall::kUnlock:
          gateway = call.unlock().gateway_id();
          Seen(gateway, call.unlock().owner().client_name());
          break;
        case v1::SessionCall::kShare:
          gateway = call.share().gateway_id();
          Seen(gateway, call.share().owner().client_name());
          break;
        case v1::SessionCall::kUnshare:
          gateway = call.unshare().gateway_id();
          Seen(gateway, call.unshare().owner().client_name());
          break;
        case v1::SessionCall::kFreeAll:
          gateway = call.free_all().gateway_id();
          Seen(gateway, call.free_all().client_name());
          break;
        case v1::SessionCall::kAckGrant:
          gateway = call.ack_grant().gateway_id();
          Seen(gateway, "");
          activity_->CountGrantAck(call.ack_grant().outcome());
          break;
        case v1::SessionCall::REQUEST_NOT_SET:
          break;
      }
      if (stream_id_ == 0 && !gateway.empty()) {
        stream_id_ = activity_->OpenStream(StreamKind::kSession, gateway, "", peer_);
      }
    }
  }

  void Seen(const std::string& gateway, const std::string& client) {
    (void)activity_->Touch(gateway, client);
  }

  GatewayActivity* const activity_;
  const Rpc rpc_;
  const std::string peer_;
  uint64_t stream_id_ = 0;
};

class ActivityInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ActivityInterceptorFactory(GatewayActivity* activity) : activity_(activity) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    const Rpc rpc = RpcOf(info->method());
    if (rpc == Rpc::kOther) return nullptr;  // Admin, health, reflection.
    std::string peer;
    if (info->server_context() != nullptr) peer = info->server_context()->peer();
    return new ActivityInterceptor(activity_, rpc, std::move(peer));
  }

 private:
  GatewayActivity* const activity_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GatewayActivity::NewInterceptorFactory() {
  return std::make_unique<ActivityInterceptorFactory>(this);
}

}  // namespace lockwarden::service
