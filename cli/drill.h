// The pieces of `lockwardenctl drill failover` and `drill client-reboot`
// that are not command-line wiring: a consistent-enough picture of the lock
// state taken through AdminService (StateSnapshot), the comparison of two
// pictures (CompareSnapshots: what was lost, what changed), and the probe
// that measures unavailability as a client sees it (Prober).
//
// What "lost" means. A drill compares the state before a failover with the
// state after it. Every lock held before must still be held after with the
// same fencing token, owner, file, range and mode; every waiter must still
// be queued, or have become a lock (granted meanwhile); every gateway
// identity and every client must keep its NSM state number; no identity may
// have entered grace. Clients that unlock during the drill show up as lost
// locks: run the drill on a quiet system (or read the list of differences).
// The drill's own probe state (gateway identity kDrillGatewayId, client
// kProbeClient) is left out of the comparison.
//
// Thread safety: StateSnapshot and the comparison are plain values and pure
// functions. A Prober runs its own thread with its own Connection; its
// public methods are called from one controlling thread.
#ifndef LOCKWARDEN_CLI_DRILL_H_
#define LOCKWARDEN_CLI_DRILL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cli/connection.h"
#include "lockwarden/v1/admin_service.pb.h"
#include "nlohmann/json.hpp"

namespace lockwarden::cli {

// The gateway identity the drills' own requests (probe, test locks) use.
inline constexpr char kDrillGatewayId[] = "lockwardenctl-drill";
// The probe's client name and the file handle it locks and unlocks.
inline constexpr char kProbeClient[] = "lockwardenctl-drill-probe";
inline constexpr char kProbeFileHandle[] = "lockwardenctl-drill-probe";
// Most items a snapshot reads per kind (1000 per page): a bound, not a
// target; past it the drill fails rather than compare a partial picture.
inline constexpr size_t kSnapshotItemsMax = 10'000'000;
// Most probe samples kept (at the default 50 ms interval: ~83 minutes).
inline constexpr size_t kProbeSamplesMax = 100'000;

// The lock state as AdminService lists it, at one moment per listing.
struct StateSnapshot {
  v1::GetServerStatusResponse status;  // Of the leader that answered.
  std::string answered_by;             // Address that served the listings.
  std::vector<v1::Lock> locks;
  std::vector<v1::Waiter> waiters;
  std::map<std::string, v1::Gateway> gateways;  // By gateway_id.
  std::map<std::string, int32_t> client_states;  // Clients with a state.
};

// Lists everything (all pages) through `connection`, which follows the
// leader. Errors: the first failed RPC, or RESOURCE_EXHAUSTED past
// kSnapshotItemsMax.
absl::StatusOr<StateSnapshot> TakeSnapshot(Connection* connection);

// One difference between two snapshots that counts as a loss.
struct DrillFinding {
  std::string kind;    // lock_lost, waiter_lost, gateway_state_changed,
                       // gateway_lost, client_state_changed, grace_started
  std::string item;    // What, for people ("fh=.. owner=.. range=..").
  std::string detail;  // Before -> after.
};

struct DrillComparison {
  size_t locks_before = 0;
  size_t locks_after = 0;
  size_t waiters_before = 0;
  size_t waiters_after = 0;
  size_t waiters_granted = 0;  // Queued before, held after.
  size_t gateways_checked = 0;
  size_t clients_checked = 0;
  std::vector<DrillFinding> findings;  // Empty: nothing lost or changed.
};

// Compares `before` and `after` as described at the top of this file.
DrillComparison CompareSnapshots(const StateSnapshot& before,
                                 const StateSnapshot& after);

// What the prober saw.
struct ProbeReport {
  size_t probes = 0;
  size_t failed = 0;
  // Longest time between two successful probes (or between the start and
  // the first success): the unavailability a client saw.
  absl::Duration longest_gap = absl::ZeroDuration();
  // When that gap started and ended (relative to the prober's start).
  absl::Duration gap_start = absl::ZeroDuration();
  absl::Duration gap_end = absl::ZeroDuration();
  std::string last_error;  // Of the last failed probe.
  absl::Time last_success = absl::InfinitePast();
};

// Repeatedly LOCKs and UNLOCKs the probe file (non-blocking, exclusive,
// client kProbeClient, gateway kDrillGatewayId) through its own Connection
// to `options.addresses` (leader redirects followed), one probe every
// `interval`, each RPC with `options.rpc_timeout`. A probe succeeds when
// both RPCs answer OK and the LOCK is GRANTED.
class Prober {
 public:
  Prober(ConnectionOptions options, absl::Duration interval);
  ~Prober();  // Stops.

  absl::Status Start();
  // Stops the thread (bounded by one probe) and releases the probe lock.
  void Stop();
  // The report so far (may be called while running).
  ProbeReport Report() const;
  // True once a probe that started after `t` succeeded.
  bool SucceededAfter(absl::Time t) const;
  // When the first probe started after `t` succeeded (its end), or
  // InfiniteFuture.
  absl::Time FirstSuccessAfter(absl::Time t) const;

 private:
  struct Sample {
    absl::Time start;
    absl::Time end;
    bool ok = false;
  };
  void Loop();
  bool ProbeOnce(std::string* error);

  ConnectionOptions options_;
  const absl::Duration interval_;
  std::unique_ptr<Connection> connection_;  // Used by the thread only.
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Time started_ = absl::InfinitePast();
  mutable absl::Mutex mu_;
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

// Human-readable identifiers used in findings and reports.
std::string DescribeLock(const v1::Lock& lock);
std::string DescribeWaiter(const v1::Waiter& waiter);

nlohmann::json FindingsToJson(const std::vector<DrillFinding>& findings);

}  // namespace lockwarden::cli

#endif  // LOCKWARDEN_CLI_DRILL_H_
