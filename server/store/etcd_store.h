// EtcdStore: the StateStore on an etcd v3 cluster, for replicated
// lockwarden (--store=etcd --etcd-endpoints=...). See docs/replication.md.
//
// Key layout: every StateStore key k is stored as <key_prefix>k (default
// prefix "/lockwarden/v1/state/"); Scan(p) is a Range over [prefix+p,
// PrefixSuccessor(prefix+p)). The leader keys live elsewhere
// ("/lockwarden/v1/leader/", server/replication), never under key_prefix.
//
// Commit(batch) is exactly one etcd Txn, never split:
//   compare: [ leader_key CREATE == token ]      (fenced mode, see below)
//   success: the batch's puts and deletes, one op per distinct key (etcd
//            refuses a txn touching a key twice, so only each key's last
//            mutation is sent: the same final state the ordered batch gives)
//   failure: nothing
// A Txn applies atomically once a quorum has it, so OK means durable.
// Limits() reports etcd's limits: max_txn_ops per Txn (etcd's
// --max-txn-ops, 128 by default; set both higher together for bigger group
// commits) and 1.5 MiB per request (--max-request-bytes, less headroom for
// the prefix and the protobuf framing), so CommitPipeline cuts its groups to
// fit one Txn. A batch whose encoded Txn would still exceed the request
// limit is refused with INVALID_ARGUMENT before anything is sent; so is a
// Txn etcd finds too big (max_txn_ops above the cluster's --max-txn-ops).
//
// Fencing. In fenced mode (the server) a Commit is allowed only while a
// fence is set: SetFence({leader_key, create_revision}) when this process
// wins the election, ClearFence() when it loses. Every Txn compares the
// leader key's create revision with the token, so a deposed leader (paused,
// partitioned, slow) can never write, whatever its clock says: the compare
// fails and Commit returns FAILED_PRECONDITION ("fenced: not the leader any
// more"), after which this store refuses commits under that token for good.
// Unfenced mode (tests, tools) sends plain Txns and FencingToken() is 0.
//
// Failures: UNAVAILABLE when no member answered in time (the Txn may or may
// not have been applied, never partly). A failed compare after an attempt
// whose outcome is unknown still reports FAILED_PRECONDITION: the writer
// is fenced either way, and the caller must treat the batch as unknown.
//
// Scan pages through the range (scan_page_keys keys per Range) at the
// revision of the first page, so it is one consistent point-in-time view. If
// that revision is compacted mid-scan the scan fails with ABORTED (nothing
// in lockwarden compacts; an operator's --auto-compaction could).
//
// WatchFrom(revision) streams every put/delete under the prefix from a
// revision on: standbys load a snapshot with ScanWithRevision() and follow
// from revision + 1 (a warm copy, no reload at takeover), asking for each
// change's previous value so they keep no copy of the records.
//
// Thread safety: all methods may be called from any thread concurrently
// (StateStore's contract). Watch callbacks run on the watch's own thread.
#ifndef LOCKWARDEN_SERVER_STORE_ETCD_STORE_H_
#define LOCKWARDEN_SERVER_STORE_ETCD_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/mutation.h"
#include "server/store/etcd_client.h"
#include "server/store/etcd_watch.h"
#include "server/store/state_store.h"

namespace lockwarden::store {

inline constexpr char kDefaultEtcdStatePrefix[] = "/lockwarden/v1/state/";
// etcd's defaults: --max-txn-ops and --max-request-bytes.
inline constexpr size_t kEtcdMaxTxnOps = 128;
// Upper bound of EtcdStoreOptions::max_txn_ops: the generic batch limit.
inline constexpr size_t kEtcdMaxTxnOpsLimit = kMaxMutationsPerBatch;
inline constexpr size_t kEtcdMaxRequestBytes = 1536 * 1024;
// Kept free of the request limit for key prefixes, protobuf framing, the
// fencing compare and etcd's internal request header.
inline constexpr size_t kEtcdRequestHeadroomBytes = 64 * 1024;
// Keys per Range page of a Scan. A page is at most this many keys of
// kMaxKeyBytes + kMaxValueBytes, well below kEtcdMaxReceiveMessageBytes.
inline constexpr int64_t kDefaultEtcdScanPageKeys = 256;

// The right to write: the election key this process created and its
// create revision (the fencing token, > 0).
struct EtcdFence {
  std::string leader_key;
  int64_t create_revision = 0;
};

struct EtcdStoreOptions {
  EtcdClientOptions client;
  std::string key_prefix = kDefaultEtcdStatePrefix;
  // true: Commit needs a fence (the server). false: plain Txns (tests,
  // tools); FencingToken() is 0.
  bool fenced = true;
  int64_t scan_page_keys = kDefaultEtcdScanPageKeys;
  // Operations per Txn, at most the cluster's --max-txn-ops; 1 to
  // kEtcdMaxTxnOpsLimit.
  size_t max_txn_ops = kEtcdMaxTxnOps;
};

class EtcdStore : public StateStore {
 public:
  // Connects lazily: Open checks the options, not that etcd is up.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(EtcdStoreOptions options);
  // Shares `client` (e.g. with LeaderElection); not owned, must outlive the
  // store.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> OpenWithClient(
      EtcdClient* client, EtcdStoreOptions options);

