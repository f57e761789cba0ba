#include "server/store/state_store.h"

#include "absl/strings/str_cat.h"

namespace lockwarden::store {

absl::Status ValidateBatch(const Delta& batch, const StoreLimits& limits) {
  if (batch.size() > limits.max_mutations_per_batch) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", batch.size(), " mutations; the limit is ",
                     limits.max_mutations_per_batch));
  }
  size_t total_bytes = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Mutation& m = batch[i];
    if (m.key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mutation ", i, " has an empty key"));
    }
    if (m.key.size() > limits.max_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("mutation ", i, " key is ", m.key.size(),
                       " bytes; the limit is ", limits.max_key_bytes));
    }
    if (m.value.size() > limits.max_value_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("mutation ", i, " value is ", m.value.size(),
                       " bytes; the limit is ", limits.max_value_bytes));
    }
    if (m.op == Mutation::Op::kDelete && !m.value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("mutation ", i, " is a delete with a value"));
    }
    total_bytes += MutationBytes(m);
  }
  if (total_bytes > limits.max_batch_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch is ", total_bytes, " bytes; the limit is ",
                     limits.max_batch_bytes));
  }
  return absl::OkStatus();
}

std::optional<std::string> PrefixSuccessor(absl::string_view prefix) {
  std::string bound(prefix);
  // Drop trailing 0xff bytes (they cannot be incremented), then increment
  // the last remaining byte: "ab\xff" -> "ac".
  while (!bound.empty() && static_cast<unsigned char>(bound.back()) == 0xff) {
    bound.pop_back();
  }
  if (bound.empty()) return std::nullopt;
  bound.back() = static_cast<char>(static_cast<unsigned char>(bound.back()) + 1);
  return bound;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>>
StateStore::LoadAll(absl::string_view prefix) const {
  std::vector<std::pair<std::string, std::string>> out;
  absl::Status status =
      Scan(prefix, [&out](absl::string_view key, absl::string_view value) {
        out.emplace_back(std::string(key), std::string(value));
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return out;
}

}  // namespace lockwarden::store
