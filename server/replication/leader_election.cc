#include "server/replication/leader_election.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "mvccpb/kv.pb.h"
#include "server/store/etcd_watch.h"
#include "server/store/state_store.h"

namespace lockwarden::replication {
namespace {

// After a failed keepalive, the next try comes this soon (another member).
constexpr absl::Duration kKeepAliveRetryPause = absl::Milliseconds(100);
// After a failed read while waiting in line, the next read comes this soon.
constexpr absl::Duration kReadRetryPause = absl::Milliseconds(100);

etcdserverpb::RequestOp RangeOp(const std::string& key,
                                const std::string& range_end) {
  etcdserverpb::RequestOp op;
  op.mutable_request_range()->set_key(key);
  op.mutable_request_range()->set_range_end(range_end);
  return op;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LeaderElection>> LeaderElection::Create(
    store::EtcdClient* client, LeaderElectionOptions options,
    Callbacks callbacks) {
  if (client == nullptr) return absl::InvalidArgumentError("election: no etcd client");
  if (options.server_id.empty() || options.server_id.size() > kMaxServerIdBytes ||
      absl::StrContains(options.server_id, "/")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "election: server id must be 1..", kMaxServerIdBytes,
        " bytes without '/'"));
  }
  if (!store::PrefixSuccessor(options.election_prefix).has_value()) {
    return absl::InvalidArgumentError("election: bad election prefix");
  }
  if (options.lease_ttl < absl::Seconds(1) ||
      options.lease_ttl != absl::Seconds(absl::ToInt64Seconds(options.lease_ttl))) {
    return absl::InvalidArgumentError("election: lease TTL must be whole seconds >= 1");
  }
  if (options.keepalive_interval == absl::ZeroDuration()) {
    options.keepalive_interval = options.lease_ttl / 3;
  }
  if (options.keepalive_interval <= absl::ZeroDuration() ||
      options.keepalive_interval >= options.lease_ttl) {
    return absl::InvalidArgumentError(
        "election: keepalive interval must be in (0, lease TTL)");
  }
  return std::unique_ptr<LeaderElection>(
      new LeaderElection(client, std::move(options), std::move(callbacks)));
}

LeaderElection::LeaderElection(store::EtcdClient* client,
                               LeaderElectionOptions options,
                               Callbacks callbacks)
    : client_(client),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      key_(options_.election_prefix + options_.server_id) {}

LeaderElection::~LeaderElection() { Stop(); }

void LeaderElection::Start() {
  absl::MutexLock join(&join_mu_);
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void LeaderElection::Stop() {
  absl::MutexLock join(&join_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LeaderElection::AbandonForTesting() {
  {
    absl::MutexLock lock(&mu_);
    abandoned_ = true;
  }
  Stop();
}

void LeaderElection::PauseKeepAlivesForTesting(bool paused) {
  absl::MutexLock lock(&mu_);
  keepalive_paused_ = paused;
}

bool LeaderElection::IsLeader() const {
  absl::MutexLock lock(&mu_);
  return leadership_.has_value();
}

std::optional<Leadership> LeaderElection::leadership() const {
  absl::MutexLock lock(&mu_);
  return leadership_;
}

absl::Status LeaderElection::Resign() {
  absl::MutexLock lock(&mu_);
  if (!leadership_.has_value()) {
    return absl::FailedPreconditionError("resign: not the leader");
  }
  resign_requested_ = true;
  const uint64_t before = terms_ended_;
  auto done = [this, before]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return terms_ended_ > before || stopping_;
  };
  // The step-down revokes the lease: bounded by one etcd call.
  if (!mu_.AwaitWithTimeout(absl::Condition(&done),
                            client_->options().call_timeout * 2)) {
    return absl::DeadlineExceededError("resign: step-down did not complete");
  }
  return absl::OkStatus();
}

absl::Status LeaderElection::Interrupted() const {
  if (stopping_) return absl::CancelledError("election stopped");
  if (resign_requested_) return absl::AbortedError("resigned");
  if (!lease_lost_.ok()) return lease_lost_;
  if (absl::Now() >= lease_valid_until_) {
    return absl::UnavailableError("lease expired locally: no keepalive answer within its TTL");
  }
  return absl::OkStatus();
}

bool LeaderElection::InterruptedOrDeleted() const {
  return watched_key_deleted_ || watch_ended_ || !Interrupted().ok();
}

void LeaderElection::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      term_over_ = false;
      lease_lost_ = absl::OkStatus();
      lease_valid_until_ = absl::InfinitePast();
      resign_requested_ = false;
    }
    int64_t lease_id = 0;
    absl::Status why = RunTerm(&lease_id);
    EndTerm(why, lease_id);
    absl::MutexLock lock(&mu_);
    if (stopping_) break;
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.recampaign_delay);
  }
}

