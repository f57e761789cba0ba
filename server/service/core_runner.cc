#include "server/service/core_runner.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace {

uint64_t MaxSequence(const std::vector<core::Event>& events) {
  uint64_t max = 0;
  for (const core::Event& e : events) max = std::max(max, e.sequence);
  return max;
}

}  // namespace

absl::Status InterruptedImportError(const core::ImportMarker& m) {
  return absl::UnavailableError(absl::StrCat(
      "not serving: the store holds an interrupted snapshot import (",
      m.key_count, " keys, started at ", m.started_ms, " ms, ", m.source,
      "); finish it with `lockwardenctl snapshot import --force --file FILE` or "
      "abandon it with `lockwardenctl snapshot import --abandon` "
      "(docs/operations.md)"));
}

CoreRunner::CoreRunner(core::LockCore core, store::CommitPipeline* pipeline,
                       const Clock* clock)
    : pipeline_(pipeline),
      clock_(clock),
      core_options_(core.options()),
      core_(std::move(core)) {
  absl::MutexLock lock(&mu_);
  // Everything loaded from the store is durable, events included.
  durable_event_seq_ = core_.Counters().next_event_sequence;
  next_deadline_ms_ = core_.NextDeadlineMs();
  if (const auto& m = core_.interrupted_import()) {
    LogEvent(LogLevel::kError, "snapshot_import_interrupted_not_serving",
             {{"error", InterruptedImportError(*m)}});
  }
}

CoreRunner::~CoreRunner() { Stop(); }

void CoreRunner::Start() {
  absl::MutexLock lock(&mu_);
  if (tick_thread_.joinable()) return;
  stopping_ = false;
  tick_thread_ = std::thread([this] { TickLoop(); });
}

void CoreRunner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    tick_cv_.SignalAll();
  }
  if (tick_thread_.joinable()) tick_thread_.join();
}

void CoreRunner::Submit(core::Command cmd, Done done) {
  // Reserve before applying: a reserved enqueue is never refused, so the core
  // never moves ahead of a delta that was not queued.
  absl::StatusOr<store::CommitPipeline::Slot> slot = pipeline_->ReserveSlot();
  if (!slot.ok()) {
    done(slot.status());
    return;
  }
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    refused = RefusalLocked();
    if (refused.ok()) refused = ApplyAndEnqueue(cmd, *std::move(slot), done);
  }
  // Callbacks run outside mu_ so that they may call back into the runner.
  if (!refused.ok()) {
    done(refused);
    return;
  }
  pipeline_->Drive();  // Commits here if the pipeline is idle.
}

absl::Status CoreRunner::RefusalLocked() const {
  if (!broken_.ok()) {
    return absl::UnavailableError(
        absl::StrCat("lock service stopped acknowledging mutations after a "
                     "store failure: ",
                     broken_.message()));
  }
  if (stopping_) return absl::UnavailableError("lock service is shutting down");
  if (importing_) {
    return absl::UnavailableError(
        "a snapshot import is replacing the lock state; retry shortly");
  }
  if (const auto& m = core_.interrupted_import()) return InterruptedImportError(*m);
  return absl::OkStatus();
}

void CoreRunner::NoteDeadline(int64_t now) {
  // Never tick more often than every kTickMinIntervalMs.
  const int64_t deadline =
      std::max(core_.NextDeadlineMs(), now + kTickMinIntervalMs);
  if (deadline < next_deadline_ms_) tick_cv_.Signal();
  next_deadline_ms_ = deadline;
}

void CoreRunner::DriveCommits() { pipeline_->Drive(); }

bool CoreRunner::SubmitBatch(std::vector<BatchItem> items, BatchDone done,
                             bool drive) {
  auto fail_all = [&](const absl::Status& s) {
    done(std::vector<absl::StatusOr<core::Reply>>(items.size(), s));
  };
  if (items.size() > kBatchItemsMax) {
    fail_all(absl::InvalidArgumentError(absl::StrCat(
        "batch of ", items.size(), " items exceeds ", kBatchItemsMax)));
    return false;
  }
  // One reservation for the whole batch (see CommitPipeline::EnqueueAll).
  absl::StatusOr<store::CommitPipeline::Slot> slot = pipeline_->ReserveSlot();
  if (!slot.ok()) {
    fail_all(slot.status());
    return false;
  }
  absl::Status refused;
  std::optional<std::vector<absl::StatusOr<core::Reply>>> answer_now;
  {
    absl::MutexLock lock(&mu_);
    refused = RefusalLocked();
    if (refused.ok()) {
      refused = ApplyBatchAndEnqueue(items, *std::move(slot), done, &answer_now);
    }
  }
  // Callbacks run outside mu_ so that they may call back into the runner.
  if (!refused.ok()) {
    fail_all(refused);
  } else if (answer_now.has_value()) {
    done(*std::move(answer_now));
  } else if (drive) {
    pipeline_->Drive();  // Commits here if the pipeline is idle.
  } else {
    return true;  // The caller owes the Drive().
  }
  return false;
}

