#include "server/store/fault_injecting_store.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lockwarden::store {

FaultSpec FaultSpec::FailNth(uint64_t n, Phase phase) {
  FaultSpec s;
  s.trigger = Trigger::kNthCommit;
  s.n = n;
  s.phase = phase;
  return s;
}

FaultSpec FaultSpec::FailEveryAfter(uint64_t n, Phase phase) {
  FaultSpec s;
  s.trigger = Trigger::kEveryCommitAfter;
  s.n = n;
  s.phase = phase;
  return s;
}

FaultSpec FaultSpec::FailWithProbability(double p, uint64_t seed, Phase phase) {
  FaultSpec s;
  s.trigger = Trigger::kProbability;
  s.probability = p;
  s.seed = seed;
  s.phase = phase;
  return s;
}

FaultSpec FaultSpec::DiskFull() {
  FaultSpec s;
  s.trigger = Trigger::kDiskFull;
  return s;
}

absl::StatusOr<FaultSpec> ParseFaultSpec(absl::string_view text) {
  FaultSpec spec;
  bool have_trigger = false;
  auto set_trigger = [&](FaultSpec::Trigger t) -> absl::Status {
    if (have_trigger) {
      return absl::InvalidArgumentError(
          absl::StrCat("fault spec \"", text, "\" names two failpoints"));
    }
    have_trigger = true;
    spec.trigger = t;
    return absl::OkStatus();
  };
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first;
    const absl::string_view value = kv.second;
    absl::Status status;
    auto bad_value = [&]() {
      return absl::InvalidArgumentError(absl::StrCat(
          "fault spec \"", text, "\": bad value for ", key, ": \"", value, "\""));
    };
    if (key == "none") {
      status = set_trigger(FaultSpec::Trigger::kNone);
    } else if (key == "disk_full") {
      status = set_trigger(FaultSpec::Trigger::kDiskFull);
    } else if (key == "fail_nth" || key == "fail_after") {
      status = set_trigger(key == "fail_nth"
                               ? FaultSpec::Trigger::kNthCommit
                               : FaultSpec::Trigger::kEveryCommitAfter);
      if (!absl::SimpleAtoi(value, &spec.n)) return bad_value();
    } else if (key == "fail_prob") {
      status = set_trigger(FaultSpec::Trigger::kProbability);
      if (!absl::SimpleAtod(value, &spec.probability) ||
          !(spec.probability >= 0.0 && spec.probability <= 1.0)) {
        return bad_value();
      }
    } else if (key == "seed") {
      if (!absl::SimpleAtoi(value, &spec.seed)) return bad_value();
    } else if (key == "phase") {
      if (value == "before") {
        spec.phase = FaultSpec::Phase::kBeforeWrite;
      } else if (value == "after") {
        spec.phase = FaultSpec::Phase::kAfterWrite;
      } else {
        return bad_value();
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("fault spec \"", text, "\": unknown key \"", key, "\""));
    }
    if (!status.ok()) return status;
  }
  if (spec.trigger == FaultSpec::Trigger::kNthCommit && spec.n == 0) {
    return absl::InvalidArgumentError("fail_nth counts from 1");
  }
  if (spec.trigger == FaultSpec::Trigger::kDiskFull) {
    spec.phase = FaultSpec::Phase::kBeforeWrite;
  }
  return spec;
}

FaultInjectingStore::FaultInjectingStore(std::unique_ptr<StateStore> base,
                                         FaultSpec spec)
    : BorrowedStore(base.get()), base_(std::move(base)) {
  Arm(spec);
}

void FaultInjectingStore::Arm(const FaultSpec& spec) {
  absl::MutexLock lock(&mu_);
  spec_ = spec;
  commits_since_arm_ = 0;
  rng_.seed(spec.seed);
}

void FaultInjectingStore::SetFenced(bool fenced) {
  absl::MutexLock lock(&mu_);
  fenced_ = fenced;
}

FaultCounters FaultInjectingStore::Counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

FaultInjectingStore::Decision FaultInjectingStore::Decide() {
  const uint64_t k = ++commits_since_arm_;
  if (fenced_) return Decision::kFenced;
  bool fail = false;
  switch (spec_.trigger) {
    case FaultSpec::Trigger::kNone:
      break;
    case FaultSpec::Trigger::kNthCommit:
      fail = k == spec_.n;
      break;
    case FaultSpec::Trigger::kEveryCommitAfter:
      fail = k > spec_.n;
      break;
    case FaultSpec::Trigger::kProbability: {
      // 53 random bits -> [0, 1): the same sequence on every platform.
      const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
      fail = u < spec_.probability;
      break;
    }
    case FaultSpec::Trigger::kDiskFull:
      return Decision::kFailBefore;
  }
  if (!fail) return Decision::kPass;
  return spec_.phase == FaultSpec::Phase::kAfterWrite ? Decision::kFailAfter
                                                      : Decision::kFailBefore;
}

absl::Status FaultInjectingStore::Commit(const Delta& batch) {
  absl::Status valid = ValidateBatch(batch, base_->Limits());
  if (!valid.ok()) return valid;
  Decision decision;
  bool disk_full;
  uint64_t number;
  {
    absl::MutexLock lock(&mu_);
    ++counters_.commits;
    number = counters_.commits;
    decision = Decide();
    disk_full = spec_.trigger == FaultSpec::Trigger::kDiskFull;
    if (decision != Decision::kPass) ++counters_.injected;
  }
  switch (decision) {
    case Decision::kFenced:
      return absl::FailedPreconditionError(
          absl::StrCat("injected: commit ", number, " fenced (deposed writer)"));
    case Decision::kFailBefore:
      return absl::UnavailableError(
          disk_full ? absl::StrCat("injected: commit ", number,
                                   ": no space left on device")
                    : absl::StrCat("injected: commit ", number,
                                   " failed before writing"));
    case Decision::kPass:
    case Decision::kFailAfter:
      break;
  }
  absl::Status status = base_->Commit(batch);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    ++counters_.applied;
  }
  if (decision == Decision::kFailAfter && status.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "injected: commit ", number, " failed after writing (outcome unknown)"));
  }
  return status;
}

absl::Status FaultInjectingStore::Health() const {
  {
    absl::MutexLock lock(&mu_);
    if (spec_.trigger == FaultSpec::Trigger::kDiskFull) {
      return absl::UnavailableError("injected: no space left on device");
    }
  }
  return base_->Health();
}

}  // namespace lockwarden::store
