#include "server/store/memory_store.h"

#include <utility>
#include <vector>

namespace lockwarden::store {

absl::Status MemoryStore::Commit(const Delta& batch) {
  absl::Status valid = ValidateBatch(batch, limits_);
  if (!valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  for (const Mutation& m : batch) {
    if (m.op == Mutation::Op::kPut) {
      data_[m.key] = m.value;
    } else {
      data_.erase(m.key);
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryStore::Scan(absl::string_view prefix,
                               const ScanFn& fn) const {
  std::vector<std::pair<std::string, std::string>> snapshot;
  {
    absl::MutexLock lock(&mu_);
    const std::optional<std::string> end = PrefixSuccessor(prefix);
    auto it = data_.lower_bound(std::string(prefix));
    auto stop = end.has_value() ? data_.lower_bound(*end) : data_.end();
    for (; it != stop; ++it) snapshot.emplace_back(it->first, it->second);
  }
  for (const auto& [key, value] : snapshot) {
    absl::Status status = fn(key, value);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> MemoryStore::Get(
    absl::string_view key) const {
  absl::MutexLock lock(&mu_);
  auto it = data_.find(std::string(key));
  if (it == data_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

}  // namespace lockwarden::store
