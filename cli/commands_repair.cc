// Repair commands on AdminService: locks release (ForceRelease), client
// reboot (SimulateClientReboot), gateway reset / drain, grace end,
// step-down. Each mutation mints one request id, reused verbatim when the
// call is retried at another server, and carries --reason for the audit log.
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

// Pages `locks release --token` scans to find the lock (1000 per page).
constexpr int kTokenScanPagesMax = 10000;

}  // namespace

std::string DefaultReason(absl::string_view command) {
  const char* user = std::getenv("USER");
  return absl::StrCat("lockwardenctl ", command, " by ",
                      user != nullptr && *user != '\0' ? user : "unknown");
}

namespace {

CLI::Option* AddReasonFlag(CLI::App* command, std::string* reason) {
  return command->add_option("--reason", *reason,
                             "Why (audit log); default names the command "
                             "and $USER");
}

}  // namespace

int PrintMutation(CommandEnv* env, Connection* connection,
                  absl::string_view operation, const std::string& request_id,
                  const google::protobuf::Message& response) {
  nlohmann::json fields = MessageToJson(response);
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json document = nlohmann::json::object();
    document["operation"] = std::string(operation);
    document["server"] = connection->answered_address();
    document["request_id"] = request_id;
    for (auto& [key, value] : fields.items()) document[key] = value;
    env->PrintJson(document);
    return kExitOk;
  }
  KeyValueList lines;
  lines.Add("operation", std::string(operation));
  lines.Add("server", connection->answered_address());
  for (auto& [key, value] : fields.items()) {
    lines.Add(key, value.is_string() ? value.get<std::string>() : value.dump());
  }
  env->out() << lines.Render();
  return kExitOk;
}

namespace {

// Issues one AdminService mutation and prints its answer.
template <typename Request, typename Response>
int RunMutation(CommandEnv* env, absl::string_view operation,
                absl::string_view rpc_name, const Request& request,
                grpc::Status (v1::AdminService::Stub::*method)(
                    grpc::ClientContext*, const Request&, Response*)) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  Response response;
  absl::Status status = (*connection)->Call(
      rpc_name, [&](grpc::ClientContext* context,
                    const std::shared_ptr<grpc::Channel>& channel) {
        auto stub = v1::AdminService::NewStub(channel);
        return ((*stub).*method)(context, request, &response);
      });
  if (!status.ok()) return env->Fail(status);
  return PrintMutation(env, *connection, operation, request.request_id(),
                       response);
}

struct ReleaseFlags {
  uint64_t token = 0;
  CLI::Option* token_option = nullptr;
  bool owner = false;
  std::string client;
  uint32_t svid = 0;
  std::string oh_hex;
  std::string fh_hex;
  uint64_t offset = 0;
  uint64_t length = 0;
  bool dry_run = false;
  std::string reason;
};

