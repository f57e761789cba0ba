#include "cli/drill.h"

#include <unistd.h>

#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/format.h"
#include "cli/parse.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

constexpr int32_t kPageSize = 1000;

// Calls `page(request, response)` for every page of a paginated listing.
template <typename Request, typename Response, typename Each>
absl::Status ListAll(Connection* connection, absl::string_view rpc, Request request,
                     grpc::Status (v1::AdminService::Stub::*method)(
                         grpc::ClientContext*, const Request&, Response*),
                     Each each) {
  request.set_page_size(kPageSize);
  for (size_t page = 0; page * kPageSize <= kSnapshotItemsMax; ++page) {
    Response response;
    absl::Status status = connection->Call(
        rpc, [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
          auto stub = v1::AdminService::NewStub(channel);
          return ((*stub).*method)(context, request, &response);
        });
    if (!status.ok()) return status;
    each(response);
    if (response.next_page_token().empty()) return absl::OkStatus();
    request.set_page_token(response.next_page_token());
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(rpc, ": more than ", kSnapshotItemsMax, " items; the drill stops"));
}

using LockKey = std::tuple<uint64_t, std::string, std::string, uint32_t, std::string,
                           uint64_t, uint64_t, bool>;
using WaiterKey =
    std::tuple<std::string, std::string, uint32_t, std::string, uint64_t, uint64_t, bool>;

LockKey KeyOf(const v1::Lock& l) {
  return {l.fencing_token(), l.file_handle(), l.owner().client_name(), l.owner().svid(),
          l.owner().oh(), l.range().offset(), l.range().length(), l.exclusive()};
}

WaiterKey KeyOf(const v1::Waiter& w) {
  return {w.file_handle(), w.owner().client_name(), w.owner().svid(), w.owner().oh(),
          w.range().offset(), w.range().length(), w.exclusive()};
}

// The same request held as a lock (a waiter granted meanwhile).
WaiterKey WaiterKeyOfLock(const v1::Lock& l) {
  return {l.file_handle(), l.owner().client_name(), l.owner().svid(), l.owner().oh(),
          l.range().offset(), l.range().length(), l.exclusive()};
}

v1::LockOwner ProbeOwner() {
  v1::LockOwner owner;
  owner.set_client_name(kProbeClient);
  owner.set_svid(static_cast<uint32_t>(getpid()));
  owner.set_oh("probe");
  return owner;
}

bool IsProbe(const std::string& gateway_id, const std::string& client) {
  return gateway_id == kDrillGatewayId || client == kProbeClient;
}

}  // namespace

std::string DescribeLock(const v1::Lock& lock) {
  return absl::StrCat("token=", lock.fencing_token(), " fh=", HexOrDash(lock.file_handle()),
                      " owner=", FormatOwner(lock.owner()), " range=", FormatRange(lock.range()),
                      " ", FormatMode(lock.exclusive()), " gateway=", lock.gateway_id());
}

std::string DescribeWaiter(const v1::Waiter& waiter) {
  return absl::StrCat("fh=", HexOrDash(waiter.file_handle()),
                      " owner=", FormatOwner(waiter.owner()),
                      " range=", FormatRange(waiter.range()), " ", FormatMode(waiter.exclusive()),
                      " gateway=", waiter.gateway_id());
}