absl::Status LeaderElection::RunTerm(int64_t* lease_id) {
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(absl::ToInt64Seconds(options_.lease_ttl));
  const absl::Time sent = absl::Now();
  absl::StatusOr<etcdserverpb::LeaseGrantResponse> lease = client_->LeaseGrant(grant);
  if (!lease.ok()) return lease.status();
  *lease_id = lease->id();
  const absl::Duration ttl = absl::Seconds(lease->ttl());
  {
    absl::MutexLock lock(&mu_);
    lease_valid_until_ = sent + ttl;
  }
  keepalive_thread_ = std::thread([this, id = *lease_id, ttl] { KeepAliveLoop(id, ttl); });

  absl::StatusOr<int64_t> my_revision = Campaign(*lease_id);
  if (!my_revision.ok()) return my_revision.status();
  LogEvent(LogLevel::kInfo, "election_campaign",
           {{"key", key_}, {"create_revision", *my_revision}, {"lease", *lease_id}});

  // Wait in line: for the key just ahead of ours to go, until none is left.
  int64_t seen_revision = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = Interrupted(); !s.ok()) return s;
    }
    etcdserverpb::TxnRequest read;
    *read.add_success() = RangeOp(key_, "");
    etcdserverpb::RequestOp ahead = RangeOp(
        options_.election_prefix, *store::PrefixSuccessor(options_.election_prefix));
    ahead.mutable_request_range()->set_max_create_revision(*my_revision - 1);
    ahead.mutable_request_range()->set_sort_target(etcdserverpb::RangeRequest::CREATE);
    ahead.mutable_request_range()->set_sort_order(etcdserverpb::RangeRequest::DESCEND);
    ahead.mutable_request_range()->set_limit(1);
    *read.add_success() = std::move(ahead);
    absl::StatusOr<etcdserverpb::TxnResponse> r = client_->Txn(read);
    if (!r.ok() || r->responses_size() != 2) {
      absl::SleepFor(kReadRetryPause);
      continue;  // The lease deadline ends the term if etcd stays away.
    }
    const auto& own = r->responses(0).response_range().kvs();
    if (own.empty() || own[0].create_revision() != *my_revision) {
      return absl::AbortedError("candidate key deleted while waiting in line");
    }
    seen_revision = r->header().revision();
    const auto& before = r->responses(1).response_range().kvs();
    if (before.empty()) break;
    WaitForDelete(before[0].key(), seen_revision + 1, kElectionRecheckInterval);
  }

  const Leadership me{key_, *my_revision, *lease_id};
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Interrupted(); !s.ok()) return s;
    leadership_ = me;
  }
  LogEvent(LogLevel::kInfo, "election_won",
           {{"key", key_}, {"fencing_token", me.create_revision}});
  if (callbacks_.on_elected) callbacks_.on_elected(me);

  // Lead until our key goes or the lease can no longer be vouched for.
  while (true) {
    absl::Duration wait;
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = Interrupted(); !s.ok()) return s;
      wait = std::min(kElectionRecheckInterval, lease_valid_until_ - absl::Now());
    }
    if (WaitForDelete(key_, seen_revision + 1, wait)) {
      return absl::AbortedError("leader key deleted (deposed, or lease expired on etcd)");
    }
    {
      absl::MutexLock lock(&mu_);
      if (absl::Status s = Interrupted(); !s.ok()) return s;
    }
    etcdserverpb::RangeRequest check;
    check.set_key(key_);
    absl::StatusOr<etcdserverpb::RangeResponse> r = client_->Range(check);
    if (!r.ok()) continue;
    if (r->kvs().empty() || r->kvs(0).create_revision() != *my_revision) {
      return absl::AbortedError("leader key gone");
    }
    seen_revision = r->header().revision();
  }
}