  ~EtcdStore() override;

  absl::Status Commit(const Delta& batch) override;
  absl::Status Scan(absl::string_view prefix, const ScanFn& fn) const override;
  absl::StatusOr<std::optional<std::string>> Get(
      absl::string_view key) const override;
  uint64_t FencingToken() const override;
  std::string BackendName() const override { return "etcd"; }
  absl::Status Health() const override;
  StoreLimits Limits() const override;

  // Fenced mode: allows commits under `fence` (replacing any earlier one).
  // INVALID_ARGUMENT for an empty key or a token <= 0.
  absl::Status SetFence(EtcdFence fence);
  // Fenced mode: refuses commits (FAILED_PRECONDITION) until the next
  // SetFence. Call on losing leadership.
  void ClearFence();

  // Scan() that also returns the etcd revision the view was taken at.
  absl::StatusOr<int64_t> ScanWithRevision(absl::string_view prefix,
                                           const ScanFn& fn) const;
  // The cluster's current revision (a linearizable read).
  absl::StatusOr<int64_t> CurrentRevision() const;
  // Puts the sync marker (sync_key()) and returns its revision R: every
  // commit acknowledged before the call is below R, and a WatchFrom watch
  // has delivered all of them once its delivered_revision() >= R
  // (etcd_watch.h: exact, unlike etcd 3.4's progress notifications). Not
  // fenced: the marker is nobody's record, any server may write it.
  absl::StatusOr<int64_t> PutSyncMarker() const;
  // The sync marker's key: the first key after key_prefix's range
  // (PrefixSuccessor(key_prefix), e.g. "/lockwarden/v1/state0"), so Scan
  // and Get never see it while WatchFrom's range takes it in. With etcd
  // auth, the server's role needs write access to it too.
  const std::string& sync_key() const { return range_end_; }

  // Streams puts and deletes under the whole key_prefix from
  // `start_revision` (inclusive) on; see EtcdWatch. Keys are passed without
  // key_prefix. With `previous_values` every update and delete carries the
  // value it replaced (WatchEvent::prev_value, etcd's prev_kv), when etcd
  // still has it. With `on_gap`, every stream checks that its start is not
  // at a compaction revision (see EtcdWatchOptions::on_gap).
  absl::StatusOr<std::unique_ptr<EtcdWatch>> WatchFrom(
      int64_t start_revision, EtcdWatch::EventsFn on_events,
      EtcdWatch::EndFn on_end, bool previous_values = false,
      WatchGapFn on_gap = nullptr) const;

  const std::string& key_prefix() const { return options_.key_prefix; }
  EtcdClient* client() const { return client_; }

 private:
  EtcdStore(std::unique_ptr<EtcdClient> owned, EtcdClient* client,
            EtcdStoreOptions options);

  // The fence to compare against, or an error if commits are not allowed.
  absl::StatusOr<std::optional<EtcdFence>> CurrentFence() const;
  absl::StatusOr<etcdserverpb::TxnRequest> BuildTxn(
      const Delta& batch, const std::optional<EtcdFence>& fence) const;
  void NoteCallResult(const absl::Status& status) const;

  // Constant after construction.
  const std::unique_ptr<EtcdClient> owned_client_;
  EtcdClient* const client_;
  const EtcdStoreOptions options_;
  const std::string range_end_;  // PrefixSuccessor(key_prefix).

  mutable absl::Mutex mu_;
  std::optional<EtcdFence> fence_ ABSL_GUARDED_BY(mu_);
  // The token whose compare failed: commits under it are refused locally.
  int64_t fenced_out_token_ ABSL_GUARDED_BY(mu_) = 0;
  // The last etcd call's error, OK after a success: what Health() reports.
  mutable absl::Status last_call_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_ETCD_STORE_H_