absl::StatusOr<StateSnapshot> TakeSnapshot(Connection* connection) {
  StateSnapshot snap;
  // Listings first: they are served by the leader only (a standby
  // redirects), so the status asked next, of the address that answered
  // last, is the leader's own.
  absl::Status status = ListAll(connection, "ListLocks", v1::ListLocksRequest(),
                                &v1::AdminService::Stub::ListLocks,
                                [&](const v1::ListLocksResponse& r) {
                                  for (const v1::Lock& l : r.locks()) snap.locks.push_back(l);
                                });
  if (!status.ok()) return status;
  snap.answered_by = connection->answered_address();
  status = connection->Call(
      "GetServerStatus",
      [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
        return v1::AdminService::NewStub(channel)->GetServerStatus(
            context, v1::GetServerStatusRequest(), &snap.status);
      });
  if (!status.ok()) return status;
  status = ListAll(connection, "ListWaiters", v1::ListWaitersRequest(),
                   &v1::AdminService::Stub::ListWaiters,
                   [&](const v1::ListWaitersResponse& r) {
                     for (const v1::Waiter& w : r.waiters()) snap.waiters.push_back(w);
                   });
  if (!status.ok()) return status;
  status = ListAll(connection, "ListGateways", v1::ListGatewaysRequest(),
                   &v1::AdminService::Stub::ListGateways,
                   [&](const v1::ListGatewaysResponse& r) {
                     for (const v1::Gateway& g : r.gateways()) snap.gateways[g.gateway_id()] = g;
                   });
  if (!status.ok()) return status;
  status = ListAll(connection, "ListClients", v1::ListClientsRequest(),
                   &v1::AdminService::Stub::ListClients,
                   [&](const v1::ListClientsResponse& r) {
                     for (const v1::Client& c : r.clients()) {
                       if (c.nsm_state() != 0) snap.client_states[c.client_name()] = c.nsm_state();
                     }
                   });
  if (!status.ok()) return status;
  return snap;
}

DrillComparison CompareSnapshots(const StateSnapshot& before, const StateSnapshot& after) {
  DrillComparison c;
  std::set<LockKey> after_locks;
  std::set<WaiterKey> after_held;
  for (const v1::Lock& l : after.locks) {
    if (IsProbe(l.gateway_id(), l.owner().client_name())) continue;
    ++c.locks_after;
    after_locks.insert(KeyOf(l));
    after_held.insert(WaiterKeyOfLock(l));
  }
  for (const v1::Lock& l : before.locks) {
    if (IsProbe(l.gateway_id(), l.owner().client_name())) continue;
    ++c.locks_before;
    if (!after_locks.count(KeyOf(l))) {
      c.findings.push_back({"lock_lost", DescribeLock(l), "held before, not held after"});
    }
  }
  std::set<WaiterKey> after_waiters;
  for (const v1::Waiter& w : after.waiters) {
    if (IsProbe(w.gateway_id(), w.owner().client_name())) continue;
    ++c.waiters_after;
    after_waiters.insert(KeyOf(w));
  }
  for (const v1::Waiter& w : before.waiters) {
    if (IsProbe(w.gateway_id(), w.owner().client_name())) continue;
    ++c.waiters_before;
    const WaiterKey key = KeyOf(w);
    if (after_waiters.count(key)) continue;
    if (after_held.count(key)) {
      ++c.waiters_granted;
      continue;
    }
    c.findings.push_back({"waiter_lost", DescribeWaiter(w), "queued before, neither queued "
                                                            "nor held after"});
  }
  for (const auto& [id, g] : before.gateways) {
    if (id == kDrillGatewayId) continue;
    ++c.gateways_checked;
    auto it = after.gateways.find(id);
    if (it == after.gateways.end()) {
      c.findings.push_back({"gateway_lost", id, "identity missing after"});
      continue;
    }
    if (it->second.nsm_state() != g.nsm_state()) {
      c.findings.push_back({"gateway_state_changed", id,
                            absl::StrCat("nsm_state ", g.nsm_state(), " -> ",
                                         it->second.nsm_state())});
    }
    if (it->second.in_grace() && !g.in_grace()) {
      c.findings.push_back({"grace_started", id, "in grace after, not before"});
    }
  }
  for (const auto& [id, g] : after.gateways) {
    if (id == kDrillGatewayId || before.gateways.count(id)) continue;
    if (g.in_grace()) c.findings.push_back({"grace_started", id, "new identity in grace"});
  }
  for (const auto& [name, state] : before.client_states) {
    if (name == kProbeClient) continue;
    ++c.clients_checked;
    auto it = after.client_states.find(name);
    const int32_t now = it == after.client_states.end() ? 0 : it->second;
    if (now != state) {
      c.findings.push_back({"client_state_changed", name,
                            absl::StrCat("nsm_state ", state, " -> ", now)});
    }
  }
  return c;
}

nlohmann::json FindingsToJson(const std::vector<DrillFinding>& findings) {
  nlohmann::json out = nlohmann::json::array();
  for (const DrillFinding& f : findings) {
    out.push_back({{"kind", f.kind}, {"item", f.item}, {"detail", f.detail}});
  }
  return out;
}