absl::StatusOr<int64_t> LeaderElection::Campaign(int64_t lease_id) {
  for (int clears = 0; clears <= kMaxStaleKeyClears; ++clears) {
    etcdserverpb::TxnRequest txn;
    etcdserverpb::Compare* absent = txn.add_compare();
    absent->set_key(key_);
    absent->set_target(etcdserverpb::Compare::CREATE);
    absent->set_create_revision(0);
    etcdserverpb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key_);
    put->set_value(options_.advertised_address);
    put->set_lease(lease_id);
    *txn.add_failure() = RangeOp(key_, "");
    absl::StatusOr<etcdserverpb::TxnResponse> r = client_->Txn(txn);
    if (!r.ok()) return r.status();
    if (r->succeeded()) return r->header().revision();
    if (r->responses_size() != 1 ||
        r->responses(0).response_range().kvs().empty()) {
      continue;  // Deleted in between: try again.
    }
    const mvccpb::KeyValue& existing = r->responses(0).response_range().kvs(0);
    // A retried attempt of ours that was applied: the key is ours.
    if (existing.lease() == lease_id) return existing.create_revision();
    // Left by an earlier run of this server id (its lease not yet expired).
    // Server ids are unique, so that run is gone or is deposed by this.
    LogEvent(LogLevel::kWarn, "election_stale_key",
             {{"key", key_}, {"create_revision", existing.create_revision()}});
    absl::Status deposed = DeposeIfDead(key_, existing.create_revision());
    if (!deposed.ok() && deposed.code() != absl::StatusCode::kFailedPrecondition) {
      return deposed;
    }
  }
  return absl::AbortedError("election: could not create the candidate key");
}

bool LeaderElection::WaitForDelete(const std::string& key, int64_t from_revision,
                                   absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    watched_key_deleted_ = false;
    watch_ended_ = false;
  }
  store::EtcdWatchOptions options;
  options.key = key;
  options.start_revision = from_revision;
  options.only_deletes = true;
  absl::StatusOr<std::unique_ptr<store::EtcdWatch>> watch = store::EtcdWatch::Start(
      client_, options,
      [this](const std::vector<store::WatchEvent>& events) {
        for (const store::WatchEvent& e : events) {
          if (e.type != store::WatchEvent::Type::kDelete) continue;
          absl::MutexLock lock(&mu_);
          watched_key_deleted_ = true;
        }
      },
      [this](absl::Status) {
        absl::MutexLock lock(&mu_);
        watch_ended_ = true;
      });
  if (!watch.ok()) return false;
  bool deleted = false;
  {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(
        absl::Condition(this, &LeaderElection::InterruptedOrDeleted),
        std::max(timeout, absl::ZeroDuration()));
    deleted = watched_key_deleted_;
  }
  (*watch)->Cancel();  // Not under mu_: the watch's callbacks take it.
  return deleted;
}

void LeaderElection::KeepAliveLoop(int64_t lease_id, absl::Duration ttl) {
  absl::Time next = absl::Now() + options_.keepalive_interval;
  while (true) {
    bool paused;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(&term_over_), next);
      if (term_over_) return;
      paused = keepalive_paused_;
    }
    next = absl::Now() + options_.keepalive_interval;
    if (!paused) {
      const absl::Time sent = absl::Now();
      absl::StatusOr<int64_t> remaining = KeepAliveOnce(lease_id);
      absl::MutexLock lock(&mu_);
      if (remaining.ok() && *remaining <= 0) {
        lease_lost_ = absl::NotFoundError("lease expired on etcd");
        return;
      }
      if (remaining.ok()) {
        // etcd counts the TTL from when it got the request, which is after
        // `sent`: our deadline is never later than etcd's.
        lease_valid_until_ = std::max(
            lease_valid_until_, sent + std::min(ttl, absl::Seconds(*remaining)));
      } else {
        next = absl::Now() + kKeepAliveRetryPause;
      }
    }
    absl::MutexLock lock(&mu_);
    if (absl::Now() >= lease_valid_until_) {
      lease_lost_ = absl::UnavailableError(
          "lease lost: no keepalive answer within its TTL");
      return;
    }
  }
}

