// CoreRunner::ImportState: the staged snapshot import (see core_runner.h and
// core/lock_core.h for the marker protocol).
//
// The chunks are committed one after the other, each from the previous
// one's callback, so the pipeline never holds more than one of them and
// every chunk is exactly one atomic store commit. Nothing else is applied
// meanwhile (RefusalLocked answers UNAVAILABLE while importing_).
#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/core/codec.h"
#include "server/service/core_runner.h"

namespace lockwarden::service {

struct CoreRunner::ImportPlan {
  core::LockCore next;
  std::vector<Delta> chunks;  // chunks[0] puts the marker, the last deletes it.
  std::function<void(absl::Status)> done;
  size_t mutations = 0;
};

namespace {

// Cuts `mutations` into batches within `limits` (count and bytes), in order.
std::vector<Delta> Chunk(Delta mutations, const store::StoreLimits& limits) {
  std::vector<Delta> out;
  Delta current;
  size_t bytes = 0;
  for (Mutation& m : mutations) {
    const size_t b = store::MutationBytes(m);
    if (!current.empty() && (current.size() + 1 > limits.max_mutations_per_batch ||
                             bytes + b > limits.max_batch_bytes)) {
      out.push_back(std::move(current));
      current.clear();
      bytes = 0;
    }
    bytes += b;
    current.push_back(std::move(m));
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

}  // namespace

void CoreRunner::PlanImportLocked(ImportPlan& plan, const core::ImportMarker& marker,
                                  const store::StoreLimits& limits) {
  // Old records: the live state, or the verbatim records of an
  // interrupted import (marker included).
  const std::map<std::string, std::string> old_records = core_.Snapshot();
  const std::map<std::string, std::string> new_records = plan.next.Snapshot();
  const std::string marker_key(core::codec::kImportMarkerKey);
  const std::string counters_key(core::codec::kCountersKey);
  Delta first;
  first.push_back(Mutation::Put(marker_key, core::codec::EncodeImportMarker(marker)));
  if (auto c = new_records.find(counters_key); c != new_records.end()) {
    first.push_back(Mutation::Put(counters_key, c->second));
  }
  Delta body;
  for (const auto& [key, value] : old_records) {
    if (key != marker_key && !new_records.count(key)) body.push_back(Mutation::Delete(key));
  }
  for (const auto& [key, value] : new_records) {
    if (key == counters_key) continue;
    auto it = old_records.find(key);
    if (it == old_records.end() || it->second != value) {
      body.push_back(Mutation::Put(key, value));
    }
  }
  plan.mutations = first.size() + body.size() + 1;
  plan.chunks.push_back(std::move(first));
  for (Delta& d : Chunk(std::move(body), limits)) plan.chunks.push_back(std::move(d));
  // The marker's deletion goes last: with the last chunk if it still fits
  // (one commit less), else alone. Never with the first: the marker must be
  // durable before any record of the new state is written.
  Delta& last = plan.chunks.back();
  last.push_back(Mutation::Delete(marker_key));
  if (plan.chunks.size() == 1 || !store::ValidateBatch(last, limits).ok()) {
    last.pop_back();
    plan.chunks.push_back(Delta{Mutation::Delete(marker_key)});
  }
}

void CoreRunner::ImportState(core::LockCore next, const core::ImportMarker& marker,
                             const store::StoreLimits& limits,
                             std::function<void(absl::Status)> done) {
  auto plan = std::make_shared<ImportPlan>(ImportPlan{std::move(next), {}, std::move(done)});
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) {
      refused = absl::UnavailableError(
          absl::StrCat("lock service is broken: ", broken_.message()));
    } else if (stopping_) {
      refused = absl::UnavailableError("lock service is shutting down");
    } else if (importing_) {
      refused = absl::ResourceExhaustedError("another snapshot import is running");
    } else {
      PlanImportLocked(*plan, marker, limits);
      importing_ = true;
    }
  }
  if (!refused.ok()) {
    plan->done(refused);
    return;
  }
  LogEvent(LogLevel::kInfo, "snapshot_import_begin",
           {{"keys", marker.key_count},
            {"mutations", plan->mutations},
            {"commits", plan->chunks.size()},
            {"source", marker.source}});
  CommitImportChunk(std::move(plan), 0);
}

void CoreRunner::CommitImportChunk(std::shared_ptr<ImportPlan> plan, size_t i) {
  if (i == plan->chunks.size()) {
    FinishImport(std::move(plan));
    return;
  }
  Delta chunk = std::move(plan->chunks[i]);
  absl::Status s = pipeline_->Enqueue(std::move(chunk), [this, plan, i](absl::Status s) {
    if (!s.ok()) {
      // The store holds the marker (or, if the first commit failed, maybe
      // not): a restart recovers whichever it is and refuses to serve while
      // the marker is there.
      Break(s);
      LogEvent(LogLevel::kError, "snapshot_import_commit_failed",
               {{"commit", i}, {"commits", plan->chunks.size()}, {"error", s}});
      plan->done(absl::UnavailableError(absl::StrCat(
          "snapshot import stopped at commit ", i + 1, " of ", plan->chunks.size(), ": ",
          s.message(), "; the store holds an interrupted import: restart the server, then "
          "re-run the import with force or abandon it")));
      return;
    }
    CommitImportChunk(plan, i + 1);
  });
  if (!s.ok()) {
    Break(s);
    plan->done(s);
  }
}

void CoreRunner::FinishImport(std::shared_ptr<ImportPlan> plan) {
  std::vector<core::Event> events;
  bool was_interrupted = false;
  std::function<void(bool)> cb;
  {
    absl::MutexLock lock(&mu_);
    was_interrupted = core_.interrupted_import().has_value();
    core_ = std::move(plan->next);
    importing_ = false;
    // Everything applied is durable: the new state is exactly the store.
    durable_seq_ = ++applied_seq_;
    durable_event_seq_ = std::max(durable_event_seq_, core_.Counters().next_event_sequence);
    event_resume_floor_ = core_.Counters().next_event_sequence;
    next_deadline_ms_ = std::min(next_deadline_ms_, core_.NextDeadlineMs());
    tick_cv_.Signal();
    for (const core::GatewayInfo& g : core_.ListGateways()) {
      std::vector<core::Event> pending = core_.PendingEvents(g.name, 0, 1);
      events.insert(events.end(), pending.begin(), pending.end());
    }
    if (was_interrupted) cb = health_cb_;
  }
  LogEvent(LogLevel::kInfo, "snapshot_import_done",
           {{"mutations", plan->mutations}, {"commits", plan->chunks.size()}});
  if (cb) cb(true);
  // Streams opened on the old state end; their gateways reconnect and read
  // the new one from the start of its outboxes.
  ResetListeners(absl::UnavailableError(
      "the lock state was replaced by a snapshot import; reconnect"));
  if (!events.empty()) WakeListeners(events);
  plan->done(absl::OkStatus());
}

uint64_t CoreRunner::EventResumeFloor() const {
  absl::MutexLock lock(&mu_);
  return event_resume_floor_;
}

void CoreRunner::ResetListeners(const absl::Status& status) {
  std::vector<std::shared_ptr<EventListener>> all;
  {
    absl::MutexLock lock(&listeners_mu_);
    for (auto& [gateway, list] : listeners_) {
      for (const auto& w : list) {
        if (auto l = w.lock()) all.push_back(std::move(l));
      }
    }
    for (const auto& w : reset_listeners_) {
      if (auto l = w.lock()) all.push_back(std::move(l));
    }
  }
  for (const auto& l : all) l->Reset(status);
}

}  // namespace lockwarden::service