Prober::Prober(ConnectionOptions options, absl::Duration interval)
    : options_(std::move(options)), interval_(interval) {}

Prober::~Prober() { Stop(); }

absl::Status Prober::Start() {
  absl::StatusOr<std::unique_ptr<Connection>> connection = Connection::Create(options_);
  if (!connection.ok()) return connection.status();
  connection_ = *std::move(connection);
  started_ = absl::Now();
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void Prober::Stop() {
  stop_.store(true);
  if (!thread_.joinable()) return;
  thread_.join();
  // A LOCK whose answer was lost may have been granted: release it (UNLOCK
  // of nothing is GRANTED too). Best effort, one attempt.
  v1::UnlockRequest unlock;
  unlock.set_request_id(NewRequestId());
  unlock.set_gateway_id(kDrillGatewayId);
  unlock.set_file_handle(kProbeFileHandle);
  *unlock.mutable_owner() = ProbeOwner();
  unlock.mutable_range()->set_length(1);
  v1::UnlockResponse unlocked;
  (void)connection_->Call(
      "Unlock", [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Unlock(context, unlock, &unlocked);
      });
}

void Prober::Loop() {
  while (!stop_.load()) {
    Sample s;
    s.start = absl::Now();
    std::string error;
    s.ok = ProbeOnce(&error);
    s.end = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      if (samples_.size() < kProbeSamplesMax) samples_.push_back(s);
      if (!s.ok) last_error_ = error;
    }
    const absl::Duration rest = interval_ - (s.end - s.start);
    if (rest > absl::ZeroDuration() && !stop_.load()) absl::SleepFor(rest);
  }
}

bool Prober::ProbeOnce(std::string* error) {
  const v1::LockOwner owner = ProbeOwner();
  v1::LockRequest lock;
  lock.set_request_id(NewRequestId());
  lock.set_gateway_id(kDrillGatewayId);
  lock.set_file_handle(kProbeFileHandle);
  *lock.mutable_owner() = owner;
  lock.mutable_range()->set_length(1);
  lock.set_exclusive(true);
  v1::LockResponse locked;
  absl::Status status = connection_->Call(
      "Lock", [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Lock(context, lock, &locked);
      });
  if (!status.ok()) {
    *error = std::string(status.message());
    return false;
  }
  if (locked.status() != v1::LOCK_STATUS_GRANTED) {
    *error = absl::StrCat("probe LOCK answered ", ShortEnumName(locked.status()));
    return false;
  }
  v1::UnlockRequest unlock;
  unlock.set_request_id(NewRequestId());
  unlock.set_gateway_id(kDrillGatewayId);
  unlock.set_file_handle(kProbeFileHandle);
  *unlock.mutable_owner() = owner;
  unlock.mutable_range()->set_length(1);
  v1::UnlockResponse unlocked;
  status = connection_->Call(
      "Unlock", [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Unlock(context, unlock, &unlocked);
      });
  if (!status.ok()) {
    *error = std::string(status.message());
    return false;
  }
  return true;
}

ProbeReport Prober::Report() const {
  ProbeReport r;
  absl::MutexLock lock(&mu_);
  r.probes = samples_.size();
  r.last_error = last_error_;
  absl::Time previous = started_;
  for (const Sample& s : samples_) {
    if (!s.ok) {
      ++r.failed;
      continue;
    }
    if (s.end - previous > r.longest_gap) {
      r.longest_gap = s.end - previous;
      r.gap_start = previous - started_;
      r.gap_end = s.end - started_;
    }
    previous = s.end;
    r.last_success = s.end;
  }
  return r;
}

absl::Time Prober::FirstSuccessAfter(absl::Time t) const {
  absl::MutexLock lock(&mu_);
  for (const Sample& s : samples_) {
    if (s.start >= t && s.ok) return s.end;
  }
  return absl::InfiniteFuture();
}

bool Prober::SucceededAfter(absl::Time t) const {
  absl::MutexLock lock(&mu_);
  for (auto it = samples_.rbegin(); it != samples_.rend(); ++it) {
    if (it->start < t) return false;
    if (it->ok) return true;
  }
  return false;
}

}  // namespace lockwarden::cli
