#include "cli/fake_lockwarden_server.h"

#include <openssl/evp.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/health_check_service_interface.h"

namespace lockwarden::cli::testing {

namespace v1 = ::lockwarden::v1;

namespace {

// How long a WatchGrants stream stays open at most (the CLI cancels it
// sooner), polled in steps.
constexpr int kWatchPollsMax = 300;
constexpr absl::Duration kWatchPollInterval = absl::Milliseconds(100);

v1::LockHolder CannedHolder() {
  v1::LockHolder holder;
  holder.mutable_owner()->set_client_name("holder");
  holder.mutable_owner()->set_svid(9);
  holder.mutable_range()->set_offset(0);
  holder.mutable_range()->set_length(0);
  holder.set_exclusive(true);
  holder.set_gateway_id("gw1");
  return holder;
}

v1::Lock CannedLock(int index) {
  v1::Lock lock;
  lock.set_file_handle(std::string("\x0a", 1) + static_cast<char>(index));
  lock.mutable_owner()->set_client_name(absl::StrCat("c", index));
  lock.mutable_owner()->set_svid(index);
  lock.mutable_range()->set_offset(index * 10);
  lock.mutable_range()->set_length(10);
  lock.set_exclusive(index % 2 == 0);
  lock.set_fencing_token(100 + index);
  lock.set_gateway_id("gw");
  lock.set_confirmed(true);
  lock.mutable_granted_at()->set_seconds(1700000000 + index);
  return lock;
}

// SHA-256 over the entries as snapshot.proto defines it (big-endian 4-byte
// lengths before key and value).
std::string SnapshotChecksum(const std::vector<v1::SnapshotEntry>& entries) {
  std::string framed;
  auto add = [&framed](const std::string& bytes) {
    const uint32_t size = static_cast<uint32_t>(bytes.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      framed.push_back(static_cast<char>((size >> shift) & 0xff));
    }
    framed += bytes;
  };
  for (const v1::SnapshotEntry& entry : entries) {
    add(entry.key());
    add(entry.value());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(framed.data(), framed.size(), digest, &size, EVP_sha256(),
             nullptr);
  return std::string(reinterpret_cast<char*>(digest), size);
}

std::vector<v1::SnapshotEntry> SnapshotEntries() {
  std::vector<v1::SnapshotEntry> entries;
  for (int i = 0; i < kFakeSnapshotKeys; ++i) {
    v1::SnapshotEntry entry;
    entry.set_key(absl::StrCat("key/", i));
    entry.set_value(std::string(i + 1, static_cast<char>('a' + i)));
    entries.push_back(std::move(entry));
  }
  return entries;
}

}  // namespace

class FakeLockwardenServer::State {
 public:
  explicit State(std::string leader) : standby_leader_(std::move(leader)) {}

  // In standby mode: fills *status with the redirect and returns true.
  bool Redirect(grpc::ServerContext* context, grpc::Status* status) {
    Note(context);
    if (standby_leader_.empty()) return false;
    absl::MutexLock lock(&mutex_);
    ++recorded_.redirects;
    context->AddTrailingMetadata("lockwarden-leader-address", standby_leader_);
    *status = grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("not the leader; leader is ", standby_leader_));
    return true;
  }

  // Empty for a leader; the leader's address for a standby.
  const std::string& standby_leader() const { return standby_leader_; }

  template <typename Fn>
  void Record(Fn fn) {
    absl::MutexLock lock(&mutex_);
    fn(recorded_);
  }

  RecordedRequests recorded() const {
    absl::MutexLock lock(&mutex_);
    return recorded_;
  }

  void QueueGrant(v1::GrantEvent event) {
    absl::MutexLock lock(&mutex_);
    pending_grants_.push_back(std::move(event));
  }

  std::vector<v1::GrantEvent> TakeGrants(const std::string& gateway_id) {
    absl::MutexLock lock(&mutex_);
    std::vector<v1::GrantEvent> taken, kept;
    for (v1::GrantEvent& event : pending_grants_) {
      (event.gateway_id() == gateway_id ? taken : kept)
          .push_back(std::move(event));
    }
    pending_grants_ = std::move(kept);
    return taken;
  }