absl::StatusOr<int64_t> LeaderElection::KeepAliveOnce(int64_t lease_id) {
  const size_t endpoint = client_->PreferredEndpoint();
  const absl::Time deadline = absl::Now() + options_.keepalive_interval;
  if (absl::Status s = client_->Connect(endpoint, deadline); !s.ok()) {
    client_->MarkFailed(endpoint);
    return s;
  }
  grpc::ClientContext context;
  store::EtcdClient::PrepareContext(&context, deadline, /*require_leader=*/true);
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::LeaseKeepAliveRequest,
                                           etcdserverpb::LeaseKeepAliveResponse>>
      stream = client_->lease_stub(endpoint)->LeaseKeepAlive(&context);
  etcdserverpb::LeaseKeepAliveRequest request;
  request.set_id(lease_id);
  etcdserverpb::LeaseKeepAliveResponse response;
  const bool ok = stream->Write(request) && stream->Read(&response);
  stream->WritesDone();
  context.TryCancel();
  const grpc::Status finish = stream->Finish();
  if (!ok) {
    client_->MarkFailed(endpoint);
    return finish.ok() ? absl::UnavailableError("keepalive stream closed")
                       : store::FromGrpcStatus(finish, "LeaseKeepAlive",
                                               client_->endpoint(endpoint));
  }
  return response.ttl();
}

void LeaderElection::EndTerm(const absl::Status& why, int64_t lease_id) {
  {
    absl::MutexLock lock(&mu_);
    term_over_ = true;
  }
  if (keepalive_thread_.joinable()) keepalive_thread_.join();
  std::optional<Leadership> was;
  bool abandoned;
  bool lease_alive;
  {
    absl::MutexLock lock(&mu_);
    was = std::move(leadership_);
    leadership_.reset();
    abandoned = abandoned_;
    lease_alive = lease_lost_.ok();
  }
  if (abandoned) return;  // As if killed: no callback, the lease stays.
  if (was.has_value()) {
    LogEvent(LogLevel::kWarn, "election_lost",
             {{"key", was->key}, {"fencing_token", was->create_revision},
              {"why", why}});
    if (callbacks_.on_lost) callbacks_.on_lost(*was, why);
  }
  if (lease_id != 0 && lease_alive) {
    // Deletes our key at once, so the next candidate need not wait for the
    // TTL. Best effort: if it fails, the lease expires by itself.
    etcdserverpb::LeaseRevokeRequest revoke;
    revoke.set_id(lease_id);
    absl::StatusOr<etcdserverpb::LeaseRevokeResponse> r = client_->LeaseRevoke(revoke);
    if (!r.ok() && r.status().code() != absl::StatusCode::kNotFound) {
      LogEvent(LogLevel::kWarn, "election_revoke_failed", {{"error", r.status()}});
    }
  }
  absl::MutexLock lock(&mu_);
  ++terms_ended_;
  resign_requested_ = false;
}

absl::StatusOr<LeaderInfo> LeaderElection::CurrentLeader() const {
  etcdserverpb::RangeRequest request;
  request.set_key(options_.election_prefix);
  request.set_range_end(*store::PrefixSuccessor(options_.election_prefix));
  request.set_sort_target(etcdserverpb::RangeRequest::CREATE);
  request.set_sort_order(etcdserverpb::RangeRequest::ASCEND);
  request.set_limit(1);
  absl::StatusOr<etcdserverpb::RangeResponse> r = client_->Range(request);
  if (!r.ok()) return r.status();
  if (r->kvs().empty()) return absl::NotFoundError("no leader candidate in etcd");
  const mvccpb::KeyValue& kv = r->kvs(0);
  LeaderInfo info;
  info.key = kv.key();
  info.server_id = info.key.substr(options_.election_prefix.size());
  info.address = kv.value();
  info.create_revision = kv.create_revision();
  return info;
}

absl::StatusOr<std::string> LeaderElection::LeaderAddress() const {
  absl::StatusOr<LeaderInfo> leader = CurrentLeader();
  if (!leader.ok()) return leader.status();
  return leader->address;
}

absl::Status LeaderElection::DeposeIfDead(const std::string& leader_key,
                                          int64_t create_revision) {
  if (leader_key.empty() || create_revision <= 0) {
    return absl::InvalidArgumentError("depose: need a key and a create revision");
  }
  etcdserverpb::TxnRequest txn;
  etcdserverpb::Compare* same = txn.add_compare();
  same->set_key(leader_key);
  same->set_target(etcdserverpb::Compare::CREATE);
  same->set_create_revision(create_revision);
  txn.add_success()->mutable_request_delete_range()->set_key(leader_key);
  absl::StatusOr<etcdserverpb::TxnResponse> r = client_->Txn(txn);
  if (!r.ok()) return r.status();
  if (!r->succeeded()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "depose: ", leader_key, " no longer has create revision ", create_revision));
  }
  LogEvent(LogLevel::kWarn, "election_deposed",
           {{"key", leader_key}, {"create_revision", create_revision}});
  return absl::OkStatus();
}

}  // namespace lockwarden::replication
