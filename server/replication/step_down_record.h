// Step-down records: AdminService.StepDown made idempotent across a
// failover.
//
// A StepDown whose reply is lost (the old leader drains the very RPC while
// it resigns) is retried by lockwardenctl with the same request id, and the
// retry lands on the NEW leader. Without a record that retry would depose
// the new leader too. So before resigning, the leader claims the request id
// in etcd, in one Txn:
//
//   compare: <prefix><request_id>   CREATE == 0       (never claimed)
//            <leader key>           CREATE == <token> (still this leader)
//   success: put <prefix><request_id> = "<token>" (lease: kStepDownRecordTtl)
//   failure: range <prefix><request_id>
//
// and resigns only if the claim is its own (kFirst): the record names the
// fencing token of the leader that honoured it. A retry that finds a record
// of an earlier leader's token is answered "already done" (kAlreadyHonored)
// and changes nothing; a retry at the same leader that is still leading
// (its earlier resign failed) finds its own token and resigns again.
// Records expire with their lease, so the prefix stays bounded by the
// step-downs of one TTL; a retry later than that steps down again.
//
// Thread-safety: a pure function over a thread-safe EtcdClient.
#ifndef LOCKWARDEN_SERVER_REPLICATION_STEP_DOWN_RECORD_H_
#define LOCKWARDEN_SERVER_REPLICATION_STEP_DOWN_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/replication/leader_election.h"
#include "server/store/etcd_client.h"

namespace lockwarden::replication {

// Outside the election prefix (candidates scan theirs) and the state prefix.
inline constexpr char kDefaultStepDownPrefix[] = "/lockwarden/v1/stepdown/";
// How long a StepDown's request id is remembered (etcd lease TTL).
inline constexpr absl::Duration kStepDownRecordTtl = absl::Hours(1);
// Longest request id accepted (it becomes an etcd key).
inline constexpr size_t kStepDownRequestIdBytesMax = 128;

enum class StepDownClaim {
  kFirst,           // This leader honours the request: resign.
  kAlreadyHonored,  // An earlier leader did: change nothing.
};

struct StepDownClaimResult {
  StepDownClaim claim = StepDownClaim::kFirst;
  // kAlreadyHonored: the fencing token of the leader that stepped down.
  int64_t honored_by_token = 0;
};

// Claims `request_id` for `leadership` (see the banner). INVALID_ARGUMENT
// for an empty or oversized id or one containing '/'; FAILED_PRECONDITION
// if `leadership` no longer holds its key and nobody honoured the request;
// UNAVAILABLE (or another etcd error) if etcd did not answer.
absl::StatusOr<StepDownClaimResult> ClaimStepDown(store::EtcdClient* client,
                                                  const std::string& prefix,
                                                  const std::string& request_id,
                                                  const Leadership& leadership);

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_STEP_DOWN_RECORD_H_
