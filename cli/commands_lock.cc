// lock, unlock, test and cancel: LockService calls as a gateway would make
// them, under the gateway identity --gateway-id. `lock --wait` also plays
// the gateway's part of the grant protocol: it watches the identity's grant
// stream for its own GrantEvent and acknowledges it (docs/api.md, "Event
// streams and acknowledgements").
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

// Flags shared by lock, unlock, test and cancel.
struct LockFlags {
  std::string fh_hex;
  std::string client;
  uint32_t svid = 0;
  std::string oh_hex;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool shared = false;
  bool wait = false;
  std::string wait_timeout = "60s";
  bool reclaim = false;
  int32_t state = 0;
  bool monitored = false;
};

// The flags decoded into API values.
struct LockTarget {
  std::string file_handle;
  v1::LockOwner owner;
  v1::ByteRange range;
  bool exclusive = true;
};

void AddTargetFlags(CLI::App* command, LockFlags* flags, bool with_mode) {
  command->add_option("--fh", flags->fh_hex, "File handle, hex")->required();
  command->add_option("--client", flags->client,
                      "Owner's client host name (NLM caller_name)")
      ->required();
  command->add_option("--svid", flags->svid, "Owner's process id (NLM svid)")
      ->capture_default_str();
  command->add_option("--oh", flags->oh_hex, "Owner handle, hex");
  command->add_option("--offset", flags->offset, "First byte of the range")
      ->capture_default_str();
  command->add_option("--length", flags->length,
                      "Bytes in the range; 0 means to end of file")
      ->capture_default_str();
  if (with_mode) {
    command->add_flag("--shared", flags->shared,
                      "Shared (read) lock; default exclusive (write)");
  }
}

absl::StatusOr<LockTarget> DecodeTarget(const LockFlags& flags) {
  LockTarget target;
  absl::StatusOr<std::string> fh = ParseHexBytes(flags.fh_hex, "--fh");
  if (!fh.ok()) return fh.status();
  if (fh->empty()) return absl::InvalidArgumentError("--fh: empty");
  target.file_handle = *std::move(fh);
  absl::StatusOr<std::string> oh = ParseHexBytes(flags.oh_hex, "--oh");
  if (!oh.ok()) return oh.status();
  target.owner.set_client_name(flags.client);
  target.owner.set_svid(flags.svid);
  target.owner.set_oh(*std::move(oh));
  target.range.set_offset(flags.offset);
  target.range.set_length(flags.length);
  target.exclusive = !flags.shared;
  return target;
}

bool SameOwner(const v1::LockOwner& a, const v1::LockOwner& b) {
  return a.client_name() == b.client_name() && a.svid() == b.svid() &&
         a.oh() == b.oh();
}

bool MatchesTarget(const v1::GrantEvent& event, const LockTarget& target) {
  return event.file_handle() == target.file_handle &&
         SameOwner(event.owner(), target.owner) &&
         event.range().offset() == target.range.offset() &&
         event.range().length() == target.range.length() &&
         event.exclusive() == target.exclusive;
}

std::string DescribeHolder(const v1::LockHolder& holder) {
  return absl::StrCat(FormatOwner(holder.owner()), " holds ",
                      FormatMode(holder.exclusive()), " ",
                      FormatRange(holder.range()), " via ",
                      holder.gateway_id().empty() ? "-" : holder.gateway_id());
}

int ExitCodeFor(v1::LockStatus status) {
  if (status == v1::LOCK_STATUS_GRANTED) return kExitOk;
  if (status == v1::LOCK_STATUS_UNSPECIFIED) return kExitError;
  return kExitDenied;
}

// Prints an outcome. `document` is the JSON form (printed as is with
// --output json); the table form is `status` plus the given details and the
// conflicting holder, if any.
int PrintOutcome(CommandEnv* env, nlohmann::json document,
                 v1::LockStatus status, const v1::LockHolder* holder,
                 KeyValueList details) {
  const int code = ExitCodeFor(status);
  if (env->format() == OutputFormat::kJson) {
    env->PrintJson(document);
  } else {
    KeyValueList lines;
    lines.Add("status", ShortEnumName(status));
    lines.AddAll(details);
    if (holder != nullptr && !holder->owner().client_name().empty()) {
      lines.Add("conflicting_holder", DescribeHolder(*holder));
    }
    env->out() << lines.Render();
  }
  if (code == kExitError) {
    env->err() << "lockwardenctl: server " << document.value("server", "")
               << " answered without a status\n";
  }
  return code;
}