// Finds the lock with fencing token `token` by listing all locks.
absl::StatusOr<v1::Lock> FindLockByToken(Connection* connection,
                                         uint64_t token) {
  v1::ListLocksRequest request;
  request.set_page_size(1000);
  for (int page = 0; page < kTokenScanPagesMax; ++page) {
    v1::ListLocksResponse response;
    absl::Status status = connection->Call(
        "ListLocks", [&](grpc::ClientContext* context,
                         const std::shared_ptr<grpc::Channel>& channel) {
          return v1::AdminService::NewStub(channel)->ListLocks(
              context, request, &response);
        });
    if (!status.ok()) return status;
    for (const v1::Lock& lock : response.locks()) {
      if (lock.fencing_token() == token) return lock;
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  return absl::NotFoundError(
      absl::StrCat("locks release: no held lock has fencing token ", token));
}

// Fills the oneof target of `request` from the flags (see --help).
absl::Status DecodeReleaseTarget(const ReleaseFlags& flags,
                                 Connection* connection,
                                 v1::ForceReleaseRequest* request) {
  absl::StatusOr<std::string> fh = ParseHexBytes(flags.fh_hex, "--fh");
  if (!fh.ok()) return fh.status();
  absl::StatusOr<std::string> oh = ParseHexBytes(flags.oh_hex, "--oh");
  if (!oh.ok()) return oh.status();
  const bool by_token = flags.token_option->count() > 0;
  const int modes = (by_token ? 1 : 0) + (flags.owner ? 1 : 0) +
                    (!flags.owner && !flags.client.empty() ? 1 : 0) +
                    (!flags.owner && flags.client.empty() && !fh->empty() ? 1
                                                                          : 0);
  if (modes != 1 || (by_token && (!flags.client.empty() || !fh->empty())) ||
      (!flags.owner && !flags.client.empty() && !fh->empty())) {
    return absl::InvalidArgumentError(
        "locks release: give exactly one target: --token N | --owner "
        "--client C [--svid N] [--oh HEX] [--fh HEX [--offset] [--length]] | "
        "--client C | --fh HEX");
  }
  if (by_token) {
    absl::StatusOr<v1::Lock> lock = FindLockByToken(connection, flags.token);
    if (!lock.ok()) return lock.status();
    v1::LockTarget* target = request->mutable_lock();
    target->set_file_handle(lock->file_handle());
    *target->mutable_owner() = lock->owner();
    *target->mutable_range() = lock->range();
    return absl::OkStatus();
  }
  if (flags.owner) {
    if (flags.client.empty()) {
      return absl::InvalidArgumentError("locks release --owner: needs --client");
    }
    v1::LockOwner owner;
    owner.set_client_name(flags.client);
    owner.set_svid(flags.svid);
    owner.set_oh(*oh);
    if (fh->empty()) {
      *request->mutable_owner() = owner;
    } else {
      v1::LockTarget* target = request->mutable_lock();
      target->set_file_handle(*fh);
      *target->mutable_owner() = owner;
      target->mutable_range()->set_offset(flags.offset);
      target->mutable_range()->set_length(flags.length);
    }
    return absl::OkStatus();
  }
  if (!flags.client.empty()) {
    request->set_client_name(flags.client);
  } else {
    request->set_file_handle(*fh);
  }
  return absl::OkStatus();
}

void AddLocksRelease(CLI::App& app, CommandEnv* env) {
  auto flags = std::make_shared<ReleaseFlags>();
  CLI::App* release =
      Group(app, "locks", "Inspect locks")
          ->add_subcommand("release",
                           "Force-release locks without telling the client");
  flags->token_option = release->add_option(
      "--token", flags->token, "The lock with this fencing token");
  release->add_flag("--owner", flags->owner,
                    "Everything of the owner --client/--svid/--oh (or only "
                    "its range on --fh)");
  release->add_option("--client", flags->client,
                      "Everything of this client host (with --owner: the "
                      "owner's host)");
  release->add_option("--svid", flags->svid, "Owner's svid (with --owner)");
  release->add_option("--oh", flags->oh_hex, "Owner handle, hex (with --owner)");
  release->add_option("--fh", flags->fh_hex,
                      "Everything on this file (with --owner: the file of "
                      "the range)");
  release->add_option("--offset", flags->offset, "Range offset (--owner --fh)");
  release->add_option("--length", flags->length,
                      "Range length, 0 = to EOF (--owner --fh)");
  release->add_flag("--dry-run", flags->dry_run,
                    "Only report what would be released");
  AddReasonFlag(release, &flags->reason);
  SetAction(release, env, [env, flags] {
    absl::StatusOr<Connection*> connection = env->connection();
    if (!connection.ok()) return env->Fail(connection.status());
    v1::ForceReleaseRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(flags->reason.empty() ? DefaultReason("locks release")
                                             : flags->reason);
    request.set_validate_only(flags->dry_run);
    absl::Status target = DecodeReleaseTarget(*flags, *connection, &request);
    if (!target.ok()) return env->Fail(target);
    return RunMutation(env, "locks release", "ForceRelease", request,
                       &v1::AdminService::Stub::ForceRelease);
  });
}

void AddClientReboot(CLI::App& app, CommandEnv* env) {
  struct Flags {
    std::string client;
    int32_t state = 0;
    CLI::Option* state_option = nullptr;
    std::string reason;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* reboot =
      Group(app, "client", "Act on one client host")
          ->add_subcommand("reboot",
                           "Act as if the client rebooted (releases its "
                           "state everywhere)");
  reboot->add_option("--client", flags->client, "The client host")->required();
  flags->state_option = reboot->add_option(
      "--state", flags->state,
      "The client's new NSM state (default: recorded state + 2)");
  AddReasonFlag(reboot, &flags->reason);
  SetAction(reboot, env, [env, flags] {
    v1::SimulateClientRebootRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(flags->reason.empty() ? DefaultReason("client reboot")
                                             : flags->reason);
    request.set_client_name(flags->client);
    if (flags->state_option->count() > 0) request.set_new_state(flags->state);
    return RunMutation(env, "client reboot", "SimulateClientReboot", request,
                       &v1::AdminService::Stub::SimulateClientReboot);
  });
}

void AddGatewayCommands(CLI::App& app, CommandEnv* env) {
  CLI::App* gateway = Group(app, "gateway", "Act on one gateway identity "
                                            "(--gateway-id)");
  struct Flags {
    std::string reason;
    std::string grace_period;
    bool undrain = false;
  };
  auto reset_flags = std::make_shared<Flags>();
  CLI::App* reset = gateway->add_subcommand(
      "reset", "Declare the identity's lock state lost: new NSM state, "
               "grace, SM_NOTIFY to its clients");
  reset->add_option("--grace-period", reset_flags->grace_period,
                    "Grace length, e.g. 90s (default: the server's)");
  AddReasonFlag(reset, &reset_flags->reason);
  SetAction(reset, env, [env, reset_flags] {
    absl::StatusOr<std::string> gateway_id =
        env->ExplicitGatewayId("gateway reset");
    if (!gateway_id.ok()) return env->Fail(gateway_id.status());
    v1::ResetGatewayRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(reset_flags->reason.empty()
                           ? DefaultReason("gateway reset")
                           : reset_flags->reason);
    request.set_gateway_id(*gateway_id);
    if (!reset_flags->grace_period.empty()) {
      absl::StatusOr<absl::Duration> grace =
          ParseDurationFlag(reset_flags->grace_period, "--grace-period");
      if (!grace.ok()) return env->Fail(grace.status());
      request.set_grace_period_ms(
          static_cast<uint64_t>(absl::ToInt64Milliseconds(*grace)));
    }
    return RunMutation(env, "gateway reset", "ResetGateway", request,
                       &v1::AdminService::Stub::ResetGateway);
  });

  auto drain_flags = std::make_shared<Flags>();
  CLI::App* drain = gateway->add_subcommand(
      "drain",
      "Stop new waiters for the identity (maintenance; durable, and its "
      "gateways report not ready)");
  drain->add_flag("--undrain", drain_flags->undrain,
                  "Resume normal operation instead");
  AddReasonFlag(drain, &drain_flags->reason);
  SetAction(drain, env, [env, drain_flags] {
    absl::StatusOr<std::string> gateway_id =
        env->ExplicitGatewayId("gateway drain");
    if (!gateway_id.ok()) return env->Fail(gateway_id.status());
    v1::DrainGatewayRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(drain_flags->reason.empty()
                           ? DefaultReason("gateway drain")
                           : drain_flags->reason);
    request.set_gateway_id(*gateway_id);
    request.set_drain(!drain_flags->undrain);
    return RunMutation(env, "gateway drain", "DrainGateway", request,
                       &v1::AdminService::Stub::DrainGateway);
  });

  auto end_flags = std::make_shared<Flags>();
  CLI::App* end =
      Group(app, "grace", "Grace periods of gateway identities")
          ->add_subcommand("end", "End the identity's grace period now "
                                  "(--gateway-id); unreclaimed state is freed");
  AddReasonFlag(end, &end_flags->reason);
  SetAction(end, env, [env, end_flags] {
    absl::StatusOr<std::string> gateway_id = env->ExplicitGatewayId("grace end");
    if (!gateway_id.ok()) return env->Fail(gateway_id.status());
    v1::EndGraceRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(end_flags->reason.empty() ? DefaultReason("grace end")
                                                 : end_flags->reason);
    request.set_gateway_id(*gateway_id);
    return RunMutation(env, "grace end", "EndGrace", request,
                       &v1::AdminService::Stub::EndGrace);
  });
}

void AddStepDown(CLI::App& app, CommandEnv* env) {
  auto reason = std::make_shared<std::string>();
  CLI::App* step_down = app.add_subcommand(
      "step-down", "Ask the leader to give up leadership");
  AddReasonFlag(step_down, reason.get());
  SetAction(step_down, env, [env, reason] {
    v1::StepDownRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(reason->empty() ? DefaultReason("step-down") : *reason);
    return RunMutation(env, "step-down", "StepDown", request,
                       &v1::AdminService::Stub::StepDown);
  });
}

}  // namespace

void AddRepairCommands(CLI::App& app, CommandEnv* env) {
  AddLocksRelease(app, env);
  AddClientReboot(app, env);
  AddGatewayCommands(app, env);
  AddStepDown(app, env);
  AddSnapshotCommands(app, env);
}

}  // namespace lockwarden::cli
