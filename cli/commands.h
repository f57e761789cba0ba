// The pieces lockwardenctl's subcommands share: the global flags, the output
// streams, the lazily created Connection, exit codes, and the registration
// functions of each command family (commands_lock.cc, commands_admin.cc,
// commands_repair.cc).
//
// How a subcommand runs: registration adds a CLI11 subcommand whose callback
// only stores an Action in the CommandEnv; RunLockwardenctl (app.cc) runs
// that action after parsing succeeded, so no RPC is ever issued from inside
// CLI11 and every error path ends in one place.
//
// Thread safety: not thread-safe; the CLI has one thread.
#ifndef LOCKWARDEN_CLI_COMMANDS_H_
#define LOCKWARDEN_CLI_COMMANDS_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/connection.h"
#include "cli/format.h"
#include "nlohmann/json.hpp"

namespace lockwarden::cli {

// Process exit codes (also documented in `lockwardenctl --help`).
enum ExitCode : int {
  // The operation succeeded (lock granted, listing printed, SERVING).
  kExitOk = 0,
  // The server answered but said no: a lock or test denied (DENIED,
  // BLOCKED past --wait-timeout, DEADLOCK, GRACE_PERIOD, NO_LOCKS), or a
  // health check not SERVING.
  kExitDenied = 1,
  // Usage error, connection or RPC error (message on stderr).
  kExitError = 2,
};

// The gateway identity lock operations use unless --gateway-id says
// otherwise: one no real gateway serves, so `lock --wait` never competes with
// a gateway for grant events.
inline constexpr char kDefaultGatewayId[] = "lockwardenctl";

// Global flags and shared state of one invocation.
class CommandEnv {
 public:
  CommandEnv(std::ostream& out, std::ostream& err) : out_(out), err_(err) {}

  // Global flag values, bound to CLI11 options by RunLockwardenctl.
  std::string server_flag;
  std::string timeout_flag = "5s";
  std::string output_flag = "table";
  std::string gateway_id = kDefaultGatewayId;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string bearer_token;
  // The --gateway-id option, to tell "given" from "defaulted" for admin
  // commands that need an explicit gateway identity.
  CLI::Option* gateway_id_option = nullptr;

  // Checks the global flags (after parsing); usage errors are
  // InvalidArgument.
  absl::Status Validate();

  // The connection, created on first use from the validated flags.
  absl::StatusOr<Connection*> connection();
  // The options connection() is built from (valid after Validate()), for
  // commands that need a second connection (the drill's prober).
  ConnectionOptions connection_options() const;

  OutputFormat format() const { return format_; }
  absl::Duration rpc_timeout() const { return rpc_timeout_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

  // Prints "lockwardenctl: <message>" on stderr and returns kExitError.
  int Fail(const absl::Status& status);

  // Prints the single JSON document of this invocation (pretty, 2 spaces).
  void PrintJson(const nlohmann::json& document);

  // The explicit --gateway-id, or InvalidArgument naming `command` when the
  // flag was not given (admin commands never act on the default identity
  // by accident).
  absl::StatusOr<std::string> ExplicitGatewayId(absl::string_view command);

  // The action the chosen subcommand stored; run after parsing.
  std::function<int()> action;

 private:
  std::ostream& out_;
  std::ostream& err_;
  OutputFormat format_ = OutputFormat::kTable;
  absl::Duration rpc_timeout_ = absl::Seconds(5);
  std::vector<std::string> addresses_;
  std::unique_ptr<Connection> connection_;
};

// Makes `command`'s callback store `action` as env->action.
void SetAction(CLI::App* command, CommandEnv* env, std::function<int()> action);

// lock, unlock, test, cancel.
void AddLockCommands(CLI::App& app, CommandEnv* env);
// locks list, waiters list/graph, shares/clients/monitors/gateways/events
// list, grace status, status, health.
void AddInspectCommands(CLI::App& app, CommandEnv* env);
// status, health, grace status, waiters graph.
void AddStatusCommands(CLI::App& app, CommandEnv* env);
// locks release, client reboot, gateway reset/drain, grace end, step-down,
// and snapshot export/import (AddSnapshotCommands).
void AddRepairCommands(CLI::App& app, CommandEnv* env);
// snapshot export, snapshot import.
void AddSnapshotCommands(CLI::App& app, CommandEnv* env);
// drill failover, drill client-reboot (commands_drill.cc).
void AddDrillCommands(CLI::App& app, CommandEnv* env);

// Finds the subcommand `name` of `app`, adding it (with `description`) if it
// does not exist yet, so two files can add leaves under "locks".
CLI::App* Group(CLI::App& app, const std::string& name,
                const std::string& description);

// Prints a mutation's answer: JSON {"operation", "server", "request_id",
// ...response fields} or key/value lines. Returns kExitOk.
int PrintMutation(CommandEnv* env, Connection* connection,
                  absl::string_view operation, const std::string& request_id,
                  const google::protobuf::Message& response);

// The --reason used when none is given: "lockwardenctl <command> by $USER".
std::string DefaultReason(absl::string_view command);

// Runs the whole CLI on `args` (args[0] is the program name) and returns the
// exit code. Output goes to `out`, diagnostics to `err`.
int RunLockwardenctl(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err);

}  // namespace lockwarden::cli

#endif  // LOCKWARDEN_CLI_COMMANDS_H_
