#include "server/store/etcd_watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "mvccpb/kv.pb.h"

namespace lockwarden::store {

absl::StatusOr<std::unique_ptr<EtcdWatch>> EtcdWatch::Start(
    EtcdClient* client, EtcdWatchOptions options, EventsFn on_events,
    EndFn on_end) {
  if (client == nullptr) return absl::InvalidArgumentError("watch: no client");
  if (options.key.empty()) return absl::InvalidArgumentError("watch: empty key");
  if (options.start_revision <= 0) {
    return absl::InvalidArgumentError("watch: start_revision must be > 0");
  }
  std::unique_ptr<EtcdWatch> watch(new EtcdWatch(
      client, std::move(options), std::move(on_events), std::move(on_end)));
  watch->thread_ = std::thread([w = watch.get()] { w->Run(); });
  return watch;
}

EtcdWatch::EtcdWatch(EtcdClient* client, EtcdWatchOptions options,
                     EventsFn on_events, EndFn on_end)
    : client_(client),
      options_(std::move(options)),
      on_events_(std::move(on_events)),
      on_end_(std::move(on_end)),
      next_revision_(options_.start_revision) {}

EtcdWatch::~EtcdWatch() { Cancel(); }

void EtcdWatch::Cancel() {
  absl::MutexLock join(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (stream_context_ != nullptr) stream_context_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

int64_t EtcdWatch::next_revision() const {
  absl::MutexLock lock(&mu_);
  return next_revision_;
}

absl::Status EtcdWatch::RequestProgress() {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return absl::UnavailableError("etcd watch: no open stream");
  etcdserverpb::WatchRequest request;
  request.mutable_progress_request();
  if (!stream_->Write(request)) return absl::UnavailableError("etcd watch: stream broken");
  return absl::OkStatus();
}

int64_t EtcdWatch::progress_revision() const {
  absl::MutexLock lock(&mu_);
  return progress_revision_;
}

int64_t EtcdWatch::delivered_revision() const {
  absl::MutexLock lock(&mu_);
  return delivered_revision_;
}

void EtcdWatch::Run() {
  int failures = 0;
  absl::Status why;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
    }
    bool again_now = false;
    const bool progressed = RunStream(&why, &again_now);
    if (!why.ok()) break;
    if (again_now) {
      // Resumed after on_gap's reload; a follower bounds its reloads (and
      // fails on_gap past its limit), which ends this loop.
      failures = 0;
      continue;
    }
    failures = progressed ? 0 : failures + 1;
    if (failures >= kMaxWatchReconnectsWithoutProgress) {
      why = absl::UnavailableError(absl::StrCat(
          "etcd watch: ", failures, " reconnects without a response"));
      break;
    }
    absl::MutexLock lock(&mu_);
    // Wakes early on Cancel().
    mu_.AwaitWithTimeout(absl::Condition(&cancelled_), kWatchReconnectPause);
  }
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return;
  }
  if (on_end_) on_end_(why);
}

bool EtcdWatch::StartIsWhole(int64_t start, bool* check_failed) {
  // Revision 1 is etcd's empty start: nothing before it to compact.
  if (start <= 1) return true;
  etcdserverpb::RangeRequest request;
  request.set_key(options_.key);
  request.set_range_end(options_.range_end);
  request.set_revision(start - 1);
  request.set_count_only(true);
  absl::StatusOr<etcdserverpb::RangeResponse> r = client_->Range(request);
  if (r.ok()) return true;
  // etcd's ErrCompacted ("mvcc: required revision has been compacted").
  if (r.status().code() != absl::StatusCode::kOutOfRange) *check_failed = true;
  return false;
}

void EtcdWatch::ResumeAfterGap(int64_t start, absl::Status* why) {
  absl::StatusOr<int64_t> held = options_.on_gap(start);
  if (!held.ok()) {
    *why = held.status();
    return;
  }
  absl::MutexLock lock(&mu_);
  next_revision_ = std::max(next_revision_, *held + 1);
  progress_revision_ = std::max(progress_revision_, *held);
  delivered_revision_ = std::max(delivered_revision_, *held);
}

