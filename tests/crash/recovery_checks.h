// Checks run on a restarted server after a crash round, independent of the
// history checker: the served state equals the store, no two conflicting
// locks are held, every acknowledged lock that nothing may have released is
// still held, and retried requests are answered from the dedup table.
// Each returns an empty string on success, else a description of the failure.
//
// Thread-safety: stateless functions; call from one thread.
#ifndef LOCKWARDEN_TESTS_CRASH_RECOVERY_CHECKS_H_
#define LOCKWARDEN_TESTS_CRASH_RECOVERY_CHECKS_H_

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "lockwarden/v1/admin_resources.pb.h"
#include "server/core/types.h"
#include "tests/common/stubs.h"
#include "tests/crash/history.h"

namespace lockwarden::crash {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Every key of the RocksDB store in `dir` (the server must not be running).
absl::StatusOr<KeyValues> LoadStore(const std::string& dir);

// The server's ListLocks/ListWaiters/ListShares equal the views of a core
// rebuilt from `kvs` (field by field, timestamps included).
std::string CompareServerWithStore(testing::Stubs& stubs, const KeyValues& kvs,
                                   const core::CoreOptions& options);

// Pairs of held locks of different owners on one file that overlap with at
// least one exclusive.
std::string FindConflictingLocks(const std::vector<v1::Lock>& locks);

// Locks acknowledged as held (LOCK answered GRANTED, AckGrant DELIVERED with
// lock_held) whose bytes no UNLOCK, CANCEL or refused grant of the same
// owner and file could have released since must still be held by that owner.
std::string FindMissingAckedLocks(const History& history, const std::vector<v1::Lock>& locks);

// Resends up to `count` randomly chosen acknowledged requests of `history`
// with their original request ids: each must get its original reply, and the
// listings must not change.
std::string CheckRetriesAreDeduplicated(testing::Stubs& stubs, const History& history,
                                        int count, std::mt19937_64& rng);

}  // namespace lockwarden::crash

#endif  // LOCKWARDEN_TESTS_CRASH_RECOVERY_CHECKS_H_
