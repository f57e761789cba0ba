#include "server/store/crash_batches.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace lockwarden::store {
namespace {

std::string ScratchKey(uint64_t n) { return absl::StrCat("scratch/", n); }

}  // namespace

Delta MakeCrashBatch(uint64_t n) {
  Delta batch;
  const std::string value = absl::StrCat(n);
  for (int i = 0; i < kKeysPerCrashBatch; ++i) {
    batch.push_back(
        Mutation::Put(absl::StrFormat("batch/%012d/%d", n, i), value));
  }
  batch.push_back(Mutation::Put("latest", value));
  batch.push_back(Mutation::Delete(ScratchKey(n - 1)));
  batch.push_back(Mutation::Put(ScratchKey(n), value));
  return batch;
}

absl::StatusOr<uint64_t> CheckCrashBatches(const StateStore& store) {
  // Batch number -> how many of its keys are present.
  std::map<uint64_t, int> keys_per_batch;
  absl::Status scan = store.Scan(
      "batch/", [&](absl::string_view key, absl::string_view value) {
        std::vector<absl::string_view> parts = absl::StrSplit(key, '/');
        uint64_t n = 0;
        if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &n) ||
            value != absl::StrCat(n)) {
          return absl::DataLossError(
              absl::StrCat("bad crash key ", key, " = ", value));
        }
        ++keys_per_batch[n];
        return absl::OkStatus();
      });
  if (!scan.ok()) return scan;

  uint64_t expected = 1;
  for (const auto& [n, count] : keys_per_batch) {
    if (n != expected) {
      return absl::DataLossError(
          absl::StrCat("batch ", expected, " missing but batch ", n, " present"));
    }
    if (count != kKeysPerCrashBatch) {
      return absl::DataLossError(absl::StrCat("batch ", n, " half-applied: ",
                                              count, " of ", kKeysPerCrashBatch,
                                              " keys"));
    }
    ++expected;
  }
  const uint64_t last = expected - 1;

  absl::StatusOr<std::optional<std::string>> latest = store.Get("latest");
  if (!latest.ok()) return latest.status();
  const std::optional<std::string> want_latest =
      last == 0 ? std::nullopt : std::optional<std::string>(absl::StrCat(last));
  if (*latest != want_latest) {
    return absl::DataLossError(absl::StrCat(
        "latest is ", latest->value_or("<absent>"), " but last batch is ", last));
  }
  std::vector<std::string> scratch;
  scan = store.Scan("scratch/", [&](absl::string_view key, absl::string_view) {
    scratch.emplace_back(key);
    return absl::OkStatus();
  });
  if (!scan.ok()) return scan;
  const std::vector<std::string> want_scratch =
      last == 0 ? std::vector<std::string>() : std::vector<std::string>{ScratchKey(last)};
  if (scratch != want_scratch) {
    return absl::DataLossError(
        absl::StrCat("scratch keys [", absl::StrJoin(scratch, ","),
                     "] disagree with last batch ", last));
  }
  return last;
}

}  // namespace lockwarden::store
