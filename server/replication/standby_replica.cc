#include "server/replication/standby_replica.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace lockwarden::replication {

absl::StatusOr<ReplicaState> ReplicaState::Load(
    core::CoreOptions options,
    const std::vector<std::pair<std::string, std::string>>& records,
    int64_t revision) {
  absl::StatusOr<core::LockCore> core =
      core::LockCore::Rebuild(std::move(options), records);
  if (!core.ok()) return core.status();
  return ReplicaState(*std::move(core), revision);
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
  // Key -> its change. etcd refuses a Txn that touches a key twice, so
  // this only matters for a store that does not.
  absl::flat_hash_map<absl::string_view, size_t> by_key;
  by_key.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    const store::WatchEvent& e = events[i];
    const bool put = e.type == store::WatchEvent::Type::kPut;
    auto [slot, first] = by_key.try_emplace(e.key, changes.size());
    if (first) {
      core::LockCore::RecordChange change;
      change.key = e.key;
      if (e.prev_value.has_value()) {
        change.previous = *e.prev_value;
      } else if (!put || e.create_revision != e.mod_revision) {
        // An update or delete whose previous value etcd no longer has: the
        // core cannot tell what to take out (a lock's file is in it).
        return absl::AbortedError(absl::StrCat(
            "replica at revision ", e.mod_revision, ": ",
            put ? "update" : "delete", " of '", absl::CEscape(e.key),
            "' without its previous value (compacted in etcd?)"));
      }
      changes.push_back(std::move(change));
    }
    // A later event of the same key in this revision replaced the value;
    // the previous value stays the one before the revision.
    core::LockCore::RecordChange& change = changes[slot->second];
    if (put) {
      change.value = e.value;
    } else {
      change.value.reset();
    }
  }
  // Created and deleted within the revision: nothing changed.
  changes.erase(std::remove_if(changes.begin(), changes.end(),
                               [](const core::LockCore::RecordChange& c) {
                                 return !c.previous.has_value() &&
                                        !c.value.has_value();
                               }),
                changes.end());
  if (changes.empty()) return absl::OkStatus();
  absl::Status s = core_->ApplyRecords(changes);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("replica at revision ", events[begin].mod_revision,
                                               ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplicaState> StandbyReplica::LoadFromStore(
    const store::EtcdStore* store, const core::CoreOptions& options,
    size_t* records) {
  std::vector<std::pair<std::string, std::string>> scanned;
  absl::StatusOr<int64_t> revision = store->ScanWithRevision(
      "", [&scanned](absl::string_view k, absl::string_view v) {
        scanned.emplace_back(std::string(k), std::string(v));
        return absl::OkStatus();
      });
  if (!revision.ok()) return revision.status();
  *records = scanned.size();
  // `scanned` is freed on return: the core is the only copy kept.
  return ReplicaState::Load(options, scanned, *revision);
}

absl::StatusOr<std::unique_ptr<StandbyReplica>> StandbyReplica::Start(
    const store::EtcdStore* store, core::CoreOptions options) {
  return StartForTesting(store, std::move(options), nullptr);
}

absl::StatusOr<std::unique_ptr<StandbyReplica>> StandbyReplica::StartForTesting(
    const store::EtcdStore* store, core::CoreOptions options,
    const std::function<void(int64_t loaded_revision)>& after_load) {
  const absl::Time start = absl::Now();
  size_t keys = 0;
  absl::StatusOr<ReplicaState> state = LoadFromStore(store, options, &keys);
  if (!state.ok()) return state.status();
  const int64_t revision = state->revision();
  std::unique_ptr<StandbyReplica> r(
      new StandbyReplica(store, std::move(options)));
  {
    absl::MutexLock lock(&r->mu_);
    r->state_ = *std::move(state);
    r->records_loaded_ = keys;
  }
  if (after_load) after_load(revision);
  StandbyReplica* raw = r.get();
  auto watch = store->WatchFrom(
      revision + 1,
      [raw](const std::vector<store::WatchEvent>& e) { raw->OnEvents(e); },
      [raw](absl::Status why) { raw->OnEnd(std::move(why)); },
      /*previous_values=*/true,
      [raw](int64_t start) { return raw->OnGap(start); });
  if (!watch.ok()) return watch.status();
  r->watch_ = *std::move(watch);
  LogEvent(LogLevel::kInfo, "replica_loaded",
           {{"keys", keys},
            {"revision", revision},
            {"ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  return r;
}

StandbyReplica::~StandbyReplica() {
  if (watch_ != nullptr) watch_->Cancel();
}

void StandbyReplica::OnEvents(const std::vector<store::WatchEvent>& events) {
  // Bounded: ApplyLocked asks for a reload at most kMaxReloadsInARow times
  // without a revision applied in between, and there are finitely many.
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!ApplyLocked(events)) return;
    }
    if (!Reload()) return;
    // Then the rest of this response: revisions up to the reload are
    // skipped.
  }
}

absl::StatusOr<int64_t> StandbyReplica::OnGap(int64_t start) {
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    if (taken_) return absl::CancelledError("replica taken");
    const absl::Status why = absl::OutOfRangeError(absl::StrCat(
        "watch from revision ", start, ": etcd has compacted revision ",
        start - 1, " (deletes at ", start, " may be gone)"));
    if (!CountReloadLocked(why)) return broken_;
    state_.reset();  // As in ApplyLocked: no third copy during the reload.
  }
  if (!Reload()) {
    absl::MutexLock lock(&mu_);
    return broken_;
  }
  absl::MutexLock lock(&mu_);
  return state_->revision();
}

