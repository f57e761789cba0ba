#include "server/service/convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/timestamp.pb.h"

namespace lockwarden::service {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckBytes(absl::string_view field, const std::string& v,
                        size_t min, size_t max) {
  if (v.size() < min) {
    return Invalid(field, min == 1 ? "must not be empty"
                                   : absl::StrCat("needs at least ", min, " bytes"));
  }
  if (v.size() > max) {
    return Invalid(field, absl::StrCat("is ", v.size(), " bytes, limit ", max));
  }
  return absl::OkStatus();
}

absl::Status CheckCommon(const std::string& request_id,
                         const std::string& gateway_id) {
  if (absl::Status s = CheckBytes("request_id", request_id, 0, kRequestIdBytesMax);
      !s.ok()) {
    return s;
  }
  return CheckBytes("gateway_id", gateway_id, 1, kNameBytesMax);
}

absl::Status CheckFileHandle(const std::string& fh) {
  return CheckBytes("file_handle", fh, 1, kFileHandleBytesMax);
}

absl::StatusOr<core::Owner> ToOwner(const v1::LockOwner& o,
                                    absl::string_view field) {
  if (absl::Status s = CheckBytes(absl::StrCat(field, ".client_name"),
                                  o.client_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckBytes(absl::StrCat(field, ".oh"), o.oh(), 0, kOpaqueBytesMax);
      !s.ok()) {
    return s;
  }
  return core::Owner{o.client_name(), o.svid(), o.oh()};
}

core::Range ToRange(const v1::ByteRange& r) {
  return core::Range{r.offset(), r.length()};
}

absl::StatusOr<core::ShareMode> ToMode(int v, absl::string_view field) {
  // ShareAccess and ShareDeny share numbering: NONE=1 .. READ_WRITE=4.
  switch (v) {
    case 1: return core::ShareMode::kNone;
    case 2: return core::ShareMode::kRead;
    case 3: return core::ShareMode::kWrite;
    case 4: return core::ShareMode::kReadWrite;
    default: return Invalid(field, "must be set (NONE, READ, WRITE or READ_WRITE)");
  }
}

absl::StatusOr<core::MonitorId> ToMonitorId(const v1::MonitorCallback& m) {
  if (absl::Status s = CheckBytes("my_id.my_name", m.my_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  if (m.my_prog() == 0) return Invalid("my_id.my_prog", "must not be 0");
  return core::MonitorId{m.my_name(), m.my_prog(), m.my_vers(), m.my_proc()};
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

v1::LockStatus ToProto(core::LockStatus status) {
  switch (status) {
    case core::LockStatus::kGranted: return v1::LOCK_STATUS_GRANTED;
    case core::LockStatus::kDenied: return v1::LOCK_STATUS_DENIED;
    case core::LockStatus::kBlocked: return v1::LOCK_STATUS_BLOCKED;
    case core::LockStatus::kDeadlock: return v1::LOCK_STATUS_DEADLOCK;
    case core::LockStatus::kGrace: return v1::LOCK_STATUS_GRACE_PERIOD;
    case core::LockStatus::kNoLocks: return v1::LOCK_STATUS_NO_LOCKS;
    case core::LockStatus::kInvalid: return v1::LOCK_STATUS_FAILED;
    case core::LockStatus::kNotFound: return v1::LOCK_STATUS_DENIED;
  }
  return v1::LOCK_STATUS_FAILED;
}

absl::Status ReplyError(const core::Reply& reply) {
  if (reply.status == core::LockStatus::kInvalid) {
    return absl::InvalidArgumentError(reply.message);
  }
  return absl::OkStatus();
}

absl::StatusOr<core::LockCmd> ToCommand(const v1::LockRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("cookie", r.cookie(), 0, kOpaqueBytesMax); !s.ok()) {
    return s;
  }
  auto owner = ToOwner(r.owner(), "owner");
  if (!owner.ok()) return owner.status();
  core::LockCmd c;
  c.request_id = r.request_id();
  c.gateway = r.gateway_id();
  c.fh = r.file_handle();
  c.owner = *std::move(owner);
  c.range = ToRange(r.range());
  c.exclusive = r.exclusive();
  c.block = r.block();
  c.reclaim = r.reclaim();
  c.client_state = r.client_state();
  c.monitored = r.monitored();
  c.client_address = r.callback().client_address();
  if (r.block()) c.callback = r.callback().SerializeAsString();
  c.cookie = r.cookie();
  return c;
}

absl::StatusOr<core::UnlockCmd> ToCommand(const v1::UnlockRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  auto owner = ToOwner(r.owner(), "owner");
  if (!owner.ok()) return owner.status();
  return core::UnlockCmd{r.request_id(), r.gateway_id(), r.file_handle(),
                         *std::move(owner), ToRange(r.range())};
}

absl::StatusOr<core::CancelCmd> ToCommand(const v1::CancelRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  auto owner = ToOwner(r.owner(), "owner");
  if (!owner.ok()) return owner.status();
  return core::CancelCmd{r.request_id(), r.gateway_id(), r.file_handle(),
                         *std::move(owner), ToRange(r.range()), r.exclusive()};
}

absl::StatusOr<core::TestQuery> ToQuery(const v1::TestRequest& r) {
  if (absl::Status s = CheckBytes("gateway_id", r.gateway_id(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  auto owner = ToOwner(r.owner(), "owner");
  if (!owner.ok()) return owner.status();
  return core::TestQuery{r.gateway_id(), r.file_handle(), *std::move(owner),
                         ToRange(r.range()), r.exclusive()};
}

absl::StatusOr<core::ShareCmd> ToCommand(const v1::ShareRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("owner.client_name", r.owner().client_name(), 1,
                                  kNameBytesMax);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckBytes("owner.oh", r.owner().oh(), 0, kOpaqueBytesMax);
      !s.ok()) {
    return s;
  }
  auto access = ToMode(r.access(), "access");
  if (!access.ok()) return access.status();
  auto deny = ToMode(r.deny(), "deny");
  if (!deny.ok()) return deny.status();
  core::ShareCmd c;
  c.request_id = r.request_id();
  c.gateway = r.gateway_id();
  c.fh = r.file_handle();
  c.client = r.owner().client_name();
  c.oh = r.owner().oh();
  c.access = *access;
  c.deny = *deny;
  c.reclaim = r.reclaim();
  return c;
}

absl::StatusOr<core::UnshareCmd> ToCommand(const v1::UnshareRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckFileHandle(r.file_handle()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("owner.client_name", r.owner().client_name(), 1,
                                  kNameBytesMax);
      !s.ok()) {
    return s;
  }
  return core::UnshareCmd{r.request_id(), r.gateway_id(), r.file_handle(),
                          r.owner().client_name(), r.owner().oh()};
}

absl::StatusOr<core::FreeAllCmd> ToCommand(const v1::FreeAllRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("client_name", r.client_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  return core::FreeAllCmd{r.request_id(), r.gateway_id(), r.client_name(),
                          r.state()};
}

absl::StatusOr<core::AckEventCmd> ToCommand(const v1::AckGrantRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (r.sequence() == 0) return Invalid("sequence", "must not be 0");
  core::AckEventCmd c;
  c.request_id = r.request_id();
  c.gateway = r.gateway_id();
  c.sequence = r.sequence();
  switch (r.outcome()) {
    case v1::GRANT_OUTCOME_DELIVERED: c.outcome = core::AckOutcome::kDelivered; break;
    case v1::GRANT_OUTCOME_REFUSED: c.outcome = core::AckOutcome::kRefused; break;
    case v1::GRANT_OUTCOME_UNDELIVERABLE:
      c.outcome = core::AckOutcome::kFailedGiveUp;
      break;
    default:
      return Invalid("outcome", "must be DELIVERED, REFUSED or UNDELIVERABLE");
  }
  return c;
}

absl::StatusOr<core::MonCmd> ToCommand(const v1::MonRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("mon_name", r.mon_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  if (r.priv().size() != kPrivBytes) {
    return Invalid("priv", absl::StrCat("must be exactly ", kPrivBytes,
                                        " bytes, got ", r.priv().size()));
  }
  auto my_id = ToMonitorId(r.my_id());
  if (!my_id.ok()) return my_id.status();
  return core::MonCmd{r.request_id(), r.gateway_id(), r.mon_name(),
                      *std::move(my_id), r.priv()};
}

absl::StatusOr<core::UnmonCmd> ToCommand(const v1::UnmonRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("mon_name", r.mon_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  auto my_id = ToMonitorId(r.my_id());
  if (!my_id.ok()) return my_id.status();
  return core::UnmonCmd{r.request_id(), r.gateway_id(), r.mon_name(),
                        *std::move(my_id)};
}

absl::StatusOr<core::UnmonAllCmd> ToCommand(const v1::UnmonAllRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  auto my_id = ToMonitorId(r.my_id());
  if (!my_id.ok()) return my_id.status();
  return core::UnmonAllCmd{r.request_id(), r.gateway_id(), *std::move(my_id)};
}

absl::StatusOr<core::NotifyCmd> ToCommand(const v1::NotifyRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  if (absl::Status s = CheckBytes("mon_name", r.mon_name(), 1, kNameBytesMax);
      !s.ok()) {
    return s;
  }
  return core::NotifyCmd{r.request_id(), r.gateway_id(), r.mon_name(), r.state()};
}

absl::StatusOr<core::SimuCrashCmd> ToCommand(const v1::SimuCrashRequest& r) {
  if (absl::Status s = CheckCommon(r.request_id(), r.gateway_id()); !s.ok()) return s;
  return core::SimuCrashCmd{r.request_id(), r.gateway_id()};
}

void SetTimestampMs(int64_t unix_ms, google::protobuf::Timestamp* out) {
  out->set_seconds(unix_ms / 1000);
  out->set_nanos(static_cast<int32_t>((unix_ms % 1000) * 1'000'000));
}

void ToProto(const core::Owner& in, v1::LockOwner* out) {
  out->set_client_name(in.client);
  out->set_svid(in.svid);
  out->set_oh(in.oh);
}

void ToProto(const core::Range& in, v1::ByteRange* out) {
  out->set_offset(in.offset);
  out->set_length(in.length);
}

void ToProto(const core::Holder& in, v1::LockHolder* out) {
  ToProto(in.owner, out->mutable_owner());
  ToProto(in.range, out->mutable_range());
  out->set_exclusive(in.exclusive);
}

void ToProto(const core::LockInfo& in, v1::Lock* out) {
  out->set_file_handle(in.fh);
  ToProto(in.owner, out->mutable_owner());
  ToProto(in.range, out->mutable_range());
  out->set_exclusive(in.exclusive);
  out->set_fencing_token(in.fencing_token);
  out->set_client_state(in.client_state);
  out->set_gateway_id(in.gateway);
  SetTimestampMs(in.granted_ms, out->mutable_granted_at());
  out->set_confirmed(!in.unconfirmed);
  out->set_monitored(in.monitored);
  if (in.unconfirmed) {
    SetTimestampMs(in.grant_deadline_ms, out->mutable_confirm_deadline());
  }
}

void ToProto(const core::WaiterInfo& in, v1::Waiter* out) {
  out->set_file_handle(in.fh);
  ToProto(in.owner, out->mutable_owner());
  ToProto(in.range, out->mutable_range());
  out->set_exclusive(in.exclusive);
  out->set_gateway_id(in.gateway);
  SetTimestampMs(in.queued_ms, out->mutable_queued_at());
  out->set_client_state(in.client_state);
  out->mutable_callback()->ParseFromString(in.callback);
  out->set_cookie(in.cookie);
}

void ToProto(const core::ShareInfo& in, v1::Share* out) {
  out->set_file_handle(in.fh);
  out->mutable_owner()->set_client_name(in.client);
  out->mutable_owner()->set_oh(in.oh);
  out->set_access(static_cast<v1::ShareAccess>(static_cast<int>(in.access) + 1));
  out->set_deny(static_cast<v1::ShareDeny>(static_cast<int>(in.deny) + 1));
  out->set_gateway_id(in.gateway);
  SetTimestampMs(in.granted_ms, out->mutable_granted_at());
}

bool ToGrantEvent(const core::Event& e, int64_t grant_timeout_ms,
                  v1::GrantEvent* out) {
  const auto* g = std::get_if<core::GrantedEvent>(&e.body);
  if (g == nullptr) return false;
  out->set_sequence(e.sequence);
  out->set_file_handle(g->fh);
  ToProto(g->owner, out->mutable_owner());
  ToProto(g->range, out->mutable_range());
  out->set_exclusive(g->exclusive);
  out->set_fencing_token(g->fencing_token);
  out->mutable_callback()->ParseFromString(g->callback);
  out->set_cookie(g->cookie);
  out->set_gateway_id(e.gateway);
  SetTimestampMs(e.created_ms + grant_timeout_ms, out->mutable_deadline());
  return true;
}

bool ToNotificationEvent(const core::Event& e, v1::NotificationEvent* out) {
  out->set_sequence(e.sequence);
  out->set_gateway_id(e.gateway);
  SetTimestampMs(e.created_ms, out->mutable_created_at());
  if (const auto* n = std::get_if<core::SmNotifyEvent>(&e.body)) {
    v1::SmNotify* sm = out->mutable_sm_notify();
    sm->set_target_host(n->target);
    sm->set_announced_name(n->mon_name);
    sm->set_state(n->state);
    for (const std::string& a : n->addresses) sm->add_target_addresses(a);
    return true;
  }
  if (const auto* c = std::get_if<core::StatusCallbackEvent>(&e.body)) {
    v1::StatusCallback* cb = out->mutable_status_callback();
    cb->set_mon_name(c->mon_name);
    cb->set_state(c->state);
    cb->mutable_my_id()->set_my_name(c->my_id.my_name);
    cb->mutable_my_id()->set_my_prog(c->my_id.my_prog);
    cb->mutable_my_id()->set_my_vers(c->my_id.my_vers);
    cb->mutable_my_id()->set_my_proc(c->my_id.my_proc);
    cb->set_priv(c->priv);
    return true;
  }
  return false;
}

void FillResponse(const core::Reply& r, v1::TestResponse* out) {
  out->set_status(ToProto(r.status));
  if (r.holder) ToProto(*r.holder, out->mutable_conflicting_holder());
}

void FillResponse(const core::Reply& r, v1::LockResponse* out) {
  out->set_status(ToProto(r.status));
  if (r.holder) ToProto(*r.holder, out->mutable_conflicting_holder());
  out->set_fencing_token(r.fencing_token);
}

void FillResponse(const core::Reply& r, v1::CancelResponse* out) {
  out->set_status(ToProto(r.status));
}

void FillResponse(const core::Reply& r, v1::UnlockResponse* out) {
  out->set_status(ToProto(r.status));
}

void FillResponse(const core::Reply& r, v1::ShareResponse* out) {
  out->set_status(ToProto(r.status));
}

void FillResponse(const core::Reply& r, v1::UnshareResponse* out) {
  out->set_status(ToProto(r.status));
}

void FillResponse(const core::Reply& r, v1::FreeAllResponse* out) {
  // The core reports one total (locks + shares + waiters).
  out->set_released_locks(r.released);
}

void FillResponse(const core::Reply& r, v1::AckGrantResponse* out) {
  out->set_applied(r.status != core::LockStatus::kNotFound);
  // A confirmed grant reports its fencing token; an expired or refused one
  // reports none.
  out->set_lock_held(r.fencing_token != 0);
}

}  // namespace lockwarden::service