 private:
  void Note(grpc::ServerContext* context) {
    const auto& metadata = context->client_metadata();
    auto it = metadata.find("authorization");
    absl::MutexLock lock(&mutex_);
    recorded_.last_authorization =
        it == metadata.end() ? "" : std::string(it->second.data(),
                                                it->second.size());
  }

  const std::string standby_leader_;
  mutable absl::Mutex mutex_;
  RecordedRequests recorded_ ABSL_GUARDED_BY(mutex_);
  std::vector<v1::GrantEvent> pending_grants_ ABSL_GUARDED_BY(mutex_);
};

namespace {

using State = FakeLockwardenServer::State;

class FakeLockService final : public v1::LockService::Service {
 public:
  explicit FakeLockService(std::shared_ptr<State> state)
      : state_(std::move(state)) {}

  grpc::Status Test(grpc::ServerContext* context, const v1::TestRequest* request,
                    v1::TestResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.tests.push_back(*request); });
    if (request->file_handle() == "\xde\xad") {
      response->set_status(v1::LOCK_STATUS_DENIED);
      *response->mutable_conflicting_holder() = CannedHolder();
    } else {
      response->set_status(v1::LOCK_STATUS_GRANTED);
    }
    return grpc::Status::OK;
  }

  grpc::Status Lock(grpc::ServerContext* context, const v1::LockRequest* request,
                    v1::LockResponse* response) override {
    // Recorded before the redirect check: a standby keeps what it refused,
    // so tests can see the retry at the leader reuse the request id.
    state_->Record([&](RecordedRequests& r) { r.locks.push_back(*request); });
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    const std::string& fh = request->file_handle();
    const bool blocking_fh = fh == "\xb1\x0c" || fh == "\x71\x0e";
    if (fh == "\xde\xad" || (blocking_fh && !request->block())) {
      response->set_status(v1::LOCK_STATUS_DENIED);
      *response->mutable_conflicting_holder() = CannedHolder();
    } else if (blocking_fh) {
      response->set_status(v1::LOCK_STATUS_BLOCKED);
      *response->mutable_conflicting_holder() = CannedHolder();
      if (fh == "\xb1\x0c") {
        v1::GrantEvent event;
        event.set_sequence(8);
        event.set_gateway_id(request->gateway_id());
        event.set_file_handle(fh);
        *event.mutable_owner() = request->owner();
        *event.mutable_range() = request->range();
        event.set_exclusive(request->exclusive());
        event.set_fencing_token(77);
        state_->QueueGrant(std::move(event));
      }
    } else {
      response->set_status(v1::LOCK_STATUS_GRANTED);
      response->set_fencing_token(kFakeFencingToken);
    }
    return grpc::Status::OK;
  }

  grpc::Status Cancel(grpc::ServerContext* context,
                      const v1::CancelRequest* request,
                      v1::CancelResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.cancels.push_back(*request); });
    response->set_status(v1::LOCK_STATUS_GRANTED);
    return grpc::Status::OK;
  }

  grpc::Status Unlock(grpc::ServerContext* context,
                      const v1::UnlockRequest* request,
                      v1::UnlockResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.unlocks.push_back(*request); });
    response->set_status(v1::LOCK_STATUS_GRANTED);
    return grpc::Status::OK;
  }

  grpc::Status WatchGrants(
      grpc::ServerContext* context, const v1::WatchGrantsRequest* request,
      grpc::ServerWriter<v1::WatchGrantsResponse>* writer) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.watches.push_back(*request); });
    // An event of another waiter of the same identity, which the CLI must
    // leave alone, then a heartbeat.
    v1::WatchGrantsResponse message;
    v1::GrantEvent* other = message.add_events();
    other->set_sequence(7);
    other->set_gateway_id(request->gateway_id());
    other->set_file_handle("\xb1\x0c");
    other->mutable_owner()->set_client_name("someone-else");
    writer->Write(message);
    writer->Write(v1::WatchGrantsResponse());
    for (int poll = 0; poll < kWatchPollsMax && !context->IsCancelled();
         ++poll) {
      std::vector<v1::GrantEvent> grants =
          state_->TakeGrants(request->gateway_id());
      if (!grants.empty()) {
        v1::WatchGrantsResponse batch;
        for (v1::GrantEvent& event : grants) {
          *batch.add_events() = std::move(event);
        }
        writer->Write(batch);
      }
      absl::SleepFor(kWatchPollInterval);
    }
    return grpc::Status::OK;
  }

  grpc::Status AckGrant(grpc::ServerContext* context,
                        const v1::AckGrantRequest* request,
                        v1::AckGrantResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.acks.push_back(*request); });
    response->set_applied(true);
    response->set_lock_held(true);
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> state_;
};

