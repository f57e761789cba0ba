// MonitorService (lockwarden.v1): the durable replacement for rpc.statd.
// See proto/lockwarden/v1/monitor_service.proto.
//
// Per-notification delivery status (attempts, last error) reported with
// AckNotification(FAILED) is kept in memory, bounded by
// kDeliveryStatusEntriesMax: it is diagnostic; the events themselves are
// durable in the core until DELIVERED or GAVE_UP.
//
// Thread-safety: handlers run concurrently; delivery_ is guarded by mu_.
#ifndef LOCKWARDEN_SERVER_SERVICE_MONITOR_SERVICE_H_
#define LOCKWARDEN_SERVER_SERVICE_MONITOR_SERVICE_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"
#include "server/service/core_runner.h"

namespace lockwarden::service {

inline constexpr size_t kDeliveryStatusEntriesMax = 100'000;

struct DeliveryStatus {
  uint32_t attempts = 0;
  std::string last_error;
};

class MonitorServiceImpl final : public v1::MonitorService::CallbackService {
 public:
  explicit MonitorServiceImpl(CoreRunner* runner) : runner_(runner) {}

  grpc::ServerUnaryReactor* Mon(grpc::CallbackServerContext* ctx,
                                const v1::MonRequest* request,
                                v1::MonResponse* response) override;
  grpc::ServerUnaryReactor* Unmon(grpc::CallbackServerContext* ctx,
                                  const v1::UnmonRequest* request,
                                  v1::UnmonResponse* response) override;
  grpc::ServerUnaryReactor* UnmonAll(grpc::CallbackServerContext* ctx,
                                     const v1::UnmonAllRequest* request,
                                     v1::UnmonAllResponse* response) override;
  grpc::ServerUnaryReactor* Stat(grpc::CallbackServerContext* ctx,
                                 const v1::StatRequest* request,
                                 v1::StatResponse* response) override;
  grpc::ServerUnaryReactor* Notify(grpc::CallbackServerContext* ctx,
                                   const v1::NotifyRequest* request,
                                   v1::NotifyResponse* response) override;
  grpc::ServerUnaryReactor* SimuCrash(grpc::CallbackServerContext* ctx,
                                      const v1::SimuCrashRequest* request,
                                      v1::SimuCrashResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchNotificationsResponse>* WatchNotifications(
      grpc::CallbackServerContext* ctx,
      const v1::WatchNotificationsRequest* request) override;
  grpc::ServerUnaryReactor* AckNotification(
      grpc::CallbackServerContext* ctx, const v1::AckNotificationRequest* request,
      v1::AckNotificationResponse* response) override;

  // Last reported delivery status of a pending notification, if any.
  bool GetDeliveryStatus(const std::string& gateway, uint64_t sequence,
                         DeliveryStatus* out) const;

 private:
  void RecordFailure(const v1::AckNotificationRequest& request);

  CoreRunner* const runner_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::pair<std::string, uint64_t>, DeliveryStatus> delivery_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, uint64_t>> delivery_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_MONITOR_SERVICE_H_