bool StandbyReplica::CountReloadLocked(const absl::Status& why) {
  if (reloads_in_a_row_ >= kMaxReloadsInARow) {
    broken_ = absl::UnavailableError(absl::StrCat(
        "replica: ", reloads_in_a_row_,
        " reloads in a row without progress; last: ", why.message()));
    LogEvent(LogLevel::kError, "replica_broken", {{"error", broken_}});
    return false;
  }
  ++reloads_in_a_row_;
  ++reloads_;
  LogEvent(LogLevel::kWarn, "replica_reload",
           {{"why", why}, {"reloads", reloads_}});
  return true;
}

bool StandbyReplica::ApplyLocked(const std::vector<store::WatchEvent>& events) {
  if (!broken_.ok() || taken_ || !state_.has_value()) return false;
  const int64_t before = state_->revision();
  absl::Status s = state_->Apply(events);
  if (state_->revision() > before) reloads_in_a_row_ = 0;
  if (s.ok()) {
    ++revisions_applied_;
    return false;
  }
  if (s.code() != absl::StatusCode::kAborted) {
    broken_ = s;
    LogEvent(LogLevel::kError, "replica_broken", {{"error", s}});
    return false;
  }
  if (!CountReloadLocked(s)) return false;
  // The stale core goes now, so a reload peaks like the first load (the
  // scanned records and the new core), never with a third copy.
  state_.reset();
  return true;
}

bool StandbyReplica::Reload() {
  // No lock across the scan. Only this (the watch) thread changes state_,
  // and TakeCaughtUp joins it before taking the core; meanwhile there is no
  // copy (stats() shows revision 0, a takeover waits for the reload).
  const absl::Time start = absl::Now();
  size_t keys = 0;
  absl::StatusOr<ReplicaState> fresh = LoadFromStore(store_, options_, &keys);
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return false;
  if (!fresh.ok()) {
    broken_ = absl::Status(
        fresh.status().code(),
        absl::StrCat("replica reload: ", fresh.status().message()));
    LogEvent(LogLevel::kError, "replica_broken", {{"error", broken_}});
    return false;
  }
  LogEvent(LogLevel::kInfo, "replica_reloaded",
           {{"keys", keys},
            {"revision", fresh->revision()},
            {"ms", absl::ToDoubleMilliseconds(absl::Now() - start)}});
  state_ = *std::move(fresh);
  records_loaded_ = keys;
  return true;
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
  // Every commit acknowledged before now is below the marker's revision,
  // and the watch has delivered all of them once it has delivered the
  // marker (events come in revision order). etcd's progress notifications
  // are not used here: before 3.4.24 a requested one can overtake events
  // still queued on the server (etcd issue 15220), and a takeover would
  // then serve a core without the last commits.
  absl::StatusOr<int64_t> target = store_->PutSyncMarker();
  if (!target.ok()) return target.status();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!broken_.ok()) return broken_;
      if (taken_) return absl::FailedPreconditionError("replica already taken");
    }
    if (watch_->delivered_revision() >= *target) break;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "replica: not caught up with revision ", *target, " within ",
          absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kProgressPollInterval);
  }
  watch_->Cancel();  // Joins the watch thread: no apply or reload runs now.
  absl::MutexLock lock(&mu_);
  if (!broken_.ok()) return broken_;
  if (taken_) return absl::FailedPreconditionError("replica already taken");
  if (!state_.has_value())
    return absl::UnavailableError("replica: no copy (reloading)");
  taken_ = true;
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
  }
  s.records_loaded = records_loaded_;
  s.reloads = reloads_;
  s.revisions_applied = revisions_applied_;
  s.health = broken_;
  if (watch_ != nullptr && state_.has_value()) {
    s.caught_up_revision = std::max(s.revision, watch_->progress_revision());
  }
  return s;
}

void StandbyReplica::RequestProgress() {
  if (watch_ != nullptr) (void)watch_->RequestProgress();
}

std::map<std::string, std::string> StandbyReplica::CoreSnapshotForTesting() const {
  absl::MutexLock lock(&mu_);
  return state_.has_value() ? state_->core().Snapshot() : std::map<std::string, std::string>();
}

}  // namespace lockwarden::replication
