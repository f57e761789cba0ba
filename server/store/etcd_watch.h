// EtcdWatch: one etcd Watch over a key range, from a start revision on, on
// its own thread, surviving member failures. Standbys follow the state
// prefix with it (EtcdStore::WatchFrom); LeaderElection waits with it for
// the deletion of the key ahead of it.
//
// Delivery: on_events(events) gets the events of one WatchResponse, in
// revision order. etcd never splits one revision across responses (we do
// not ask for fragments), so every callback holds whole transactions: a
// standby applies a Commit's puts and deletes together. After an event of
// revision r the watch resumes, on any reconnect, from r + 1: nothing is
// skipped and nothing is delivered twice.
//
// Reconnects: a broken stream (member killed, no raft leader, partition)
// is reopened on the next endpoint after a pause, at most
// kMaxWatchReconnectsWithoutProgress times in a row without receiving a
// response; then on_end(UNAVAILABLE). If the start revision has been
// compacted, on_end(OUT_OF_RANGE): the follower must reload with a scan.
// on_end runs at most once (see also EtcdWatchOptions::on_gap), never after
// Cancel() (or the destructor) returns, and never for a Cancel().
//
// Previous values: with `prev_kv` set, etcd attaches to every update and
// delete event the key's value before it (read at mod_revision - 1), so a
// follower needs no copy of its own. etcd omits it for a create (a put
// with create_revision == mod_revision) and when that older revision has
// been compacted; then WatchEvent::prev_value is nullopt.
//
// Progress: RequestProgress() asks etcd (WatchProgressRequest) for a
// notification that every event up to its current revision has been sent;
// progress_revision() is then that revision (once the callbacks for every
// earlier event have returned). etcd 3.4 answers only once the watch has
// caught up with history, so callers poll. A standby uses it at takeover:
// caught up when progress_revision() >= a linearizable read's revision.
// etcd before 3.4.24 sends a requested notification apart from the event
// stream (etcd issue 15220): it can overtake events still queued on the
// server, so progress_revision() may run ahead of what was delivered. It is
// fit for status displays, not for a takeover: see sync_key.
//
// Sync marker: with `sync_key` set (a key inside the range, outside
// strip_prefix's keys), a put of that key is not delivered; it only moves
// delivered_revision(). A writer puts the marker, learns its revision R,
// and waits for delivered_revision() >= R: one watcher's events arrive in
// revision order, so every event below R has then been delivered, whatever
// etcd's progress notifications say.
//
// Thread safety: Cancel(), next_revision(), RequestProgress() and
// progress_revision() may be called from any thread but a callback; callbacks
// run on the watch thread, one at a time, and must not call Cancel() or destroy
// the watch.
#ifndef LOCKWARDEN_SERVER_STORE_ETCD_WATCH_H_
#define LOCKWARDEN_SERVER_STORE_ETCD_WATCH_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/etcd_client.h"

