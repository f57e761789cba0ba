#include "server/store/commit_pipeline.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace lockwarden::store {
namespace {

size_t DeltaBytes(const Delta& delta) {
  size_t bytes = 0;
  for (const Mutation& m : delta) bytes += MutationBytes(m);
  return bytes;
}

}  // namespace

Delta CoalesceByKey(std::vector<Delta> deltas) {
  size_t total = 0;
  for (const Delta& d : deltas) total += d.size();
  // Index of each key's last mutation in the concatenation.
  absl::flat_hash_map<absl::string_view, size_t> last;
  last.reserve(total);
  size_t i = 0;
  for (const Delta& d : deltas) {
    for (const Mutation& m : d) last[m.key] = i++;
  }
  // All lookups happen before any mutation is moved: `last` views the keys
  // of the deltas' strings, which a move may clear (short strings).
  std::vector<bool> keep(total, false);
  for (const auto& [key, index] : last) keep[index] = true;
  Delta out;
  out.reserve(last.size());
  i = 0;
  for (Delta& d : deltas) {
    for (Mutation& m : d) {
      if (keep[i++]) out.push_back(std::move(m));
    }
  }
  return out;
}

CommitPipeline::Slot& CommitPipeline::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (pipeline_ != nullptr) pipeline_->ReleaseSlot();
    pipeline_ = other.pipeline_;
    other.pipeline_ = nullptr;
  }
  return *this;
}

CommitPipeline::Slot::~Slot() {
  if (pipeline_ != nullptr) pipeline_->ReleaseSlot();
}

CommitPipeline::CommitPipeline(StateStore* store, CommitPipelineOptions options)
    : store_(store), limits_(store->Limits()), options_(options) {
  latencies_.reserve(kCommitLatencyWindow);
  thread_ = std::thread([this] { Run(); });
}

CommitPipeline::~CommitPipeline() { Shutdown(); }

