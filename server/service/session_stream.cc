#include "server/service/session_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace {

using Case = v1::SessionCall::RequestCase;

template <typename Request>
absl::Status AddCommand(const Request& request, std::vector<BatchItem>* items) {
  auto cmd = ToCommand(request);
  if (!cmd.ok()) return cmd.status();
  items->emplace_back(std::in_place_type<core::Command>, *std::move(cmd));
  return absl::OkStatus();
}

// Appends the call's core item; an error names the bad field.
absl::Status AddItem(const v1::SessionCall& c, std::vector<BatchItem>* items) {
  switch (c.request_case()) {
    case Case::kTest: {
      auto query = ToQuery(c.test());
      if (!query.ok()) return query.status();
      items->emplace_back(std::in_place_type<core::TestQuery>,
                          *std::move(query));
      return absl::OkStatus();
    }
    case Case::kLock:
      return AddCommand(c.lock(), items);
    case Case::kCancel:
      return AddCommand(c.cancel(), items);
    case Case::kUnlock:
      return AddCommand(c.unlock(), items);
    case Case::kShare:
      return AddCommand(c.share(), items);
    case Case::kUnshare:
      return AddCommand(c.unshare(), items);
    case Case::kFreeAll:
      return AddCommand(c.free_all(), items);
    case Case::kAckGrant:
      return AddCommand(c.ack_grant(), items);
    case Case::REQUEST_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("request: no call set (or unknown type)");
}

v1::SessionResult ErrorResult(uint64_t call_id, const absl::Status& status) {
  v1::SessionResult r;
  r.set_call_id(call_id);
  const grpc::Status g = ToGrpcStatus(status);
  r.set_code(static_cast<int32_t>(g.error_code()));
  r.set_message(g.error_message());
  return r;
}

v1::SessionResult ToResult(uint64_t call_id, Case kind,
                           const absl::StatusOr<core::Reply>& reply) {
  if (!reply.ok()) return ErrorResult(call_id, reply.status());
  v1::SessionResult r;
  r.set_call_id(call_id);
  switch (kind) {
    case Case::kTest:
      FillResponse(*reply, r.mutable_test());
      break;
    case Case::kLock:
      FillResponse(*reply, r.mutable_lock());
      break;
    case Case::kCancel:
      FillResponse(*reply, r.mutable_cancel());
      break;
    case Case::kUnlock:
      FillResponse(*reply, r.mutable_unlock());
      break;
    case Case::kShare:
      FillResponse(*reply, r.mutable_share());
      break;
    case Case::kUnshare:
      FillResponse(*reply, r.mutable_unshare());
      break;
    case Case::kFreeAll:
      FillResponse(*reply, r.mutable_free_all());
      break;
    case Case::kAckGrant:
      FillResponse(*reply, r.mutable_ack_grant());
      break;
    case Case::REQUEST_NOT_SET:
      break;  // Rejected before submission; never reaches here.
  }
  return r;
}

}  // namespace

// Forwards the runner's Reset() to the registry while it exists.
class SessionRegistry::ResetHook final : public EventListener {
 public:
  explicit ResetHook(SessionRegistry* registry) : registry_(registry) {}
  void Wake() override {}
  void Reset(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (registry_ != nullptr) registry_->ResetAll(status);
  }
  void Detach() {
    absl::MutexLock lock(&mu_);
    registry_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  SessionRegistry* registry_ ABSL_GUARDED_BY(mu_);
};

SessionRegistry::~SessionRegistry() {
  std::shared_ptr<ResetHook> hook;
  {
    absl::MutexLock lock(&mu_);
    hook = hook_;
  }
  // Outside mu_: Reset() holds the hook's lock while it takes mu_.
  if (hook != nullptr) hook->Detach();
}

void SessionRegistry::CloseAll() {
  EndAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "lock service is shutting down"),
         /*close_registry=*/true);
}

void SessionRegistry::ResetAll(const absl::Status& status) {
  EndAll(ToGrpcStatus(status), /*close_registry=*/false);
}

void SessionRegistry::EndAll(const grpc::Status& status, bool close_registry) {
  std::vector<SessionStream*> live;
  {
    absl::MutexLock lock(&mu_);
    if (close_registry) closed_ = true;
    for (SessionStream* s : sessions_) {
      // A session whose last reference is going is removing itself.
      absl::MutexLock session_lock(&s->mu_);
      if (s->TryRefLocked()) live.push_back(s);
    }
  }
  for (SessionStream* s : live) {
    s->Close(status);
    s->Unref();
  }
}

bool SessionRegistry::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

bool SessionRegistry::Add(SessionStream* s, CoreRunner* runner) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  if (hook_ == nullptr) {
    hook_ = std::make_shared<ResetHook>(this);
    runner->AddResetListener(hook_);
  }
  sessions_.insert(s);
  return true;
}

void SessionRegistry::Remove(SessionStream* s) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(s);
}

SessionStream::SessionStream(CoreRunner* runner, SessionRegistry* registry)
    : runner_(runner), registry_(registry) {
  const bool added = registry_->Add(this, runner_);
  absl::MutexLock lock(&mu_);
  if (!added) {
    FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "lock service is shutting down"));
    return;
  }
  NextLocked();
}

