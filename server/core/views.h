// Read-only views of the lock core's state for the admin API, tests and
// debugging. Plain values copied out of the core.
//
// Thread-safety: plain values.
#ifndef LOCKWARDEN_SERVER_CORE_VIEWS_H_
#define LOCKWARDEN_SERVER_CORE_VIEWS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "server/core/types.h"

namespace lockwarden::core {

struct LockFilter {  // Empty field = any.
  std::string fh;
  std::string client;
  std::string gateway;
};

struct LockInfo {
  uint64_t fencing_token = 0;  // Also the lock's stable id (pagination key).
  std::string fh;
  Owner owner;
  Range range;
  bool exclusive = false;
  std::string gateway;
  int32_t client_state = 0;
  int64_t granted_ms = 0;
  bool unconfirmed = false;        // Granted to a waiter, not yet acked.
  bool monitored = true;           // False for NM_LOCK locks.
  int64_t grant_deadline_ms = 0;   // When unconfirmed.
  uint64_t grant_event_sequence = 0;
};

struct WaiterInfo {
  uint64_t id = 0;  // Stable id; FIFO order within a file is id order.
  std::string fh;
  Owner owner;
  Range range;
  bool exclusive = false;
  bool reclaim = false;
  std::string gateway;
  int32_t client_state = 0;
  int64_t queued_ms = 0;
  std::string callback;
  std::string cookie;
  bool monitored = true;  // False for NM_LOCK waiters.
};

struct ShareInfo {
  uint64_t id = 0;
  std::string fh;
  std::string client;
  std::string oh;
  ShareMode access = ShareMode::kNone;
  ShareMode deny = ShareMode::kNone;
  std::string gateway;
  int32_t client_state = 0;
  int64_t granted_ms = 0;
};

// Owner `waiter` cannot proceed until owner `holder` releases, because of a
// granted lock (`via_waiter` false) or an earlier conflicting waiter.
struct WaitForEdge {
  Owner waiter;
  Owner holder;
  std::string fh;
  uint64_t waiter_id = 0;
  bool via_waiter = false;
};

struct ClientInfo {
  std::string name;
  int32_t nsm_state = 0;
  std::vector<std::string> addresses;  // Most recent first.
};

struct MonitorInfo {
  std::string gateway;
  std::string mon_name;
  MonitorId my_id;
  std::string priv;
};

struct LedgerEntry {
  std::string client;
  bool reclaimed = false;  // Issued a reclaim LOCK/SHARE through the gateway.
  bool done = false;       // Finished: see docs/core.md "Grace".
};

struct GatewayInfo {
  std::string name;
  int32_t nsm_state = 0;
  int64_t grace_until_ms = 0;  // 0 = not in grace.
  std::vector<LedgerEntry> ledger;
  size_t pending_events = 0;
  bool draining = false;  // DrainGatewayCmd: no new waiters through it.
};

// The marker record of a staged snapshot import (codec.h "m/import").
struct ImportMarker {
  uint64_t key_count = 0;  // Records of the state being imported.
  int64_t started_ms = 0;  // Service clock when the import began.
  std::string source;      // Who started it and why (audit text).
};

struct CoreCounters {
  size_t files = 0;
  size_t locks = 0;
  size_t unconfirmed_grants = 0;
  size_t waiters = 0;
  size_t shares = 0;
  size_t owners = 0;
  size_t clients = 0;
  size_t gateways = 0;
  size_t monitors = 0;
  size_t events = 0;
  size_t dedup_entries = 0;
  // Persisted dedup records not yet moved into the ring or deleted (after
  // a change of dedup_entries_max or an upgrade from the d/<id> layout).
  size_t dedup_records_to_migrate = 0;
  uint64_t next_fencing_token = 0;
  uint64_t next_event_sequence = 0;
  uint64_t next_id = 0;
  uint64_t events_dropped = 0;  // Oldest events evicted at the outbox limit.
};

}  // namespace lockwarden::core

#endif  // LOCKWARDEN_SERVER_CORE_VIEWS_H_