class FakeAdminService final : public v1::AdminService::Service {
 public:
  FakeAdminService(std::shared_ptr<State> state, std::string address)
      : state_(std::move(state)), address_(std::move(address)) {}

  grpc::Status ListLocks(grpc::ServerContext* context,
                         const v1::ListLocksRequest* request,
                         v1::ListLocksResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record(
        [&](RecordedRequests& r) { r.list_locks.push_back(*request); });
    const int page_size = request->page_size() == 0 ? 100 : request->page_size();
    int start = 0;
    if (!request->page_token().empty() &&
        !absl::SimpleAtoi(request->page_token(), &start)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token");
    }
    int index = start;
    for (; index < kFakeLockCount && index < start + page_size; ++index) {
      *response->add_locks() = CannedLock(index);
    }
    if (index < kFakeLockCount) response->set_next_page_token(absl::StrCat(index));
    response->set_total_size(kFakeLockCount);
    return grpc::Status::OK;
  }

  grpc::Status ListWaiters(grpc::ServerContext* context,
                           const v1::ListWaitersRequest* request,
                           v1::ListWaitersResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record(
        [&](RecordedRequests& r) { r.list_waiters.push_back(*request); });
    v1::Waiter* waiter = response->add_waiters();
    waiter->set_file_handle("\xb1\x0c");
    waiter->mutable_owner()->set_client_name("w1");
    waiter->mutable_owner()->set_svid(3);
    waiter->set_exclusive(true);
    waiter->set_gateway_id("gw");
    *waiter->add_blocked_by() = CannedHolder();
    response->set_total_size(1);
    return grpc::Status::OK;
  }

  grpc::Status GetServerStatus(grpc::ServerContext* context,
                               const v1::GetServerStatusRequest*,
                               v1::GetServerStatusResponse* response) override {
    // Answered by standbys too, as the API says.
    state_->Record([](RecordedRequests& r) { ++r.server_status_calls; });
    (void)context;
    response->set_server_id("fake");
    if (state_->standby_leader().empty()) {
      response->set_role(v1::SERVER_ROLE_LEADER);
      response->set_leader_address(address_);
    } else {
      // A standby fills `replica` with its own view of replication; fixed
      // values so the CLI tests can assert how they are printed.
      response->set_role(v1::SERVER_ROLE_STANDBY);
      response->set_leader_address(state_->standby_leader());
      v1::ReplicaStatus* replica = response->mutable_replica();
      replica->set_applied_revision(1200);
      replica->set_store_revision(1203);
      replica->set_lag_revisions(3);
      replica->set_healthy(true);
      replica->set_probes(40);
      replica->set_failed_probes(2);
      replica->set_misconfigured_probes(5);
      replica->set_probe_misconfigured(true);
      replica->set_last_probe_misconfiguration("UNAUTHENTICATED: bad token");
    }
    response->set_store_backend(v1::STORE_BACKEND_ROCKSDB);
    response->set_store_health(v1::STORE_HEALTH_OK);
    response->set_version("fake-1");
    response->set_lock_count(kFakeLockCount);
    response->mutable_commit_stats()->set_commits(3);
    return grpc::Status::OK;
  }

  grpc::Status ForceRelease(grpc::ServerContext* context,
                            const v1::ForceReleaseRequest* request,
                            v1::ForceReleaseResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record(
        [&](RecordedRequests& r) { r.force_releases.push_back(*request); });
    response->set_released_locks(2);
    response->set_granted_waiters(1);
    return grpc::Status::OK;
  }