bool SessionStream::TryRefLocked() {
  if (refs_ == 0) return false;
  ++refs_;
  return true;
}

void SessionStream::Unref() {
  {
    absl::MutexLock lock(&mu_);
    if (--refs_ > 0) return;
  }
  registry_->Remove(this);
  delete this;
}

void SessionStream::OnReadDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {
      // The gateway closed its side (or the call broke): answer what is in
      // flight, then finish.
      read_closed_ = true;
      NextLocked();
      return;
    }
    if (static_cast<size_t>(request_.calls_size()) >
        kSessionCallsPerMessageMax) {
      FinishLocked(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("SessionRequest with ", request_.calls_size(),
                       " calls; at most ", kSessionCallsPerMessageMax)));
      return;
    }
    outstanding_ += static_cast<size_t>(request_.calls_size());
    ++refs_;  // For the batch; Submit or its completion drops it.
    to_submit_.emplace_back();
    to_submit_.back().Swap(&request_);
    // Read the next message while this one is applied and committed.
    NextLocked();
    // The next read's reaction may run on another executor thread before
    // this one submits: whoever finds no submitter submits every queued
    // message, in read order, so a gateway's calls apply in its order.
    if (submitting_) return;
    submitting_ = true;
  }
  // Only the apply (in order) is serialised here; the commit is driven once
  // the queue is drained, so messages that arrive during an fsync are
  // applied at once and join the next group commit instead of each waiting
  // for a commit of its own (one gateway is one session).
  CoreRunner* const runner = runner_;
  int owed_drives = 0;
  for (;;) {
    v1::SessionRequest request;
    {
      absl::MutexLock lock(&mu_);
      if (to_submit_.empty()) {
        submitting_ = false;
        break;
      }
      request.Swap(&to_submit_.front());
      to_submit_.pop_front();
    }
    // Outside mu_: the batch may complete inline (reads of durable state).
    if (Submit(request)) ++owed_drives;
  }
  // The first commits here if no commit is in progress; the pipeline waits
  // for all of them before it takes these batches itself.
  for (int i = 0; i < owed_drives; ++i) runner->DriveCommits();
}

bool SessionStream::Submit(const v1::SessionRequest& request) {
  std::vector<BatchItem> items;
  items.reserve(request.calls_size());
  // (call_id, type) of each submitted item, in item order.
  std::vector<std::pair<uint64_t, Case>> ids;
  ids.reserve(request.calls_size());
  std::vector<v1::SessionResult> rejected;
  for (const v1::SessionCall& c : request.calls()) {
    absl::Status bad = AddItem(c, &items);
    if (!bad.ok()) {
      rejected.push_back(ErrorResult(c.call_id(), bad));
      continue;
    }
    ids.emplace_back(c.call_id(), c.request_case());
  }
  if (!rejected.empty()) {
    const size_t n = rejected.size();
    Deliver(std::move(rejected), n);
  }
  if (items.empty()) {
    Unref();
    return false;
  }
  return runner_->SubmitBatch(
      std::move(items),
      [this,
       ids = std::move(ids)](std::vector<absl::StatusOr<core::Reply>> replies) {
        std::vector<v1::SessionResult> results;
        results.reserve(replies.size());
        for (size_t i = 0; i < replies.size(); ++i) {
          results.push_back(ToResult(ids[i].first, ids[i].second, replies[i]));
        }
        Deliver(std::move(results), replies.size());
        Unref();
      },
      /*drive=*/false);  // OnReadDone drives once its queue is drained.
}

void SessionStream::Deliver(std::vector<v1::SessionResult> results,
                            size_t answered) {
  absl::MutexLock lock(&mu_);
  outstanding_ -= answered;
  if (finished_) return;  // The gateway resends on its next stream.
  if (outbox_.empty()) {
    outbox_ = std::move(results);
  } else {
    for (v1::SessionResult& r : results) outbox_.push_back(std::move(r));
  }
  NextLocked();
}

void SessionStream::Close(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!closing_) close_status_ = status;
  closing_ = true;
  NextLocked();
}

void SessionStream::NextLocked() {
  if (finished_) return;
  if (!writing_ && !outbox_.empty()) {
    response_.Clear();
    auto* results = response_.mutable_results();
    results->Reserve(static_cast<int>(outbox_.size()));
    for (v1::SessionResult& r : outbox_) results->Add(std::move(r));
    outbox_.clear();
    writing_ = true;
    StartWrite(&response_);
  }
  const bool stop_reading = read_closed_ || closing_;
  if (!reading_ && !stop_reading &&
      outstanding_ < kSessionOutstandingCallsMax) {
    reading_ = true;
    StartRead(&request_);
  }
  if (stop_reading && outstanding_ == 0 && outbox_.empty() && !writing_) {
    FinishLocked(closing_ ? close_status_ : grpc::Status::OK);
  }
}

void SessionStream::FinishLocked(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  Finish(status);
}

void SessionStream::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                              "session stream broke while writing"));
    return;
  }
  NextLocked();
}

void SessionStream::OnCancel() {
  absl::MutexLock lock(&mu_);
  FinishLocked(grpc::Status::CANCELLED);
}

void SessionStream::OnDone() { Unref(); }

}  // namespace lockwarden::service