nlohmann::json BaseDocument(absl::string_view operation, Connection* connection,
                            const std::string& request_id) {
  nlohmann::json document = nlohmann::json::object();
  document["operation"] = std::string(operation);
  document["server"] = connection->answered_address();
  if (!request_id.empty()) document["request_id"] = request_id;
  return document;
}

void MergeInto(nlohmann::json* document, const google::protobuf::Message& m) {
  const nlohmann::json fields = MessageToJson(m);
  for (const auto& [key, value] : fields.items()) (*document)[key] = value;
}

int RunTest(CommandEnv* env, const LockFlags& flags) {
  absl::StatusOr<LockTarget> target = DecodeTarget(flags);
  if (!target.ok()) return env->Fail(target.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::TestRequest request;
  request.set_gateway_id(env->gateway_id);
  request.set_file_handle(target->file_handle);
  *request.mutable_owner() = target->owner;
  *request.mutable_range() = target->range;
  request.set_exclusive(target->exclusive);
  v1::TestResponse response;
  absl::Status status = (*connection)->Call(
      "Test", [&](grpc::ClientContext* context,
                  const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Test(context, request,
                                                       &response);
      });
  if (!status.ok()) return env->Fail(status);
  nlohmann::json document = BaseDocument("test", *connection, "");
  MergeInto(&document, response);
  return PrintOutcome(env, std::move(document), response.status(),
                      &response.conflicting_holder(), KeyValueList());
}

int RunUnlock(CommandEnv* env, const LockFlags& flags) {
  absl::StatusOr<LockTarget> target = DecodeTarget(flags);
  if (!target.ok()) return env->Fail(target.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::UnlockRequest request;
  request.set_request_id(NewRequestId());
  request.set_gateway_id(env->gateway_id);
  request.set_file_handle(target->file_handle);
  *request.mutable_owner() = target->owner;
  *request.mutable_range() = target->range;
  v1::UnlockResponse response;
  absl::Status status = (*connection)->Call(
      "Unlock", [&](grpc::ClientContext* context,
                    const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Unlock(context, request,
                                                         &response);
      });
  if (!status.ok()) return env->Fail(status);
  nlohmann::json document =
      BaseDocument("unlock", *connection, request.request_id());
  MergeInto(&document, response);
  return PrintOutcome(env, std::move(document), response.status(), nullptr,
                      KeyValueList());
}

// Sends Cancel for the blocked request described by `target`.
absl::StatusOr<v1::CancelResponse> SendCancel(Connection* connection,
                                              const std::string& gateway_id,
                                              const LockTarget& target,
                                              bool block) {
  v1::CancelRequest request;
  request.set_request_id(NewRequestId());
  request.set_gateway_id(gateway_id);
  request.set_file_handle(target.file_handle);
  *request.mutable_owner() = target.owner;
  *request.mutable_range() = target.range;
  request.set_exclusive(target.exclusive);
  request.set_block(block);
  v1::CancelResponse response;
  absl::Status status = connection->Call(
      "Cancel", [&](grpc::ClientContext* context,
                    const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Cancel(context, request,
                                                         &response);
      });
  if (!status.ok()) return status;
  return response;
}

int RunCancel(CommandEnv* env, const LockFlags& flags) {
  absl::StatusOr<LockTarget> target = DecodeTarget(flags);
  if (!target.ok()) return env->Fail(target.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  absl::StatusOr<v1::CancelResponse> response =
      SendCancel(*connection, env->gateway_id, *target, /*block=*/true);
  if (!response.ok()) return env->Fail(response.status());
  nlohmann::json document = BaseDocument("cancel", *connection, "");
  MergeInto(&document, *response);
  return PrintOutcome(env, std::move(document), response->status(), nullptr,
                      KeyValueList());
}

// Watches the gateway identity's grant stream until the event for `target`
// arrives or `timeout` passes (DeadlineExceeded). Other events on the stream
// are left alone: they belong to other waiters of the same identity and go
// back to the queue when this stream ends.
absl::StatusOr<v1::GrantEvent> AwaitGrant(Connection* connection,
                                          const std::string& gateway_id,
                                          const LockTarget& target,
                                          absl::Duration timeout) {
  v1::GrantEvent grant;
  bool found = false;
  CallOptions options;
  options.timeout = timeout;
  options.next_address_on_deadline = false;
  absl::Status status = connection->Call(
      "WatchGrants",
      [&](grpc::ClientContext* context,
          const std::shared_ptr<grpc::Channel>& channel) {
        v1::WatchGrantsRequest request;
        request.set_gateway_id(gateway_id);
        request.set_instance_name(absl::StrCat("lockwardenctl-", getpid()));
        std::unique_ptr<grpc::ClientReader<v1::WatchGrantsResponse>> reader =
            v1::LockService::NewStub(channel)->WatchGrants(context, request);
        v1::WatchGrantsResponse message;
        // Bounded by the context's deadline.
        while (!found && reader->Read(&message)) {
          for (const v1::GrantEvent& event : message.events()) {
            if (MatchesTarget(event, target)) {
              grant = event;
              found = true;
              break;
            }
          }
        }
        if (found) {
          context->TryCancel();
          reader->Finish();
          return grpc::Status::OK;
        }
        grpc::Status finished = reader->Finish();
        if (finished.ok()) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "grant stream ended before the grant");
        }
        return finished;
      },
      options);
  if (!status.ok()) return status;
  return grant;
}

absl::StatusOr<v1::AckGrantResponse> AckDelivered(
    Connection* connection, const std::string& gateway_id, uint64_t sequence) {
  v1::AckGrantRequest request;
  request.set_request_id(NewRequestId());
  request.set_gateway_id(gateway_id);
  request.set_sequence(sequence);
  request.set_outcome(v1::GRANT_OUTCOME_DELIVERED);
  v1::AckGrantResponse response;
  absl::Status status = connection->Call(
      "AckGrant", [&](grpc::ClientContext* context,
                      const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->AckGrant(context, request,
                                                           &response);
      });
  if (!status.ok()) return status;
  return response;
}

// The rest of `lock --wait` after the server answered BLOCKED.
int WaitForGrant(CommandEnv* env, Connection* connection,
                 const LockTarget& target, absl::Duration timeout,
                 nlohmann::json document, const v1::LockResponse& blocked) {
  if (blocked.has_conflicting_holder()) {
    env->err() << "blocked: " << DescribeHolder(blocked.conflicting_holder())
               << "; waiting up to " << absl::FormatDuration(timeout)
               << " for the grant\n";
  }
  absl::StatusOr<v1::GrantEvent> grant =
      AwaitGrant(connection, env->gateway_id, target, timeout);
  if (!grant.ok()) {
    // Leave no waiter behind: a timed-out (or broken) wait cancels the
    // request, which also releases a grant that raced with the timeout.
    absl::StatusOr<v1::CancelResponse> cancel =
        SendCancel(connection, env->gateway_id, target, /*block=*/true);
    if (grant.status().code() != absl::StatusCode::kDeadlineExceeded) {
      if (!cancel.ok()) env->Fail(cancel.status());
      return env->Fail(grant.status());
    }
    if (!cancel.ok()) return env->Fail(cancel.status());
    document["timed_out"] = true;
    document["cancel_status"] = v1::LockStatus_Name(cancel->status());
    KeyValueList details;
    details.Add("timed_out",
                absl::StrCat("after ", absl::FormatDuration(timeout), "; ",
                             cancel->status() == v1::LOCK_STATUS_GRANTED
                                 ? "request cancelled"
                                 : "no waiting request was left to cancel"));
    PrintOutcome(env, std::move(document), v1::LOCK_STATUS_BLOCKED,
                 &blocked.conflicting_holder(), std::move(details));
    return kExitDenied;
  }
  absl::StatusOr<v1::AckGrantResponse> ack =
      AckDelivered(connection, env->gateway_id, grant->sequence());
  if (!ack.ok()) return env->Fail(ack.status());
  document["grant"] = MessageToJson(*grant);
  document["ack"] = MessageToJson(*ack);
  document["fencing_token"] = grant->fencing_token();
  // Held means granted; otherwise the grant expired before our ack and the
  // lock was passed on.
  const v1::LockStatus outcome =
      ack->lock_held() ? v1::LOCK_STATUS_GRANTED : v1::LOCK_STATUS_DENIED;
  document["status"] = v1::LockStatus_Name(outcome);
  KeyValueList details;
  details.Add("fencing_token", absl::StrCat(grant->fencing_token()));
  details.Add("grant_sequence", absl::StrCat(grant->sequence()));
  if (!ack->lock_held()) {
    details.Add("note", "the grant expired before it was acknowledged");
  }
  return PrintOutcome(env, std::move(document), outcome, nullptr,
                      std::move(details));
}

int RunLock(CommandEnv* env, const LockFlags& flags) {
  absl::StatusOr<LockTarget> target = DecodeTarget(flags);
  if (!target.ok()) return env->Fail(target.status());
  absl::StatusOr<absl::Duration> wait_timeout =
      ParseDurationFlag(flags.wait_timeout, "--wait-timeout");
  if (!wait_timeout.ok()) return env->Fail(wait_timeout.status());
  if (flags.wait && flags.reclaim) {
    return env->Fail(absl::InvalidArgumentError(
        "--wait and --reclaim exclude each other: a reclaim never blocks"));
  }
  if (flags.wait && env->gateway_id != kDefaultGatewayId) {
    // Our grant stream competes with the identity's gateways for its events:
    // the ones we do not want stay parked with us until we stop watching.
    env->err() << "lockwardenctl: warning: --wait watches the grant stream "
                  "of gateway identity '"
               << env->gateway_id
               << "'; grants for its other waiters may be delayed until this "
                  "command ends\n";
  }
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::LockRequest request;
  request.set_request_id(NewRequestId());
  request.set_gateway_id(env->gateway_id);
  request.set_file_handle(target->file_handle);
  *request.mutable_owner() = target->owner;
  *request.mutable_range() = target->range;
  request.set_exclusive(target->exclusive);
  request.set_block(flags.wait);
  request.set_reclaim(flags.reclaim);
  request.set_client_state(flags.state);
  request.set_monitored(flags.monitored);
  request.mutable_callback()->set_caller_name(flags.client);
  v1::LockResponse response;
  absl::Status status = (*connection)->Call(
      "Lock", [&](grpc::ClientContext* context,
                  const std::shared_ptr<grpc::Channel>& channel) {
        return v1::LockService::NewStub(channel)->Lock(context, request,
                                                       &response);
      });
  if (!status.ok()) return env->Fail(status);
  nlohmann::json document =
      BaseDocument("lock", *connection, request.request_id());
  MergeInto(&document, response);
  if (flags.wait && response.status() == v1::LOCK_STATUS_BLOCKED) {
    return WaitForGrant(env, *connection, *target, *wait_timeout,
                        std::move(document), response);
  }
  KeyValueList details;
  if (response.status() == v1::LOCK_STATUS_GRANTED) {
    details.Add("fencing_token", absl::StrCat(response.fencing_token()));
  }
  return PrintOutcome(env, std::move(document), response.status(),
                      &response.conflicting_holder(), std::move(details));
}

}  // namespace

