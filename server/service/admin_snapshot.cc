// AdminService.ExportSnapshot: a consistent snapshot of the whole lock state
// as the snapshot.proto stream (header, then entry chunks of <= 1 MiB).
//
// Consistency: the core's Snapshot() (every record the live state persists,
// i.e. the store's content) is taken in one ReadDurable under the core's
// mutex, and streaming starts only once everything it observed is durable.
// The copy lives in memory while it streams (bounded by the state size);
// one export at a time (RESOURCE_EXHAUSTED otherwise).
#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/service/admin_service.h"
#include "server/service/convert.h"
#include "server/service/snapshot.h"

namespace lockwarden::service {
namespace {

class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportSnapshotResponse> {
 public:
  explicit ExportReactor(std::atomic<bool>* running) : running_(running) {}

  // Called once with the snapshot (or an error) when it is durable.
  void Begin(absl::Status status, std::map<std::string, std::string> entries,
             v1::SnapshotHeader header) {
    if (!status.ok()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    entries_ = std::move(entries);
    it_ = entries_.begin();
    *response_.mutable_chunk()->mutable_header() = std::move(header);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    if (it_ == entries_.end()) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    NextSnapshotChunk(entries_, &it_, response_.mutable_chunk());
    StartWrite(&response_);
  }

  void OnDone() override {
    running_->store(false);
    delete this;
  }

 private:
  std::atomic<bool>* const running_;
  std::map<std::string, std::string> entries_;
  std::map<std::string, std::string>::const_iterator it_;
  v1::ExportSnapshotResponse response_;
};

class RefusedExport final : public grpc::ServerWriteReactor<v1::ExportSnapshotResponse> {
 public:
  explicit RefusedExport(const grpc::Status& s) { Finish(s); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::ExportSnapshotResponse>* AdminServiceImpl::ExportSnapshot(
    grpc::CallbackServerContext* ctx, const v1::ExportSnapshotRequest* request) {
  if (export_running_.exchange(true)) {
    return new RefusedExport(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                          "another snapshot export is running"));
  }
  LogEvent(LogLevel::kInfo, "admin_audit",
           {{"call", "ExportSnapshot"},
            {"caller", auth_.CallerIdentity(*ctx)},
            {"reason", request->reason()}});
  auto* reactor = new ExportReactor(&export_running_);
  auto entries = std::make_shared<std::map<std::string, std::string>>();
  auto header = std::make_shared<v1::SnapshotHeader>();
  const uint64_t fencing = store_->FencingToken();
  const std::string backend = store_->BackendName();
  const int64_t now_ms = clock_->NowMs();
  const std::string version = info_.version;
  runner_->ReadDurable(
      [&](const core::LockCore& core, int64_t) { *entries = core.Snapshot(); },
      [reactor, entries, header, fencing, backend, now_ms, version](absl::Status s) {
        if (s.ok()) {
          *header = MakeSnapshotHeader(*entries);
          header->set_fencing_token(fencing);
          SetTimestampMs(now_ms, header->mutable_created_at());
          header->set_server_version(version);
          header->set_source_backend(backend.find("rocksdb") != std::string::npos
                                         ? v1::STORE_BACKEND_ROCKSDB
                                     : backend.find("etcd") != std::string::npos
                                         ? v1::STORE_BACKEND_ETCD
                                         : v1::STORE_BACKEND_MEMORY);
        }
        reactor->Begin(s, std::move(*entries), std::move(*header));
      });
  return reactor;
}

}  // namespace lockwarden::service