namespace lockwarden::store {

inline constexpr int kMaxWatchReconnectsWithoutProgress = 20;
// Pause before reopening a broken watch stream.
inline constexpr absl::Duration kWatchReconnectPause = absl::Milliseconds(200);
// A stream is reopened (from the next revision) at least this often, so no
// read blocks without bound even if a member hangs without closing.
inline constexpr absl::Duration kWatchStreamMaxAge = absl::Seconds(30);

struct WatchEvent {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  std::string key;    // Without the options' strip_prefix.
  std::string value;  // Empty for kDelete.
  int64_t mod_revision = 0;
  int64_t create_revision = 0;  // 0 for kDelete.
  // The value before this event; only with EtcdWatchOptions::prev_kv, and
  // nullopt for a create or when etcd had compacted the older revision.
  std::optional<std::string> prev_value;
};

// on_gap(start_revision) -> the revision the follower holds after reloading.
using WatchGapFn =
    std::function<absl::StatusOr<int64_t>(int64_t start_revision)>;

struct EtcdWatchOptions {
  std::string key;        // Start of the range (or the single key).
  std::string range_end;  // Exclusive end; empty = just `key`.
  int64_t start_revision = 0;  // Inclusive; must be > 0.
  std::string strip_prefix;    // Removed from every delivered key.
  bool only_deletes = false;   // Ask etcd to drop put events.
  bool prev_kv = false;        // Ask etcd for each event's previous value.
  // Set by followers that must see every delete (a standby): etcd drops
  // tombstones at a compaction revision C yet still lets a watch start at
  // C, so a stream from S could silently lack S's deletes. With on_gap set,
  // every stream (first start and each reconnect, from S) checks that S - 1
  // is not compacted (a Range at S - 1) before delivering its first
  // events. If S - 1 is compacted, or
  // etcd cancels the watch as compacted, on_gap(S) runs on the watch thread
  // instead of any delivery or on_end: the follower reloads and returns the
  // revision it now holds, and the watch resumes from the one after it. An
  // error from on_gap ends the watch (on_end gets it).
  WatchGapFn on_gap;
  // The sync marker's full key (see the banner); empty: none.
  std::string sync_key;
};

class EtcdWatch {
 public:
  using EventsFn = std::function<void(const std::vector<WatchEvent>& events)>;
  using EndFn = std::function<void(absl::Status why)>;

  // Starts the thread. `client` must outlive the watch.
  static absl::StatusOr<std::unique_ptr<EtcdWatch>> Start(
      EtcdClient* client, EtcdWatchOptions options, EventsFn on_events,
      EndFn on_end);

  // Cancel()s.
  ~EtcdWatch();
  EtcdWatch(const EtcdWatch&) = delete;
  EtcdWatch& operator=(const EtcdWatch&) = delete;

  // Stops the stream and joins the thread. Idempotent.
  void Cancel();

  // The revision the watch will deliver next (after the last event seen).
  int64_t next_revision() const;

  // Sends a progress request on the live stream; UNAVAILABLE if none is
  // open right now (reconnecting).
  absl::Status RequestProgress();
  // Every event at or below this revision has been delivered (0: unknown),
  // by etcd's progress notifications (not exact before etcd 3.4.24: see
  // the banner).
  int64_t progress_revision() const;
  // Every event at or below this revision has been delivered, proved by
  // the watch's own events (the last event's revision, a sync marker's,
  // or the revision an on_gap reload holds); never by a notification.
  int64_t delivered_revision() const;

 private:
  EtcdWatch(EtcdClient* client, EtcdWatchOptions options, EventsFn on_events,
            EndFn on_end);
  void Run();
  // One stream on one endpoint until it breaks, ends or is cancelled.
  // Returns true if it received at least one response. `why` gets the
  // terminal status when the watch must end (compaction), else stays OK;
  // `again_now` is set when the next stream should open without a pause
  // (resumed after a gap, nothing is wrong with the member).
  bool RunStream(absl::Status* why, bool* again_now);
  // With on_gap: false if `start` - 1 is compacted (or the check failed:
  // `*check_failed` set), true if the history from `start` on is whole.
  bool StartIsWhole(int64_t start, bool* check_failed);
  // Runs on_gap(start); the watch resumes after the revision it returns,
  // or ends (`*why`) if it fails.
  void ResumeAfterGap(int64_t start, absl::Status* why);

  // Constant after construction.
  EtcdClient* const client_;
  const EtcdWatchOptions options_;
  const EventsFn on_events_;
  const EndFn on_end_;

  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The open stream once the create request is written (RequestProgress
  // writes on it under mu_).
  grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>*
      stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t next_revision_ ABSL_GUARDED_BY(mu_);
  int64_t progress_revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t delivered_revision_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex join_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::thread thread_;
};

}  // namespace lockwarden::store

#endif  // LOCKWARDEN_SERVER_STORE_ETCD_WATCH_H_