absl::Status CoreRunner::ApplyBatchAndEnqueue(
    std::vector<BatchItem>& items, store::CommitPipeline::Slot slot,
    BatchDone& done,
    std::optional<std::vector<absl::StatusOr<core::Reply>>>* answer_now) {
  const int64_t now = clock_->NowMs();
  auto replies = std::make_shared<std::vector<absl::StatusOr<core::Reply>>>();
  replies->reserve(items.size());
  auto events = std::make_shared<std::vector<core::Event>>();
  std::vector<Delta> deltas;
  deltas.reserve(items.size());
  bool mutated = false;
  for (BatchItem& item : items) {
    if (const auto* query = std::get_if<core::TestQuery>(&item)) {
      replies->push_back(core_.Test(*query, now));
      continue;
    }
    core::Effects effects = core_.Apply(std::get<core::Command>(item), now);
    mutated = true;
    if (absl::Status invalid = ReplyError(effects.reply); !invalid.ok()) {
      replies->push_back(invalid);
    } else {
      replies->push_back(std::move(effects.reply));
    }
    for (core::Event& e : effects.events) events->push_back(std::move(e));
    deltas.push_back(std::move(effects.delta));
  }
  if (mutated) {
    ++applied_seq_;
    NoteDeadline(now);
  } else if (durable_seq_ >= applied_seq_) {
    // Only reads, and all they saw is durable: the caller answers at once.
    *answer_now = std::move(*replies);
    return absl::OkStatus();
  }
  // Reads wait for the barrier of everything applied before them.
  const uint64_t apply_seq = applied_seq_;
  absl::Status enqueued = pipeline_->EnqueueAll(
      std::move(slot), std::move(deltas),
      [this, apply_seq, replies, events, done](absl::Status s) {
        OnCommitted(apply_seq, s, *events);
        if (!s.ok()) {
          done(std::vector<absl::StatusOr<core::Reply>>(replies->size(), s));
          return;
        }
        done(std::move(*replies));
      },
      /*will_drive=*/true);
  if (enqueued.ok()) return absl::OkStatus();
  if (!mutated) return enqueued;
  // As in ApplyAndEnqueue: the core moved ahead of a delta it cannot store.
  broken_ = enqueued;
  LogEvent(LogLevel::kError, "oversize_delta_stop_acknowledging",
           {{"error", enqueued}});
  return absl::UnavailableError(absl::StrCat(
      "mutation too large for one durable commit: ", enqueued.message()));
}

absl::Status CoreRunner::ApplyAndEnqueue(const core::Command& cmd,
                                         store::CommitPipeline::Slot slot,
                                         Done& done) {
  const int64_t now = clock_->NowMs();
  core::Effects effects = core_.Apply(cmd, now);
  const uint64_t apply_seq = ++applied_seq_;
  NoteDeadline(now);

  auto reply = std::make_shared<core::Reply>(std::move(effects.reply));
  auto events =
      std::make_shared<std::vector<core::Event>>(std::move(effects.events));
  std::vector<Delta> deltas;
  deltas.push_back(std::move(effects.delta));
  absl::Status enqueued = pipeline_->EnqueueAll(
      std::move(slot), std::move(deltas),
      [this, apply_seq, reply, events, done](absl::Status s) {
        OnCommitted(apply_seq, s, *events);
        if (!s.ok()) {
          done(s);
          return;
        }
        if (absl::Status invalid = ReplyError(*reply); !invalid.ok()) {
          done(invalid);
          return;
        }
        done(*reply);
      },
      /*will_drive=*/true);
  if (enqueued.ok()) return absl::OkStatus();
  // Only a delta that alone exceeds the store's limits is refused here. The
  // core already applied it, so its state is ahead of the store: stop.
  broken_ = enqueued;
  LogEvent(LogLevel::kError, "oversize_delta_stop_acknowledging",
           {{"error", enqueued}});
  return absl::UnavailableError(absl::StrCat(
      "mutation too large for one durable commit: ", enqueued.message()));
}

void CoreRunner::OnCommitted(uint64_t apply_seq, const absl::Status& status,
                             const std::vector<core::Event>& events) {
  if (!status.ok()) {
    Break(status);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    durable_seq_ = std::max(durable_seq_, apply_seq);
    durable_event_seq_ = std::max(durable_event_seq_, MaxSequence(events));
  }
  if (!events.empty()) WakeListeners(events);
}

void CoreRunner::Break(const absl::Status& status) {
  std::function<void(bool)> cb;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return;
    broken_ = status;
    cb = health_cb_;
  }
  LogEvent(LogLevel::kError, "store_failed_stop_acknowledging",
           {{"error", status}});
  if (cb) cb(false);
}

void CoreRunner::ReadDurable(
    absl::FunctionRef<void(const core::LockCore&, int64_t now_ms)> read,
    std::function<void(absl::Status)> done) {
  bool wait = false;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) {
      refused = absl::UnavailableError(absl::StrCat(
          "lock service state is not durable after a store failure: ",
          broken_.message()));
    } else {
      refused = RefusalLocked();
    }
    if (refused.ok()) {
      read(core_, clock_->NowMs());
      wait = durable_seq_ < applied_seq_;
    }
  }
  // Callbacks run outside mu_ (they may take their stream's lock).
  if (!refused.ok()) {
    done(refused);
    return;
  }
  if (!wait) {
    done(absl::OkStatus());
    return;
  }
  // An empty delta completes after every delta queued before it: a barrier.
  absl::Status s = pipeline_->Enqueue(Delta(), done);
  if (!s.ok()) done(s);
}