bool EtcdWatch::RunStream(absl::Status* why, bool* again_now) {
  const size_t endpoint = client_->PreferredEndpoint();
  if (!client_->Connect(endpoint, absl::Now() + kWatchStreamMaxAge).ok()) {
    client_->MarkFailed(endpoint);
    return false;
  }
  grpc::ClientContext context;
  EtcdClient::PrepareContext(&context, absl::Now() + kWatchStreamMaxAge,
                             /*require_leader=*/true);
  etcdserverpb::WatchRequest request;
  int64_t start = 0;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return false;
    start = next_revision_;
    stream_context_ = &context;
    etcdserverpb::WatchCreateRequest* create = request.mutable_create_request();
    create->set_key(options_.key);
    create->set_range_end(options_.range_end);
    create->set_start_revision(next_revision_);
    if (options_.only_deletes) {
      create->add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    }
    create->set_prev_kv(options_.prev_kv);
  }
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest,
                                           etcdserverpb::WatchResponse>>
      stream = client_->watch_stub(endpoint)->Watch(&context);
  bool progressed = false;
  bool broken = true;  // Unless the watch ended on purpose.
  if (stream->Write(request)) {
    {
      absl::MutexLock lock(&mu_);
      stream_ = stream.get();
    }
    etcdserverpb::WatchResponse response;
    // Order (with on_gap): the check runs after etcd has sent this stream's
    // first events, i.e. after it has read the revisions from `start` on,
    // and before any of them is delivered.
    // Compaction revisions only grow, so if `start` - 1 is not compacted at
    // the check it was not when etcd read them: no tombstone at or above
    // `start` was dropped. Checking before creating the stream would leave a
    // compaction landing in between unseen.
    bool start_checked = !options_.on_gap;
    while (stream->Read(&response)) {
      progressed = true;
      if (response.canceled() && response.compact_revision() > 0 &&
          options_.on_gap) {
        ResumeAfterGap(start, why);
        *again_now = why->ok();
        broken = false;
        break;
      }
      // Only an events response proves etcd has read the history from
      // `start`: etcd before 3.4.24 answers a progress request at once with
      // its current revision, even for a watcher still reading its backlog
      // (etcd issue 15220).
      if (!start_checked && response.events_size() > 0) {
        bool check_failed = false;
        if (!StartIsWhole(start, &check_failed)) {
          if (check_failed) {
            progressed = false;  // Counts as a failed reconnect.
          } else {
            ResumeAfterGap(start, why);
            *again_now = why->ok();
            broken = false;
          }
          break;
        }
        start_checked = true;
      }
      if (response.canceled()) {
        if (response.compact_revision() > 0) {
          *why = absl::OutOfRangeError(absl::StrCat(
              "etcd watch: revision compacted (oldest is ",
              response.compact_revision(), ")"));
          broken = false;
        }
        break;
      }
      if (response.events_size() == 0) {
        // A progress notification (not the creation answer, whose revision
        // precedes the history still to come): all events up to its
        // revision have been delivered.
        if (!response.created()) {
          absl::MutexLock lock(&mu_);
          progress_revision_ =
              std::max(progress_revision_, response.header().revision());
        }
        continue;
      }
      std::vector<WatchEvent> events;
      events.reserve(response.events_size());
      for (const mvccpb::Event& e : response.events()) {
        // The sync marker proves progress; it is nobody's record.
        if (!options_.sync_key.empty() && e.kv().key() == options_.sync_key) {
          continue;
        }
        WatchEvent out;
        out.type = e.type() == mvccpb::Event::DELETE ? WatchEvent::Type::kDelete
                                                     : WatchEvent::Type::kPut;
        absl::string_view key = e.kv().key();
        absl::ConsumePrefix(&key, options_.strip_prefix);
        out.key = std::string(key);
        if (out.type == WatchEvent::Type::kPut) {
          out.value = e.kv().value();
          out.create_revision = e.kv().create_revision();
        }
        out.mod_revision = e.kv().mod_revision();
        if (e.has_prev_kv()) out.prev_value = e.prev_kv().value();
        events.push_back(std::move(out));
      }
      // Revision order: the response's last event (marker or not) is its
      // newest.
      const int64_t last =
          response.events(response.events_size() - 1).kv().mod_revision();
      {
        absl::MutexLock lock(&mu_);
        next_revision_ = last + 1;
      }
      if (on_events_ && !events.empty()) on_events_(events);
      absl::MutexLock lock(&mu_);
      progress_revision_ = std::max(progress_revision_, last);
      delivered_revision_ = std::max(delivered_revision_, last);
    }
    {
      absl::MutexLock lock(&mu_);
      stream_ = nullptr;
    }
    stream->WritesDone();
  }
  context.TryCancel();  // Finish() must not wait for a live server stream.
  (void)stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    stream_context_ = nullptr;
  }
  if (broken) client_->MarkFailed(endpoint);
  return progressed;
}

}  // namespace lockwarden::store