absl::Status CommitPipeline::AdmissionStatus() const {
  if (shutting_down_) {
    return absl::UnavailableError("commit pipeline is shutting down");
  }
  if (!broken_.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "commit pipeline is broken by an earlier failed commit: ",
        broken_.ToString()));
  }
  if (queue_.size() + reserved_ >= options_.max_queued_deltas) {
    return absl::ResourceExhaustedError(
        absl::StrCat("commit queue is full (", options_.max_queued_deltas,
                     " deltas queued or reserved)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CommitPipeline::Slot> CommitPipeline::ReserveSlot() {
  absl::MutexLock lock(&mu_);
  absl::Status admission = AdmissionStatus();
  if (!admission.ok()) return admission;
  ++reserved_;
  return Slot(this);
}

void CommitPipeline::ReleaseSlot() {
  absl::MutexLock lock(&mu_);
  --reserved_;
}

absl::Status CommitPipeline::Enqueue(Slot slot, Delta delta, Callback done) {
  if (slot.pipeline_ != this) {
    return absl::InvalidArgumentError(
        "slot was not reserved from this commit pipeline");
  }
  absl::Status valid = ValidateBatch(delta, limits_);
  if (!valid.ok()) return valid;  // `slot` releases its reservation.
  const size_t bytes = DeltaBytes(delta);
  absl::MutexLock lock(&mu_);
  // Queued even if the pipeline broke since the reservation: the thread
  // completes it with UNAVAILABLE, as promised to the slot holder.
  queue_.push_back(Pending{std::move(delta), std::move(done), bytes});
  --reserved_;
  slot.pipeline_ = nullptr;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CommitPipeline::Pending>> CommitPipeline::Pack(
    std::vector<Delta> deltas, Callback done) const {
  std::vector<Pending> entries;
  for (Delta& d : deltas) {
    absl::Status valid = ValidateBatch(d, limits_);
    if (!valid.ok()) return valid;
    const size_t bytes = DeltaBytes(d);
    if (d.empty() && !entries.empty()) continue;  // Nothing to commit.
    if (entries.empty() ||
        entries.back().delta.size() + d.size() >
            limits_.max_mutations_per_batch ||
        entries.back().bytes + bytes > limits_.max_batch_bytes) {
      entries.push_back(Pending{std::move(d), nullptr, bytes});
      continue;
    }
    Pending& last = entries.back();
    last.delta.insert(last.delta.end(), std::make_move_iterator(d.begin()),
                      std::make_move_iterator(d.end()));
    last.bytes += bytes;
  }
  if (entries.empty()) entries.push_back(Pending{Delta(), nullptr, 0});
  entries.back().done = std::move(done);
  return entries;
}

absl::Status CommitPipeline::EnqueueAll(Slot slot, std::vector<Delta> deltas,
                                        Callback done, bool will_drive) {
  if (slot.pipeline_ != this) {
    return absl::InvalidArgumentError(
        "slot was not reserved from this commit pipeline");
  }
  absl::StatusOr<std::vector<Pending>> entries =
      Pack(std::move(deltas), std::move(done));
  if (!entries.ok()) return entries.status();  // `slot` is released.
  absl::MutexLock lock(&mu_);
  for (Pending& p : *entries) queue_.push_back(std::move(p));
  if (will_drive) ++drivers_pending_;
  --reserved_;
  slot.pipeline_ = nullptr;
  return absl::OkStatus();
}

absl::Status CommitPipeline::Enqueue(Delta delta, Callback done) {
  // Validate first so a bad delta does not take a slot, even briefly.
  absl::Status valid = ValidateBatch(delta, limits_);
  if (!valid.ok()) return valid;
  absl::StatusOr<Slot> slot = ReserveSlot();
  if (!slot.ok()) return slot.status();
  return Enqueue(*std::move(slot), std::move(delta), std::move(done));
}

void CommitPipeline::Shutdown() {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool CommitPipeline::Healthy() const {
  absl::MutexLock lock(&mu_);
  return broken_.ok();
}

absl::Status CommitPipeline::BrokenStatus() const {
  absl::MutexLock lock(&mu_);
  return broken_;
}

bool CommitPipeline::HasWorkOrDrained() const {
  if (committing_) return false;
  // Work a caller promised to Drive() is left to it, unless shutting down.
  if (!queue_.empty()) return drivers_pending_ == 0 || shutting_down_;
  return shutting_down_ && reserved_ == 0 && drivers_pending_ == 0;
}

std::vector<CommitPipeline::Pending> CommitPipeline::TakeGroup() {
  std::vector<Pending> group;
  // Distinct keys of the group so far: what its coalesced batch commits.
  // The views point into the deltas' strings, which stay put while the
  // Pending entries (and so their vectors' buffers) move into `group`.
  absl::flat_hash_set<absl::string_view> keys;
  size_t bytes = 0;
  while (!queue_.empty()) {
    const Pending& next = queue_.front();
    size_t new_keys = 0;
    for (const Mutation& m : next.delta) {
      if (!keys.contains(m.key)) ++new_keys;
    }
    // Every delta fits alone (checked at Enqueue), so the first always fits.
    // (new_keys may count a key twice within one delta: conservative.)
    // Bytes are counted before coalescing: an upper bound of the batch's.
    if (!group.empty() &&
        (keys.size() + new_keys > limits_.max_mutations_per_batch ||
         bytes + next.bytes > limits_.max_batch_bytes)) {
      break;
    }
    for (const Mutation& m : next.delta) keys.insert(m.key);
    bytes += next.bytes;
    group.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return group;
}

void CommitPipeline::Run() {
  for (;;) {
    std::vector<Pending> group;
    absl::Status broken;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &CommitPipeline::HasWorkOrDrained));
      if (queue_.empty()) return;  // Shutting down, and nothing is left.
      group = TakeGroup();
      broken = broken_;
      committing_ = true;
    }
    CommitGroup(group, broken);
  }
}

void CommitPipeline::Drive() {
  std::vector<Pending> group;
  absl::Status broken;
  {
    absl::MutexLock lock(&mu_);
    --drivers_pending_;
    // Busy: whoever commits now (or the thread, woken when it finishes)
    // takes what this caller queued.
    if (committing_ || queue_.empty()) return;
    group = TakeGroup();
    broken = broken_;
    committing_ = true;
  }
  ++inline_groups_;
  CommitGroup(group, broken);
}

void CommitPipeline::CommitGroup(std::vector<Pending>& group,
                                 const absl::Status& broken) {
  absl::Status result;
  if (broken.ok()) {
    std::vector<Delta> deltas;
    deltas.reserve(group.size());
    for (Pending& p : group) deltas.push_back(std::move(p.delta));
    const Delta batch = CoalesceByKey(std::move(deltas));
    const size_t mutations = batch.size();
    const absl::Time start = absl::Now();
    absl::Status status = store_->Commit(batch);
    const absl::Duration latency = absl::Now() - start;
    if (!status.ok()) {
      absl::MutexLock lock(&mu_);
      if (broken_.ok()) broken_ = status;
      result = absl::UnavailableError(absl::StrCat(
          "commit failed; outcome unknown, pipeline now broken: ",
          status.ToString()));
    }
    RecordCommit(group, mutations, status, latency);
  } else {
    result = absl::UnavailableError(absl::StrCat(
        "not committed: commit pipeline is broken by an earlier failed "
        "commit: ",
        broken.ToString()));
    absl::MutexLock lock(&mu_);
    stats_.failed_deltas += group.size();
  }
  for (Pending& p : group) {
    if (p.done) p.done(result);
  }
  // Only now: callbacks of one group run before the next group commits.
  absl::MutexLock lock(&mu_);
  committing_ = false;
}

void CommitPipeline::RecordCommit(const std::vector<Pending>& group,
                                  size_t mutations, const absl::Status& status,
                                  absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  stats_.last_commit_latency = latency;
  stats_.max_commit_latency = std::max(stats_.max_commit_latency, latency);
  if (latencies_.size() < kCommitLatencyWindow) {
    latencies_.push_back(latency);
  } else {
    latencies_[latency_next_] = latency;
  }
  latency_next_ = (latency_next_ + 1) % kCommitLatencyWindow;
  if (!status.ok()) {
    ++stats_.failed_commits;
    stats_.failed_deltas += group.size();
    return;
  }
  ++stats_.commits;
  stats_.deltas += group.size();
  stats_.mutations += mutations;
  stats_.max_batch_deltas =
      std::max<uint64_t>(stats_.max_batch_deltas, group.size());
}

CommitPipelineStats CommitPipeline::Stats() const {
  absl::MutexLock lock(&mu_);
  CommitPipelineStats out = stats_;
  out.queued = queue_.size();
  out.inline_groups = inline_groups_.load();
  if (out.commits > 0) {
    out.mean_batch_deltas =
        static_cast<double>(out.deltas) / static_cast<double>(out.commits);
  }
  if (!latencies_.empty()) {
    std::vector<absl::Duration> sorted = latencies_;
    auto mid = sorted.begin() + sorted.size() / 2;
    std::nth_element(sorted.begin(), mid, sorted.end());
    out.p50_commit_latency = *mid;
  }
  return out;
}

}  // namespace lockwarden::store