absl::Status CoreRunner::ReadNow(
    absl::FunctionRef<void(const core::LockCore&, int64_t now_ms)> read) const {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "lock service state is not durable after a store failure: ",
        broken_.message()));
  }
  read(core_, clock_->NowMs());
  return absl::OkStatus();
}

std::vector<core::Event> CoreRunner::DurableEvents(const std::string& gateway,
                                                   uint64_t after, size_t limit,
                                                   const EventFilter& filter,
                                                   uint64_t* scanned_to) const {
  constexpr size_t kScanChunk = 256;
  std::vector<core::Event> out;
  absl::MutexLock lock(&mu_);
  uint64_t cursor = after;
  while (out.size() < limit) {
    std::vector<core::Event> chunk = core_.PendingEvents(gateway, cursor, kScanChunk);
    if (chunk.empty()) break;
    bool past_durable = false;
    for (core::Event& e : chunk) {
      if (e.sequence > durable_event_seq_) {
        past_durable = true;
        break;
      }
      cursor = e.sequence;
      if (filter(e)) {
        out.push_back(std::move(e));
        if (out.size() >= limit) break;
      }
    }
    if (past_durable || chunk.size() < kScanChunk) break;
  }
  *scanned_to = cursor;
  return out;
}

void CoreRunner::AddListener(const std::string& gateway,
                             std::weak_ptr<EventListener> l) {
  absl::MutexLock lock(&listeners_mu_);
  auto& list = listeners_[gateway];
  // Drop listeners whose streams ended.
  list.erase(std::remove_if(list.begin(), list.end(),
                            [](const auto& w) { return w.expired(); }),
             list.end());
  list.push_back(std::move(l));
}

void CoreRunner::AddResetListener(std::weak_ptr<EventListener> l) {
  absl::MutexLock lock(&listeners_mu_);
  reset_listeners_.erase(std::remove_if(reset_listeners_.begin(), reset_listeners_.end(),
                                        [](const auto& w) { return w.expired(); }),
                         reset_listeners_.end());
  reset_listeners_.push_back(std::move(l));
}

void CoreRunner::WakeListeners(const std::vector<core::Event>& events) {
  std::vector<std::shared_ptr<EventListener>> wake;
  {
    absl::MutexLock lock(&listeners_mu_);
    std::string last;
    for (const core::Event& e : events) {
      if (e.gateway == last) continue;
      last = e.gateway;
      auto it = listeners_.find(e.gateway);
      if (it == listeners_.end()) continue;
      for (const auto& w : it->second) {
        if (auto l = w.lock()) wake.push_back(std::move(l));
      }
    }
  }
  for (const auto& l : wake) l->Wake();
}

absl::Status CoreRunner::Health() const {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (stopping_) return absl::UnavailableError("shutting down");
  // A running import is not a health problem (it ends by itself); an
  // interrupted one is, until an operator finishes or abandons it.
  if (const auto& m = core_.interrupted_import()) return InterruptedImportError(*m);
  return absl::OkStatus();
}

bool CoreRunner::InterruptedImportOnly() const {
  absl::MutexLock lock(&mu_);
  return broken_.ok() && !stopping_ && core_.interrupted_import().has_value();
}

void CoreRunner::SetHealthCallback(std::function<void(bool serving)> cb) {
  absl::MutexLock lock(&mu_);
  health_cb_ = std::move(cb);
}

void CoreRunner::TickLoop() {
  for (;;) {
    int64_t wait_ms;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const int64_t now = clock_->NowMs();
      if (next_deadline_ms_ > now) {
        wait_ms = std::min<int64_t>(next_deadline_ms_ - now, kTickMaxSleepMs);
        tick_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(wait_ms));
        continue;
      }
      if (!broken_.ok() || importing_ || core_.interrupted_import()) {
        // Nothing can be committed now; sleep until stopped (or the import
        // is over: it lowers next_deadline_ms_ and signals).
        tick_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(kTickMaxSleepMs));
        continue;
      }
      // Claim this deadline so the loop does not resubmit while it commits.
      next_deadline_ms_ = std::numeric_limits<int64_t>::max();
    }
    Submit(core::TickCmd{}, [](absl::StatusOr<core::Reply> r) {
      if (!r.ok()) {
        LogEvent(LogLevel::kWarn, "tick_failed", {{"error", r.status()}});
      }
    });
    absl::MutexLock lock(&mu_);
    if (next_deadline_ms_ == std::numeric_limits<int64_t>::max()) {
      // The tick was refused before it applied (queue full): retry later.
      next_deadline_ms_ = clock_->NowMs() + kTickMaxSleepMs;
    }
  }
}

}  // namespace lockwarden::service
