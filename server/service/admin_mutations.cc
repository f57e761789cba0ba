// AdminService mutations: ForceRelease, SimulateClientReboot, ResetGateway,
// StepDown. Each is authorised (auth.h), needs a `reason`, and writes one
// audit line (event "admin_audit") with the caller's identity, whether it
// was admitted, and its outcome.
//
// Counts in the responses (released locks, cancelled waiters, ...) come from
// a look at the core just before the command is applied; under concurrent
// traffic on the same state they can differ slightly from what the command
// itself released. The command is still applied atomically by the core.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "server/service/admin_service.h"
#include "server/service/convert.h"

namespace lockwarden::service {
namespace {

using admin_internal::AdmittedMutation;
using admin_internal::Audit;
using admin_internal::Finish;
using admin_internal::UnknownGatewayError;

// Last byte of a range, inclusive (length 0 and overflow mean end of file).
uint64_t LastByte(const core::Range& r) {
  if (r.length == 0 || r.length - 1 > UINT64_MAX - r.offset) return UINT64_MAX;
  return r.offset + r.length - 1;
}

bool Overlaps(const core::Range& a, const core::Range& b) {
  return a.offset <= LastByte(b) && b.offset <= LastByte(a);
}

bool Covers(const core::Range& outer, const core::Range& inner) {
  return outer.offset <= inner.offset && LastByte(inner) <= LastByte(outer);
}

absl::Status ReplyStatus(const core::Reply& r) {
  switch (r.status) {
    case core::LockStatus::kGrace:
      return absl::FailedPreconditionError(
          "refused during the gateway identity's grace period (only whole locks, "
          "owners, clients or files can be force-released in grace)");
    case core::LockStatus::kNoLocks:
      return absl::ResourceExhaustedError(r.message);
    case core::LockStatus::kInvalid:
      return absl::InvalidArgumentError(r.message);
    default:
      return absl::OkStatus();
  }
}

// Submits `cmds` one after another (each durable before the next), then
// calls `done` with the replies or the first error.
void SubmitAll(CoreRunner* runner, std::shared_ptr<std::vector<core::Command>> cmds,
               size_t next, std::shared_ptr<std::vector<core::Reply>> replies,
               std::function<void(absl::Status, const std::vector<core::Reply>&)> done) {
  if (next == cmds->size()) {
    done(absl::OkStatus(), *replies);
    return;
  }
  runner->Submit((*cmds)[next], [runner, cmds, next, replies,
                                 done](absl::StatusOr<core::Reply> r) {
    if (!r.ok()) {
      done(r.status(), *replies);
      return;
    }
    if (absl::Status s = ReplyStatus(*r); !s.ok()) {
      done(s, *replies);
      return;
    }
    replies->push_back(*r);
    SubmitAll(runner, cmds, next + 1, replies, done);
  });
}

// What a force-release would touch.
struct ReleasePlan {
  std::vector<core::Command> cmds;
  uint64_t locks = 0;
  uint64_t shares = 0;
  uint64_t waiters = 0;
  // Waiters of others on the touched files: any of them gone afterwards was
  // granted (or cancelled by its owner meanwhile).
  absl::flat_hash_set<uint64_t> bystanders;
  absl::btree_set<std::string> files;
};

std::string ForceRequestId(const std::string& request_id, size_t i) {
  if (request_id.empty()) return std::string();
  return i == 0 ? request_id : absl::StrCat(request_id, "/", i);
}

// Fills `plan` for a ForceRelease request; runs under the core's lock.
absl::Status PlanRelease(const core::LockCore& core, const v1::ForceReleaseRequest& r,
                         ReleasePlan* plan) {
  using Target = core::ForceReleaseCmd::Target;
  const size_t kAll = std::numeric_limits<size_t>::max();
  core::LockFilter filter;
  core::ForceReleaseCmd cmd;
  cmd.request_id = r.request_id();
  auto owner_of = [](const v1::LockOwner& o) {
    return core::Owner{o.client_name(), o.svid(), o.oh()};
  };
  std::function<bool(const core::Owner&)> mine = [](const core::Owner&) { return true; };
  bool shares_too = true;
  switch (r.target_case()) {
    case v1::ForceReleaseRequest::kLock: {
      const v1::LockTarget& t = r.lock();
      if (t.file_handle().empty() || t.file_handle().size() > kFileHandleBytesMax) {
        return absl::InvalidArgumentError("lock.file_handle: 1..64 bytes required");
      }
      if (t.owner().client_name().empty()) {
        return absl::InvalidArgumentError("lock.owner.client_name: required");
      }
      const core::Owner owner = owner_of(t.owner());
      const core::Range range{t.range().offset(), t.range().length()};
      filter.fh = t.file_handle();
      filter.client = owner.client;
      std::vector<core::LockInfo> hit;
      for (core::LockInfo& l : core.ListLocks(filter, 0, kAll)) {
        if (l.owner == owner && Overlaps(l.range, range)) hit.push_back(std::move(l));
      }
      plan->files.insert(t.file_handle());
      const bool whole = std::all_of(hit.begin(), hit.end(), [&](const core::LockInfo& l) {
        return Covers(range, l.range);
      });
      if (whole) {
        for (const core::LockInfo& l : hit) {
          core::ForceReleaseCmd c;
          c.request_id = ForceRequestId(r.request_id(), plan->cmds.size());
          c.target = Target::kLock;
          c.fencing_token = l.fencing_token;
          plan->cmds.push_back(c);
        }
      } else {
        // Part of a lock: an UNLOCK of the range, as if through its gateway.
        core::UnlockCmd c;
        c.request_id = r.request_id();
        c.gateway = hit.front().gateway;
        c.fh = t.file_handle();
        c.owner = owner;
        c.range = range;
        plan->cmds.push_back(c);
      }
      plan->locks = hit.size();
      mine = [](const core::Owner&) { return false; };  // No waiters touched.
      shares_too = false;
      break;
    }
    case v1::ForceReleaseRequest::kOwner: {
      if (r.owner().client_name().empty()) {
        return absl::InvalidArgumentError("owner.client_name: required");
      }
      const core::Owner owner = owner_of(r.owner());
      filter.client = owner.client;
      mine = [owner](const core::Owner& o) { return o == owner; };
      cmd.target = Target::kOwner;
      cmd.owner = owner;
      plan->cmds.push_back(cmd);
      // The core's owner release covers locks and waiters; the owner's share
      // reservations (client, oh) go with an UNSHARE each.
      for (const core::ShareInfo& s : core.ListShares(filter, 0, kAll)) {
        if (s.oh != owner.oh) continue;
        core::UnshareCmd u;
        u.request_id = ForceRequestId(r.request_id(), plan->cmds.size());
        u.gateway = s.gateway;
        u.fh = s.fh;
        u.client = s.client;
        u.oh = s.oh;
        plan->cmds.push_back(u);
        ++plan->shares;
        plan->files.insert(s.fh);
      }
      shares_too = false;
      break;
    }
    case v1::ForceReleaseRequest::kClientName:
      if (r.client_name().empty()) return absl::InvalidArgumentError("client_name: required");
      filter.client = r.client_name();
      cmd.target = Target::kClient;
      cmd.client = r.client_name();
      plan->cmds.push_back(cmd);
      break;
    case v1::ForceReleaseRequest::kFileHandle:
      if (r.file_handle().empty() || r.file_handle().size() > kFileHandleBytesMax) {
        return absl::InvalidArgumentError("file_handle: 1..64 bytes required");
      }
      filter.fh = r.file_handle();
      cmd.target = Target::kFile;
      cmd.fh = r.file_handle();
      plan->cmds.push_back(cmd);
      break;
    case v1::ForceReleaseRequest::TARGET_NOT_SET:
      return absl::InvalidArgumentError(
          "target: one of lock, owner, client_name, file_handle is required");
  }
  if (r.target_case() != v1::ForceReleaseRequest::kLock) {
    for (const core::LockInfo& l : core.ListLocks(filter, 0, kAll)) {
      if (!mine(l.owner)) continue;
      ++plan->locks;
      plan->files.insert(l.fh);
    }
  }
  if (shares_too) {
    for (const core::ShareInfo& s : core.ListShares(filter, 0, kAll)) {
      ++plan->shares;
      plan->files.insert(s.fh);
    }
  }
  for (const core::WaiterInfo& w : core.ListWaiters(filter, 0, kAll)) {
    if (mine(w.owner)) ++plan->waiters;
  }
  for (const std::string& fh : plan->files) {
    core::LockFilter only_file;
    only_file.fh = fh;
    for (const core::WaiterInfo& w : core.ListWaiters(only_file, 0, kAll)) {
      const bool target_waiter = r.target_case() == v1::ForceReleaseRequest::kFileHandle ||
                                 (r.target_case() == v1::ForceReleaseRequest::kClientName &&
                                  w.owner.client == r.client_name()) ||
                                 (r.target_case() == v1::ForceReleaseRequest::kOwner &&
                                  mine(w.owner));
      if (!target_waiter) plan->bystanders.insert(w.id);
    }
  }
  return absl::OkStatus();
}

std::string DescribeTarget(const v1::ForceReleaseRequest& r) {
  switch (r.target_case()) {
    case v1::ForceReleaseRequest::kLock:
      return absl::StrCat("lock fh=", absl::BytesToHexString(r.lock().file_handle()),
                          " owner=", r.lock().owner().client_name(), "/",
                          r.lock().owner().svid(), " offset=", r.lock().range().offset(),
                          " length=", r.lock().range().length());
    case v1::ForceReleaseRequest::kOwner:
      return absl::StrCat("owner ", r.owner().client_name(), "/", r.owner().svid());
    case v1::ForceReleaseRequest::kClientName:
      return absl::StrCat("client ", r.client_name());
    case v1::ForceReleaseRequest::kFileHandle:
      return absl::StrCat("file ", absl::BytesToHexString(r.file_handle()));
    default:
      return "none";
  }
}

}  // namespace

void admin_internal::Audit(absl::string_view call, const std::string& caller,
                           const std::string& reason, absl::string_view target,
                           const absl::Status& outcome) {
  LogEvent(outcome.ok() ? LogLevel::kInfo : LogLevel::kWarn, "admin_audit",
           {{"call", call},
            {"caller", caller},
            {"reason", reason},
            {"target", target},
            {"outcome", outcome.ok() ? std::string("ok") : outcome.ToString()}});
}

absl::Status AdminServiceImpl::Admit(grpc::CallbackServerContext* ctx, absl::string_view call,
                                     const std::string& reason,
                                     absl::string_view target) const {
  absl::Status s = auth_.AuthorizeMutation(*ctx);
  if (s.ok() && reason.empty()) {
    s = absl::InvalidArgumentError("reason: required (it goes to the audit log)");
  }
  if (s.ok() && reason.size() > kReasonBytesMax) {
    s = absl::InvalidArgumentError(
        absl::StrCat("reason: longer than ", kReasonBytesMax, " bytes"));
  }
  // Refusals are audited here; admitted calls when they complete.
  if (!s.ok()) Audit(call, auth_.CallerIdentity(*ctx), reason, target, s);
  return s;
}

admin_internal::AdmittedMutation::AdmittedMutation(
    grpc::CallbackServerContext* ctx, absl::string_view call,
    std::string caller, std::string reason, std::string target)
    : reactor_(ctx->DefaultReactor()),
      call_(call),
      caller_(std::move(caller)),
      reason_(std::move(reason)),
      target_(std::move(target)) {}

grpc::ServerUnaryReactor* admin_internal::AdmittedMutation::Finish(
    const absl::Status& outcome) const {
  Audit(call_, caller_, reason_, target_, outcome);
  reactor_->Finish(ToGrpcStatus(outcome));
  return reactor_;
}

AdmittedMutation AdminServiceImpl::Admitted(grpc::CallbackServerContext* ctx,
                                            absl::string_view call,
                                            const std::string& reason,
                                            absl::string_view target) const {
  return AdmittedMutation(ctx, call, auth_.CallerIdentity(*ctx), reason,
                          std::string(target));
}

grpc::ServerUnaryReactor* AdminServiceImpl::SubmitMutation(
    grpc::CallbackServerContext* ctx, absl::string_view call,
    const std::string& reason, absl::string_view target, core::Command cmd,
    admin_internal::MutationOutcome outcome) {
  const AdmittedMutation mutation = Admitted(ctx, call, reason, target);
  runner_->Submit(std::move(cmd), [mutation, outcome = std::move(outcome)](
                                      absl::StatusOr<core::Reply> r) {
    mutation.Finish(outcome(r));
  });
  return mutation.reactor();
}

grpc::ServerUnaryReactor* AdminServiceImpl::ForceRelease(
    grpc::CallbackServerContext* ctx, const v1::ForceReleaseRequest* request,
    v1::ForceReleaseResponse* response) {
  const std::string target = DescribeTarget(*request);
  if (absl::Status s = Admit(ctx, "ForceRelease", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  auto plan = std::make_shared<ReleasePlan>();
  absl::Status planned = absl::OkStatus();
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    planned = PlanRelease(core, *request, plan.get());
  });
  if (s.ok()) s = planned;
  if (!s.ok()) {
    return Admitted(ctx, "ForceRelease", request->reason(), target).Finish(s);
  }
  response->set_released_locks(plan->locks);
  response->set_released_shares(plan->shares);
  response->set_cancelled_waiters(plan->waiters);
  if (request->validate_only()) {
    return Finish(ctx, absl::OkStatus());
  }
  const AdmittedMutation mutation =
      Admitted(ctx, "ForceRelease", request->reason(), target);
  CoreRunner* runner = runner_;
  SubmitAll(runner_, std::make_shared<std::vector<core::Command>>(plan->cmds), 0,
            std::make_shared<std::vector<core::Reply>>(),
            [=](absl::Status status, const std::vector<core::Reply>&) {
              if (status.ok()) {
                // Bystander waiters that left the queues were granted.
                absl::flat_hash_set<uint64_t> still;
                (void)runner->ReadNow([&](const core::LockCore& core, int64_t) {
                  for (const std::string& fh : plan->files) {
                    core::LockFilter only_file;
                    only_file.fh = fh;
                    for (const core::WaiterInfo& w : core.ListWaiters(
                             only_file, 0, core.options().waiters_per_file_max)) {
                      still.insert(w.id);
                    }
                  }
                });
                uint64_t granted = 0;
                for (uint64_t id : plan->bystanders) granted += still.contains(id) ? 0 : 1;
                response->set_granted_waiters(granted);
              }
              mutation.Finish(status);
            });
  return mutation.reactor();
}

grpc::ServerUnaryReactor* AdminServiceImpl::SimulateClientReboot(
    grpc::CallbackServerContext* ctx, const v1::SimulateClientRebootRequest* request,
    v1::SimulateClientRebootResponse* response) {
  const std::string target = absl::StrCat("client ", request->client_name());
  if (absl::Status s = Admit(ctx, "SimulateClientReboot", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  if (request->client_name().empty() || request->client_name().size() > kNameBytesMax) {
    return Admitted(ctx, "SimulateClientReboot", request->reason(), target)
        .Finish(
            absl::InvalidArgumentError("client_name: 1..1024 bytes required"));
  }
  core::NotifyCmd cmd;
  cmd.request_id = request->request_id();
  cmd.mon_name = request->client_name();
  absl::Status verdict = absl::OkStatus();
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    std::optional<int32_t> recorded;
    for (const core::ClientInfo& c : core.ListClients()) {
      if (c.name == request->client_name()) recorded = c.nsm_state;
    }
    core::LockFilter filter;
    filter.client = request->client_name();
    const auto locks = core.ListLocks(filter, 0, core.options().locks_max);
    const auto shares = core.ListShares(filter, 0, core.options().shares_max);
    const auto waiters = core.ListWaiters(filter, 0, core.options().waiters_max);
    if (!recorded && locks.empty() && shares.empty() && waiters.empty()) {
      verdict = absl::NotFoundError(absl::StrCat(
          "client_name: no recorded NSM state and no state held for '",
          request->client_name(), "'"));
      return;
    }
    const int32_t base = recorded.value_or(0);
    int32_t next = request->has_new_state()
                       ? request->new_state()
                       : static_cast<int32_t>(static_cast<uint32_t>(base) + 2);
    if (!request->has_new_state() && next % 2 == 0) {
      next = static_cast<int32_t>(static_cast<uint32_t>(next) + 1);  // Odd: "up".
    }
    if (recorded && !core::NsmStateNewer(next, *recorded)) {
      verdict = absl::InvalidArgumentError(absl::StrCat(
          "new_state: ", next, " is not newer than the recorded state ", *recorded));
      return;
    }
    cmd.state = next;
    // The SM_NOTIFY is taken "through" a gateway identity the client uses
    // (any existing one otherwise), so no identity is created by this call.
    if (!locks.empty()) cmd.gateway = locks.front().gateway;
    else if (!shares.empty()) cmd.gateway = shares.front().gateway;
    else if (!waiters.empty()) cmd.gateway = waiters.front().gateway;
    uint32_t callbacks = 0;
    for (const core::GatewayInfo& g : core.ListGateways()) {
      if (cmd.gateway.empty()) cmd.gateway = g.name;
      for (const core::MonitorInfo& m : core.ListMonitors(g.name)) {
        callbacks += m.mon_name == request->client_name() ? 1 : 0;
      }
    }
    if (cmd.gateway.empty()) {
      verdict = absl::NotFoundError("no gateway identity exists yet");
      return;
    }
    auto older = [next](int32_t st) { return core::NsmStateNewer(next, st); };
    uint64_t n = 0;
    for (const auto& l : locks) n += older(l.client_state) ? 1 : 0;
    response->set_released_locks(n);
    n = 0;
    for (const auto& sh : shares) n += older(sh.client_state) ? 1 : 0;
    response->set_released_shares(n);
    n = 0;
    for (const auto& w : waiters) n += older(w.client_state) ? 1 : 0;
    response->set_cancelled_waiters(n);
    response->set_callbacks_queued(callbacks);
    response->set_new_state(next);
  });
  if (s.ok()) s = verdict;
  if (!s.ok()) {
    return Admitted(ctx, "SimulateClientReboot", request->reason(), target)
        .Finish(s);
  }
  return SubmitMutation(ctx, "SimulateClientReboot", request->reason(), target,
                        cmd, [](const absl::StatusOr<core::Reply>& r) {
                          absl::Status status =
                              r.ok() ? ReplyStatus(*r) : r.status();
                          if (status.ok() && r->stale) {
                            status = absl::InvalidArgumentError(
                                "new_state: not newer than the recorded state "
                                "(changed concurrently)");
                          }
                          return status;
                        });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ResetGateway(
    grpc::CallbackServerContext* ctx, const v1::ResetGatewayRequest* request,
    v1::ResetGatewayResponse* response) {
  const std::string target = absl::StrCat("gateway ", request->gateway_id());
  if (absl::Status s = Admit(ctx, "ResetGateway", request->reason(), target); !s.ok()) {
    return Finish(ctx, s);
  }
  absl::Status verdict = UnknownGatewayError(request->gateway_id());
  absl::Status s = runner_->ReadNow([&](const core::LockCore& core, int64_t) {
    if (request->has_grace_period_ms() &&
        static_cast<int64_t>(request->grace_period_ms()) != core.options().grace_period_ms) {
      verdict = absl::InvalidArgumentError(absl::StrCat(
          "grace_period_ms: this server applies its configured grace period (",
          core.options().grace_period_ms, " ms); a per-call length is not supported"));
      return;
    }
    for (const core::GatewayInfo& g : core.ListGateways()) {
      if (g.name != request->gateway_id()) continue;
      verdict = absl::OkStatus();
      absl::btree_set<std::string> targets;
      for (const core::MonitorInfo& m : core.ListMonitors(g.name)) targets.insert(m.mon_name);
      response->set_notifications_queued(targets.size());
      core::LockFilter filter;
      filter.gateway = g.name;
      response->set_cancelled_waiters(
          core.ListWaiters(filter, 0, core.options().waiters_max).size());
    }
  });
  if (s.ok()) s = verdict;
  if (!s.ok()) {
    return Admitted(ctx, "ResetGateway", request->reason(), target).Finish(s);
  }
  core::ResetGatewayCmd cmd;
  cmd.request_id = request->request_id();
  cmd.gateway = request->gateway_id();
  CoreRunner* runner = runner_;
  const std::string gateway = request->gateway_id();
  return SubmitMutation(
      ctx, "ResetGateway", request->reason(), target, cmd,
      [runner, gateway, response](const absl::StatusOr<core::Reply>& r) {
        absl::Status status = r.ok() ? ReplyStatus(*r) : r.status();
        if (status.ok()) {
          response->set_new_state(r->nsm_state);
          (void)runner->ReadNow([&](const core::LockCore& core, int64_t) {
            for (const core::GatewayInfo& g : core.ListGateways()) {
              if (g.name == gateway && g.grace_until_ms != 0) {
                SetTimestampMs(g.grace_until_ms,
                               response->mutable_grace_ends_at());
              }
            }
          });
        }
        return status;
      });
}

grpc::ServerUnaryReactor* AdminServiceImpl::StepDown(grpc::CallbackServerContext* ctx,
                                                     const v1::StepDownRequest* request,
                                                     v1::StepDownResponse* response) {
  if (absl::Status s = Admit(ctx, "StepDown", request->reason(), "leadership"); !s.ok()) {
    return Finish(ctx, s);
  }
  absl::Status status;
  if (leadership_ == nullptr) {
    status = absl::FailedPreconditionError(
        "no standby to take over: this server runs without leader election "
        "(single node); stop it instead");
  } else {
    absl::StatusOr<std::string> leader =
        leadership_->StepDown(request->reason(), request->request_id());
    status = leader.status();
    if (leader.ok()) response->set_new_leader_address(*leader);
  }
  return Admitted(ctx, "StepDown", request->reason(), "leadership")
      .Finish(status);
}

}  // namespace lockwarden::service