void AddLockCommands(CLI::App& app, CommandEnv* env) {
  auto lock_flags = std::make_shared<LockFlags>();
  CLI::App* lock = app.add_subcommand(
      "lock", "Take a byte-range lock (exit 1 when denied)");
  AddTargetFlags(lock, lock_flags.get(), /*with_mode=*/true);
  lock->add_flag("--wait", lock_flags->wait,
                 "Block until granted (watch the grant stream, ack it)");
  lock->add_option("--wait-timeout", lock_flags->wait_timeout,
                   "How long --wait waits before cancelling")
      ->capture_default_str();
  lock->add_flag("--reclaim", lock_flags->reclaim,
                 "Reclaim after a server state loss (grace period)");
  lock->add_option("--state", lock_flags->state,
                   "The client's NSM state number")
      ->capture_default_str();
  lock->add_flag("--monitored", lock_flags->monitored,
                 "NLM LOCK semantics: the client's SM_NOTIFY releases it "
                 "(default NM_LOCK: only FREE_ALL or an admin does)");
  SetAction(lock, env, [env, lock_flags] { return RunLock(env, *lock_flags); });

  auto unlock_flags = std::make_shared<LockFlags>();
  CLI::App* unlock = app.add_subcommand("unlock", "Release a byte range");
  AddTargetFlags(unlock, unlock_flags.get(), /*with_mode=*/false);
  SetAction(unlock, env,
            [env, unlock_flags] { return RunUnlock(env, *unlock_flags); });

  auto test_flags = std::make_shared<LockFlags>();
  CLI::App* test = app.add_subcommand(
      "test", "Test whether a lock could be granted (exit 1 when not)");
  AddTargetFlags(test, test_flags.get(), /*with_mode=*/true);
  SetAction(test, env, [env, test_flags] { return RunTest(env, *test_flags); });

  auto cancel_flags = std::make_shared<LockFlags>();
  CLI::App* cancel = app.add_subcommand(
      "cancel", "Cancel a blocked lock request (exit 1 when none matched)");
  AddTargetFlags(cancel, cancel_flags.get(), /*with_mode=*/true);
  SetAction(cancel, env,
            [env, cancel_flags] { return RunCancel(env, *cancel_flags); });
}

}  // namespace lockwarden::cli
