// LeaderElection: which lockwarden-server instance leads, decided by etcd.
// See docs/replication.md for the whole design.
//
// Each candidate grants itself a lease (TTL lease_ttl, kept alive every
// keepalive_interval over the LeaseKeepAlive stream) and creates
//   <election_prefix><server_id>  = <advertised address>   (with the lease)
// The candidate whose key has the lowest create revision leads; every other
// waits, with a Watch, for the deletion of the key with the next-lower
// create revision (etcd v3election ordering, so one deletion wakes one
// candidate, not a herd). The leader's key create revision is its fencing
// token: EtcdStore compares it in every write Txn, so a leader that lost its
// key (lease expired, deposed, resigned) cannot write even before it
// notices. Correctness never depends on clocks; timing only decides how
// soon a dead leader is replaced.
//
// Leadership ends when the leader key is deleted (lease expired on etcd,
// DeposeIfDead by a standby, Resign) or when the local lease deadline
// passes without a keepalive answer (etcd unreachable). on_lost runs, the
// lease is revoked if still alive, and after recampaign_delay the server
// campaigns again with a new lease and key (joining the back of the line).
//
// Fast failover: a standby that sees the leader's health endpoint fail
// calls DeposeIfDead(leader.key, leader.create_revision): a Txn that
// deletes the key only if it still has that create revision. The next
// candidate in line is woken at once instead of after the lease TTL. A
// wrong suspicion costs one failover, never a double write.
//
//   LeaderElection::Callbacks cb;
//   cb.on_elected = [&](const Leadership& l) {
//     (void)store->SetFence({l.key, l.create_revision});  /* then serve */ };
//   cb.on_lost = [&](const Leadership&, const absl::Status& why) {
//     store->ClearFence();  /* stop serving, rebuild from the store */ };
//   auto election = LeaderElection::Create(client, options, cb);
//   (*election)->Start();
//
// Thread safety: all public methods may be called from any thread, except
// from inside a callback: callbacks run on the election thread, one at a
// time, and must not call Stop() or Resign() (they may call the rest).
// No callback runs after Stop() returns.
#ifndef LOCKWARDEN_SERVER_REPLICATION_LEADER_ELECTION_H_
#define LOCKWARDEN_SERVER_REPLICATION_LEADER_ELECTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/etcd_client.h"

namespace lockwarden::replication {

inline constexpr char kDefaultElectionPrefix[] = "/lockwarden/v1/leader/";
// etcd raises shorter TTLs to its minimum (1.5 x election timeout, so 2 s
// with default raft timing). 5 s rides out an etcd leader election (about
// one election timeout, 1 s by default, plus the client's retry on another
// member) without losing the lease; a dead leader is replaced much sooner
// by the standbys' health probes (failure_detector.h), so the TTL only
// bounds how long a leader cut off from everyone else may linger.
inline constexpr absl::Duration kDefaultLeaseTtl = absl::Seconds(5);
inline constexpr absl::Duration kDefaultRecampaignDelay = absl::Milliseconds(500);
// Waits on a watch are re-checked with a fresh read at least this often, so
// a lost watch event can delay a takeover by at most this much.
inline constexpr absl::Duration kElectionRecheckInterval = absl::Seconds(3);
inline constexpr size_t kMaxServerIdBytes = 128;
// Attempts at clearing a stale key of our own id left by an earlier run.
inline constexpr int kMaxStaleKeyClears = 3;

struct LeaderElectionOptions {
  // Unique per server; no '/'. Two live processes with the same id depose
  // each other.
  std::string server_id;
  // Stored as the leader key's value: where clients find the leader.
  std::string advertised_address;
  std::string election_prefix = kDefaultElectionPrefix;
  // Whole seconds, >= 1.
  absl::Duration lease_ttl = kDefaultLeaseTtl;
  // Zero = lease_ttl / 3.
  absl::Duration keepalive_interval = absl::ZeroDuration();
  absl::Duration recampaign_delay = kDefaultRecampaignDelay;
};

// What this process holds while it leads.
struct Leadership {
  std::string key;
  int64_t create_revision = 0;  // The fencing token.
  int64_t lease_id = 0;
};

// The current leader as etcd says.
struct LeaderInfo {
  std::string key;
  std::string server_id;
  std::string address;
  int64_t create_revision = 0;
};

class LeaderElection {
 public:
  struct Callbacks {
    std::function<void(const Leadership&)> on_elected;
    std::function<void(const Leadership&, const absl::Status& why)> on_lost;
  };