  grpc::Status SimulateClientReboot(
      grpc::ServerContext* context,
      const v1::SimulateClientRebootRequest* request,
      v1::SimulateClientRebootResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.reboots.push_back(*request); });
    response->set_new_state(request->has_new_state() ? request->new_state()
                                                     : 5);
    response->set_released_locks(1);
    return grpc::Status::OK;
  }

  grpc::Status DrainGateway(grpc::ServerContext* context,
                            const v1::DrainGatewayRequest* request,
                            v1::DrainGatewayResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.drains.push_back(*request); });
    response->set_draining(request->drain());
    return grpc::Status::OK;
  }

  grpc::Status EndGrace(grpc::ServerContext* context,
                        const v1::EndGraceRequest* request,
                        v1::EndGraceResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record(
        [&](RecordedRequests& r) { r.end_graces.push_back(*request); });
    response->set_released_locks(4);
    return grpc::Status::OK;
  }

  grpc::Status ExportSnapshot(
      grpc::ServerContext* context, const v1::ExportSnapshotRequest* request,
      grpc::ServerWriter<v1::ExportSnapshotResponse>* writer) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    state_->Record([&](RecordedRequests& r) { r.exports.push_back(*request); });
    const std::vector<v1::SnapshotEntry> entries = SnapshotEntries();
    v1::ExportSnapshotResponse message;
    v1::SnapshotHeader* header = message.mutable_chunk()->mutable_header();
    header->set_format_version(1);
    header->set_fencing_token(9);
    header->set_key_count(entries.size());
    uint64_t bytes = 0;
    for (const auto& entry : entries) {
      bytes += entry.key().size() + entry.value().size();
    }
    header->set_total_bytes(bytes);
    header->set_checksum_sha256(request->reason() == "corrupt"
                                    ? std::string(32, '\0')
                                    : SnapshotChecksum(entries));
    writer->Write(message);
    // Two entry chunks: the first entry, then the rest.
    for (size_t begin : {size_t{0}, size_t{1}}) {
      v1::ExportSnapshotResponse chunk;
      const size_t end = begin == 0 ? 1 : entries.size();
      for (size_t i = begin; i < end; ++i) {
        *chunk.mutable_chunk()->mutable_entries()->add_entries() = entries[i];
      }
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  grpc::Status ImportSnapshot(
      grpc::ServerContext* context,
      grpc::ServerReader<v1::ImportSnapshotRequest>* reader,
      v1::ImportSnapshotResponse* response) override {
    grpc::Status status;
    if (state_->Redirect(context, &status)) return status;
    v1::ImportSnapshotRequest message;
    uint64_t keys = 0;
    bool force = false;
    bool first = true;
    while (reader->Read(&message)) {
      if (first) force = message.force() || message.abandon();
      first = false;
      keys += message.chunk().entries().entries_size();
      state_->Record([&](RecordedRequests& r) { r.imports.push_back(message); });
    }
    if (!force) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "store holds state; import with force");
    }
    response->set_keys_imported(keys);
    response->set_fencing_token(10);
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<State> state_;
  const std::string address_;
};

}  // namespace

std::unique_ptr<FakeLockwardenServer> FakeLockwardenServer::Start(
    std::string standby_leader_address,
    std::shared_ptr<grpc::ServerCredentials> credentials) {
  if (credentials == nullptr) credentials = grpc::InsecureServerCredentials();
  std::unique_ptr<FakeLockwardenServer> fake(new FakeLockwardenServer());
  fake->state_ = std::make_shared<State>(std::move(standby_leader_address));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", credentials, &fake->port_);
  auto lock_service = std::make_unique<FakeLockService>(fake->state_);
  auto admin_service =
      std::make_unique<FakeAdminService>(fake->state_, "leader.example:7420");
  builder.RegisterService(lock_service.get());
  builder.RegisterService(admin_service.get());
  fake->services_.push_back(std::move(lock_service));
  fake->services_.push_back(std::move(admin_service));
  fake->server_ = builder.BuildAndStart();
  if (fake->server_ == nullptr || fake->port_ == 0) return nullptr;
  return fake;
}

FakeLockwardenServer::~FakeLockwardenServer() {
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  }
}

std::string FakeLockwardenServer::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

RecordedRequests FakeLockwardenServer::recorded() const {
  return state_->recorded();
}

void FakeLockwardenServer::SetServing(const std::string& service,
                                      bool serving) {
  server_->GetHealthCheckService()->SetServingStatus(service, serving);
}

}  // namespace lockwarden::cli::testing
