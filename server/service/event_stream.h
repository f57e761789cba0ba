// EventStream: the server side of WatchGrants and WatchNotifications.
//
// A stream sends, in sequence order, the durable pending events of one
// gateway identity with sequence > the request's after_sequence, then new
// ones as they become durable. At most one write is outstanding; events are
// batched up to kEventBatchMax per message. Events stay pending in the core
// until the gateway acknowledges them (AckGrant / AckNotification), so a
// gateway that reconnects, or a server that restarts, delivers them again.
//
// A snapshot import ends the stream (UNAVAILABLE, Listener::Reset): the
// gateway reconnects and reads the new state's outbox.
//
// Lifetime: gRPC owns the reactor; the runner holds only a weak_ptr to the
// stream's Listener, which the reactor disconnects in OnDone before it is
// deleted.
//
// Thread-safety: Wake() may run on any thread; reactions run on gRPC threads.
#ifndef LOCKWARDEN_SERVER_SERVICE_EVENT_STREAM_H_
#define LOCKWARDEN_SERVER_SERVICE_EVENT_STREAM_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "server/service/convert.h"
#include "server/service/core_runner.h"

namespace lockwarden::service {

inline constexpr size_t kEventBatchMax = 64;

template <typename Response>
class EventStream final : public grpc::ServerWriteReactor<Response> {
 public:
  // Adds `e` to `out` if this stream carries it; returns false otherwise.
  using Fill = std::function<bool(const core::Event& e, Response* out)>;

  EventStream(CoreRunner* runner, std::string gateway, uint64_t after,
              Fill fill)
      : runner_(runner),
        gateway_(std::move(gateway)),
        // A cursor from before a snapshot import restarts at 0.
        cursor_(after < runner->EventResumeFloor() ? 0 : after),
        fill_(std::move(fill)),
        listener_(std::make_shared<Listener>(this)) {
    runner_->AddListener(gateway_, listener_);
    Pump();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        FinishLocked(grpc::Status::CANCELLED);
        return;
      }
      if (end_status_.has_value()) {
        FinishLocked(*end_status_);
        return;
      }
    }
    Pump();
  }

  // Ends the stream with `status` (after the write in flight, if any): the
  // lock state it streamed from was replaced (CoreRunner::ImportState).
  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    if (writing_) {
      end_status_ = status;
      return;
    }
    FinishLocked(status);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    listener_->Detach();
    delete this;
  }

 private:
  class Listener final : public EventListener {
   public:
    explicit Listener(EventStream* stream) : stream_(stream) {}
    void Wake() override {
      absl::MutexLock lock(&mu_);
      if (stream_ != nullptr) stream_->Pump();
    }
    void Reset(const absl::Status& status) override {
      absl::MutexLock lock(&mu_);
      if (stream_ != nullptr) stream_->End(ToGrpcStatus(status));
    }
    void Detach() {
      absl::MutexLock lock(&mu_);
      stream_ = nullptr;
    }

   private:
    absl::Mutex mu_;
    EventStream* stream_ ABSL_GUARDED_BY(mu_);
  };

  void Pump() {
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      response_.Clear();
      uint64_t scanned_to = cursor_;
      Response* out = &response_;
      std::vector<core::Event> events = runner_->DurableEvents(
          gateway_, cursor_, kEventBatchMax,
          [this, out](const core::Event& e) { return fill_(e, out); },
          &scanned_to);
      cursor_ = scanned_to;
      // Nothing to send: wait for Wake(). (Finish is never called from
      // here: Wake() holds the listener's mutex, and OnDone takes it.)
      if (events.empty()) return;
      writing_ = true;
    }
    // Outside mu_: a reaction may run inline and take it.
    this->StartWrite(&response_);
  }

  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }

  CoreRunner* const runner_;
  const std::string gateway_;
  absl::Mutex mu_;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  Response response_;
  const Fill fill_;
  const std::shared_ptr<Listener> listener_;
};

// A stream refused before it starts (invalid request).
template <typename Response>
class FailedStream final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit FailedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_EVENT_STREAM_H_