  // `client` is not owned and must outlive the election.
  static absl::StatusOr<std::unique_ptr<LeaderElection>> Create(
      store::EtcdClient* client, LeaderElectionOptions options,
      Callbacks callbacks);

  // Stop()s.
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Starts campaigning on the election thread. Call once.
  void Start();
  // Leaves the election: on_lost (reason CANCELLED) if leading, lease
  // revoked (the key disappears at once, so a standby takes over without
  // waiting for the TTL), threads joined. Idempotent; bounded by the etcd
  // call timeout.
  void Stop();

  // Steps down if leading: on_lost (reason ABORTED "resigned"), lease
  // revoked, campaign again after recampaign_delay. Waits until on_lost has
  // run. FAILED_PRECONDITION if not leading.
  absl::Status Resign();

  bool IsLeader() const;
  std::optional<Leadership> leadership() const;

  // Reads etcd: the key with the lowest create revision under the prefix.
  // NOT_FOUND if there is no candidate at all.
  absl::StatusOr<LeaderInfo> CurrentLeader() const;
  absl::StatusOr<std::string> LeaderAddress() const;

  // Deletes `leader_key` only if its create revision is still
  // `create_revision`. OK if deleted; FAILED_PRECONDITION if the key is gone
  // or was re-created (that leader is already gone).
  absl::Status DeposeIfDead(const std::string& leader_key,
                            int64_t create_revision);

  // Test hooks. Paused keepalives let the lease expire on etcd, as when the
  // process is stopped or cut off. Abandon ends the threads without
  // revoking the lease or running callbacks, leaving the key behind as a
  // kill -9 would; the object can only be destroyed afterwards.
  void PauseKeepAlivesForTesting(bool paused);
  void AbandonForTesting();

 private:
  LeaderElection(store::EtcdClient* client, LeaderElectionOptions options,
                 Callbacks callbacks);

  void Run();
  // One lease, one key: campaign, wait, lead, until something ends it.
  absl::Status RunTerm(int64_t* lease_id);
  absl::StatusOr<int64_t> Campaign(int64_t lease_id);
  // Waits for the deletion of `key` from `from_revision` on, up to
  // `timeout`. true if it was deleted; false on timeout, interruption or a
  // broken watch (the caller re-reads).
  bool WaitForDelete(const std::string& key, int64_t from_revision,
                     absl::Duration timeout);
  // Non-OK when the current term must end (stop, resign, lease lost).
  absl::Status Interrupted() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool InterruptedOrDeleted() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void KeepAliveLoop(int64_t lease_id, absl::Duration ttl);
  absl::StatusOr<int64_t> KeepAliveOnce(int64_t lease_id);
  void EndTerm(const absl::Status& why, int64_t lease_id);

  // Constant after construction.
  store::EtcdClient* const client_;
  const LeaderElectionOptions options_;
  const Callbacks callbacks_;
  const std::string key_;  // election_prefix + server_id.

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  bool resign_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool keepalive_paused_ ABSL_GUARDED_BY(mu_) = false;
  // Per term.
  bool term_over_ ABSL_GUARDED_BY(mu_) = false;  // Stops the keepalive thread.
  absl::Status lease_lost_ ABSL_GUARDED_BY(mu_);
  absl::Time lease_valid_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool watched_key_deleted_ ABSL_GUARDED_BY(mu_) = false;
  bool watch_ended_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Leadership> leadership_ ABSL_GUARDED_BY(mu_);
  // Counts completed step-downs, so Resign() can wait for its own.
  uint64_t terms_ended_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
  std::thread keepalive_thread_;  // Owned by the election thread.
};

}  // namespace lockwarden::replication

#endif  // LOCKWARDEN_SERVER_REPLICATION_LEADER_ELECTION_H_
