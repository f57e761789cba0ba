#include "gateway/nsm/client_address_book.h"

#include <algorithm>

namespace lockwarden::gateway::nsm {

ClientAddressBook::ClientAddressBook(size_t max_entries)
    : max_entries_(std::max<size_t>(max_entries, 1)) {}

void ClientAddressBook::Touch(Entry& entry) const {
  lru_.splice(lru_.end(), lru_, entry.lru_position);
}

void ClientAddressBook::Record(const std::string& name,
                               const std::string& address) {
  if (name.empty() || name.size() > kMaxNameBytes || address.empty()) return;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    it->second.address = address;
    Touch(it->second);
    return;
  }
  if (entries_.size() >= max_entries_) {
    entries_.erase(lru_.front());
    lru_.pop_front();
  }
  lru_.push_back(name);
  entries_.emplace(name, Entry{address, std::prev(lru_.end())});
}

std::optional<std::string> ClientAddressBook::Lookup(
    const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  Touch(it->second);
  return it->second.address;
}

size_t ClientAddressBook::size() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

}  // namespace lockwarden::gateway::nsm
