// status (GetServerStatus), health (grpc.health.v1 Check), grace status
// (GetGraceStatus) and waiters graph (GetWaitForGraph): the single-shot
// inspection commands.
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/commands.h"
#include "cli/parse.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;
namespace health = ::grpc::health::v1;

int RunStatus(CommandEnv* env) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::GetServerStatusResponse response;
  absl::Status status = (*connection)->Call(
      "GetServerStatus", [&](grpc::ClientContext* context,
                             const std::shared_ptr<grpc::Channel>& channel) {
        return v1::AdminService::NewStub(channel)->GetServerStatus(
            context, v1::GetServerStatusRequest(), &response);
      });
  if (!status.ok()) return env->Fail(status);
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json document = MessageToJson(response);
    document["server"] = (*connection)->answered_address();
    env->PrintJson(document);
    return kExitOk;
  }
  const v1::CommitStats& commits = response.commit_stats();
  const v1::RecoveryStats& recovery = response.recovery();
  KeyValueList lines;
  lines.Add("server", (*connection)->answered_address());
  lines.Add("server_id", response.server_id());
  lines.Add("role", ShortEnumName(response.role()));
  lines.Add("leader", response.leader_address().empty()
                          ? "unknown"
                          : response.leader_address());
  lines.Add("version", response.version());
  lines.Add("started_at", FormatTimestamp(response.started_at()));
  lines.Add("uptime", absl::FormatDuration(absl::Milliseconds(
                          static_cast<int64_t>(response.uptime_ms()))));
  lines.Add("fencing_token", absl::StrCat(response.fencing_token()));
  lines.Add("store", absl::StrCat(ShortEnumName(response.store_backend()), " ",
                                  ShortEnumName(response.store_health())));
  if (!response.store_health_detail().empty()) {
    lines.Add("store_detail", response.store_health_detail());
  }
  lines.Add("locks", absl::StrCat(response.lock_count()));
  lines.Add("waiters", absl::StrCat(response.waiter_count()));
  lines.Add("commits",
            absl::StrFormat("%d (%d mutations, mean batch %.2f, max %d, "
                            "failed %d)",
                            commits.commits(), commits.mutations(),
                            commits.mean_batch_size(), commits.max_batch_size(),
                            commits.failed_commits()));
  lines.Add("commit_latency_us",
            absl::StrCat("last ", commits.last_commit_latency_us(), ", mean ",
                         commits.mean_commit_latency_us()));
  lines.Add("recovery",
            absl::StrCat(recovery.recovery_time_ms(), " ms, ",
                         recovery.keys_loaded(), " keys, ",
                         recovery.locks_loaded(), " locks, ",
                         recovery.waiters_loaded(), " waiters"));
  if (response.has_replica()) {
    // Only standbys fill `replica`: their warm copy and leader probes.
    const v1::ReplicaStatus& replica = response.replica();
    lines.Add("replica_revision",
              absl::StrCat("applied ", replica.applied_revision(), ", store ",
                           replica.store_revision(), ", lag ",
                           replica.lag_revisions()));
    lines.Add("replica_healthy",
              replica.healthy()
                  ? std::string("yes")
                  : absl::StrCat("no",
                                 replica.detail().empty()
                                     ? ""
                                     : absl::StrCat(" (", replica.detail(),
                                                    ")")));
    lines.Add("leader_probes",
              absl::StrCat(replica.probes(), " (failed ",
                           replica.failed_probes(), ", misconfigured ",
                           replica.misconfigured_probes(), ")",
                           replica.probe_misconfigured()
                               ? ", fast failover off"
                               : ""));
    if (!replica.last_probe_misconfiguration().empty()) {
      lines.Add("last_probe_misconfiguration",
                replica.last_probe_misconfiguration());
    }
  }
  env->out() << lines.Render();
  return kExitOk;
}

int RunHealth(CommandEnv* env, const std::string& service) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  health::HealthCheckRequest request;
  request.set_service(service);
  health::HealthCheckResponse response;
  absl::Status status = (*connection)->Call(
      "Health.Check", [&](grpc::ClientContext* context,
                          const std::shared_ptr<grpc::Channel>& channel) {
        return health::Health::NewStub(channel)->Check(context, request,
                                                       &response);
      });
  if (!status.ok()) return env->Fail(status);
  const std::string name =
      health::HealthCheckResponse::ServingStatus_Name(response.status());
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json document = MessageToJson(response);
    document["server"] = (*connection)->answered_address();
    document["service"] = service;
    env->PrintJson(document);
  } else {
    env->out() << name << "\n";
  }
  return response.status() == health::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitDenied;
}

