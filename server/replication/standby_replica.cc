#include "server/replication/standby_replica.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace lockwarden::replication {

absl::StatusOr<ReplicaState> ReplicaState::Load(core::CoreOptions options,
                                                std::map<std::string, std::string> records,
                                                int64_t revision) {
  std::vector<std::pair<std::string, std::string>> flat(records.begin(), records.end());
  absl::StatusOr<core::LockCore> core = core::LockCore::Rebuild(std::move(options), flat);
  if (!core.ok()) return core.status();
  return ReplicaState(*std::move(core), std::move(records), revision);
}

absl::Status ReplicaState::Apply(const std::vector<store::WatchEvent>& events) {
  size_t begin = 0;
  while (begin < events.size()) {
    size_t end = begin + 1;
    while (end < events.size() && events[end].mod_revision == events[begin].mod_revision) {
      ++end;
    }
    if (events[begin].mod_revision > revision_) {
      LW_RETURN_IF_ERROR(ApplyRevision(events, begin, end));
      revision_ = events[begin].mod_revision;
    }
    begin = end;
  }
  return absl::OkStatus();
}

absl::Status ReplicaState::ApplyRevision(const std::vector<store::WatchEvent>& events,
                                         size_t begin, size_t end) {
  std::vector<core::LockCore::RecordChange> changes;
  changes.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    const store::WatchEvent& e = events[i];
    core::LockCore::RecordChange change;
    change.key = e.key;
    auto it = records_.find(e.key);
    if (it != records_.end()) change.previous = it->second;
    if (e.type == store::WatchEvent::Type::kPut) {
      change.value = e.value;
      records_[e.key] = e.value;
    } else {
      if (it == records_.end()) continue;  // Deleting nothing changes nothing.
      records_.erase(it);
    }
    changes.push_back(std::move(change));
  }
  absl::Status s = core_->ApplyRecords(changes);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("replica at revision ", events[begin].mod_revision,
                                               ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<StandbyReplica>> StandbyReplica::Start(
    const store::EtcdStore* store, core::CoreOptions options) {
  const absl::Time start = absl::Now();
  std::map<std::string, std::string> records;
  absl::StatusOr<int64_t> revision =
      store->ScanWithRevision("", [&records](absl::string_view k, absl::string_view v) {
        records.emplace(std::string(k), std::string(v));
        return absl::OkStatus();
      });
  if (!revision.ok()) return revision.status();
  const size_t keys = records.size();
  absl::StatusOr<ReplicaState> state =
      ReplicaState::Load(std::move(options), std::move(records), *revision);
  if (!state.ok()) return state.status();
  std::unique_ptr<StandbyReplica> r(new StandbyReplica(store));
  {
    absl::MutexLock lock(&r->mu_);
    r->state_ = *std::move(state);
  }
  StandbyReplica* raw = r.get();
  auto watch = store->WatchFrom(
      *revision + 1, [raw](const std::vector<store::WatchEvent>& e) { raw->OnEvents(e); },
      [raw](absl::Status why) { raw->OnEnd(std::move(why)); });
  if (!watch.ok()) return watch.status();
  r->watch_ = *std::move(watch);
  LogEvent(LogLevel::kInfo, "replica_loaded",
           {{"keys", keys},
            {"revision", *revision},
            {"ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return r;
}

StandbyReplica::~StandbyReplica() {
  if (watch_ != nullptr) watch_->Cancel();
}

void StandbyReplica::OnEvents(const std::vector<store::WatchEvent>& events) {
  absl::MutexLock lock(&mu_);
  if (!broken_.ok() || !state_.has_value()) return;
  absl::Status s = state_->Apply(events);
  if (!s.ok()) {
    broken_ = s;
    LogEvent(LogLevel::kError, "replica_broken", {{"error", s}});
    return;
  }
  ++revisions_applied_;
}

void StandbyReplica::OnEnd(absl::Status why) {
  absl::MutexLock lock(&mu_);
  if (broken_.ok()) {
    broken_ = absl::UnavailableError(absl::StrCat("replica watch ended: ", why.message()));
    LogEvent(LogLevel::kWarn, "replica_broken", {{"error", broken_}});
  }
}

absl::StatusOr<core::LockCore> StandbyReplica::TakeCaughtUp(absl::Duration timeout) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  // Every commit acknowledged before now is at or below this revision.
  absl::StatusOr<int64_t> target = store_->CurrentRevision();
  if (!target.ok()) return target.status();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!broken_.ok()) return broken_;
      if (!state_.has_value()) return absl::FailedPreconditionError("replica already taken");
    }
    if (watch_->progress_revision() >= *target) break;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "replica: not caught up with revision ", *target, " within ",
          absl::FormatDuration(timeout)));
    }
    (void)watch_->RequestProgress();  // Reconnecting: just poll again.
    absl::SleepFor(kProgressPollInterval);
  }
  watch_->Cancel();
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  const int64_t applied = state_->revision();
  core::LockCore core = std::move(*state_).TakeCore();
  state_.reset();
  if (absl::Status s = core.CheckInvariants(); !s.ok()) {
    return absl::DataLossError(absl::StrCat("replica breaks an invariant: ", s.message()));
  }
  LogEvent(LogLevel::kInfo, "replica_taken",
           {{"target_revision", *target},
            {"applied_revision", applied},
            {"catch_up_ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return core;
}

StandbyReplicaStats StandbyReplica::stats() const {
  absl::MutexLock lock(&mu_);
  StandbyReplicaStats s;
  if (state_.has_value()) {
    s.revision = state_->revision();
    s.records = state_->records().size();
  }
  s.revisions_applied = revisions_applied_;
  s.health = broken_;
  if (watch_ != nullptr) {
    s.caught_up_revision = std::max(s.revision, watch_->progress_revision());
  }
  return s;
}

void StandbyReplica::RequestProgress() {
  if (watch_ != nullptr) (void)watch_->RequestProgress();
}

std::map<std::string, std::string> StandbyReplica::RecordsForTesting() const {
  absl::MutexLock lock(&mu_);
  return state_.has_value() ? state_->records() : std::map<std::string, std::string>();
}

std::map<std::string, std::string> StandbyReplica::CoreSnapshotForTesting() const {
  absl::MutexLock lock(&mu_);
  return state_.has_value() ? state_->core().Snapshot() : std::map<std::string, std::string>();
}

}  // namespace lockwarden::replication
