// ClientAddressBook: the last source address each NFS client was seen at,
// keyed by the name it gives (NLM caller_name, SM_NOTIFY mon_name).
//
// The NLM side records (caller_name, peer address) for every request; the
// NSM side reads it to judge whether an SM_NOTIFY for `mon_name` plausibly
// comes from that host (strict source check), and to find where to send our
// own SM_NOTIFY when a monitored name does not resolve. It is a cache, not
// state: losing it (gateway restart) only makes the strict check fall back
// to name resolution, and the server's SmNotify events carry the addresses
// it recorded durably.
//
//   ClientAddressBook book;                 // kDefaultMaxEntries
//   book.Record("client1.example", "198.18.0.7");
//   std::optional<std::string> a = book.Lookup("client1.example");
//
// Bounded: at most `max_entries` names; recording a new name beyond that
// evicts the least recently recorded-or-looked-up one.
//
// Thread safety: all methods are thread-safe (one internal mutex, held only
// for the table update; never across I/O).
#ifndef LOCKWARDEN_GATEWAY_NSM_CLIENT_ADDRESS_BOOK_H_
#define LOCKWARDEN_GATEWAY_NSM_CLIENT_ADDRESS_BOOK_H_

#include <cstddef>
#include <list>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace lockwarden::gateway::nsm {

class ClientAddressBook {
 public:
  // Enough for every client of a large NFS server; ~100 bytes per entry.
  static constexpr size_t kDefaultMaxEntries = 100000;
  // Names longer than this (SM_MAXSTRLEN) are not recorded.
  static constexpr size_t kMaxNameBytes = 1024;

  explicit ClientAddressBook(size_t max_entries = kDefaultMaxEntries);
  ClientAddressBook(const ClientAddressBook&) = delete;
  ClientAddressBook& operator=(const ClientAddressBook&) = delete;

  // Remembers that `name` was last seen at `address` (a normalised IP
  // literal). Empty or oversized names and empty addresses are ignored.
  void Record(const std::string& name, const std::string& address);

  // The last address recorded for `name`, if any. Marks it recently used.
  std::optional<std::string> Lookup(const std::string& name) const;

  size_t size() const;
  size_t max_entries() const { return max_entries_; }

 private:
  struct Entry {
    std::string address;
    std::list<std::string>::iterator lru_position;
  };
  // Moves `it` to the most recently used end.
  void Touch(Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t max_entries_;
  mutable absl::Mutex mu_;
  // Front = least recently used.
  mutable std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);
  mutable absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway::nsm

#endif  // LOCKWARDEN_GATEWAY_NSM_CLIENT_ADDRESS_BOOK_H_