int RunGraceStatus(CommandEnv* env, const std::string& gateway_id) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::GetGraceStatusRequest request;
  request.set_gateway_id(gateway_id);
  v1::GetGraceStatusResponse response;
  absl::Status status = (*connection)->Call(
      "GetGraceStatus", [&](grpc::ClientContext* context,
                            const std::shared_ptr<grpc::Channel>& channel) {
        return v1::AdminService::NewStub(channel)->GetGraceStatus(
            context, request, &response);
      });
  if (!status.ok()) return env->Fail(status);
  if (env->format() == OutputFormat::kJson) {
    env->PrintJson(MessageToJson(response));
    return kExitOk;
  }
  Table gateways({"GATEWAY", "IN_GRACE", "NSM_STATE", "STARTED_AT", "ENDS_AT",
                  "CLIENTS"});
  Table ledger({"GATEWAY", "CLIENT", "LOCKS", "SHARES", "RECLAIMED", "FREED",
                "NOTIFY", "LAST_RECLAIM_AT"});
  for (const v1::GraceStatus& grace : response.gateways()) {
    gateways.AddRow({grace.gateway_id(), grace.in_grace() ? "yes" : "no",
                     absl::StrCat(grace.nsm_state()),
                     FormatTimestamp(grace.started_at()),
                     FormatTimestamp(grace.ends_at()),
                     absl::StrCat(grace.ledger_size())});
    for (const v1::ReclaimLedgerEntry& entry : grace.ledger()) {
      ledger.AddRow({grace.gateway_id(), entry.client_name(),
                     absl::StrCat(entry.locks_reclaimed(), "/",
                                  entry.locks_held()),
                     absl::StrCat(entry.shares_reclaimed(), "/",
                                  entry.shares_held()),
                     entry.reclaimed() ? "yes" : "no",
                     entry.freed() ? "yes" : "no",
                     ShortEnumName(entry.notify_status()),
                     FormatTimestamp(entry.last_reclaim_at())});
    }
  }
  env->out() << gateways.Render();
  if (ledger.row_count() > 0) env->out() << "\n" << ledger.Render();
  return kExitOk;
}

int RunWaitForGraph(CommandEnv* env) {
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());
  v1::GetWaitForGraphResponse response;
  absl::Status status = (*connection)->Call(
      "GetWaitForGraph", [&](grpc::ClientContext* context,
                             const std::shared_ptr<grpc::Channel>& channel) {
        return v1::AdminService::NewStub(channel)->GetWaitForGraph(
            context, v1::GetWaitForGraphRequest(), &response);
      });
  if (!status.ok()) return env->Fail(status);
  if (env->format() == OutputFormat::kJson) {
    env->PrintJson(MessageToJson(response));
    return kExitOk;
  }
  Table edges({"WAITER", "HOLDER", "FILE_HANDLE", "WAITER_RANGE",
               "HOLDER_RANGE"});
  for (const v1::WaitForEdge& edge : response.edges()) {
    edges.AddRow({FormatOwner(edge.waiter()), FormatOwner(edge.holder()),
                  ToHex(edge.file_handle()), FormatRange(edge.waiter_range()),
                  FormatRange(edge.holder_range())});
  }
  env->out() << edges.Render();
  if (response.truncated()) env->out() << "(graph truncated by the server)\n";
  for (const v1::WaitForCycle& cycle : response.cycles()) {
    std::vector<std::string> owners;
    for (const v1::LockOwner& owner : cycle.owners()) {
      owners.push_back(FormatOwner(owner));
    }
    env->out() << "CYCLE: " << absl::StrJoin(owners, " -> ") << "\n";
  }
  return kExitOk;
}

}  // namespace

void AddStatusCommands(CLI::App& app, CommandEnv* env) {
  CLI::App* status = app.add_subcommand(
      "status", "Show the server's role, leader, store and statistics");
  SetAction(status, env, [env] { return RunStatus(env); });

  auto service = std::make_shared<std::string>();
  CLI::App* health_command = app.add_subcommand(
      "health", "grpc.health.v1 Check (exit 0 when SERVING, 1 otherwise)");
  health_command->add_option("--service", *service,
                             "Service to check (\"\" = the process, or e.g. "
                             "lockwarden.v1.LockService)");
  SetAction(health_command, env,
            [env, service] { return RunHealth(env, *service); });

  auto grace_gateway = std::make_shared<std::string>();
  CLI::App* grace_status =
      Group(app, "grace", "Grace periods of gateway identities")
          ->add_subcommand("status", "Grace status and reclaim ledger");
  grace_status->add_option("--gateway", *grace_gateway,
                           "Only this gateway identity (default: all)");
  SetAction(grace_status, env, [env, grace_gateway] {
    return RunGraceStatus(env, *grace_gateway);
  });

  CLI::App* graph = Group(app, "waiters", "Inspect waiters")
                        ->add_subcommand("graph", "Show the wait-for graph");
  SetAction(graph, env, [env] { return RunWaitForGraph(env); });
}

}  // namespace lockwarden::cli
