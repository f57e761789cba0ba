// RunLockwardenctl: global flags, subcommand registration, parsing, and the
// single place that turns outcomes into exit codes.
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/commands.h"
#include "cli/parse.h"

namespace lockwarden::cli {
namespace {

constexpr char kDefaultServer[] = "127.0.0.1:7420";

constexpr char kFooter[] =
    "Exit codes: 0 success; 1 the server said no (lock or test denied, "
    "blocked past --wait-timeout, deadlock, grace, no locks; health not "
    "SERVING); 2 usage, connection or RPC error.\n"
    "Mutations carry a fresh request id ctl-<host>-<pid>-<random>; it is "
    "reused when the call is retried at another server.";

void AddGlobalFlags(CLI::App& app, CommandEnv* env) {
  app.add_option("--server", env->server_flag,
                 "HOST:PORT[,HOST:PORT...] tried in order; a standby's "
                 "redirect to the leader is followed (default 127.0.0.1:7420)")
      ->envname("LOCKWARDEN_SERVER");
  app.add_option("--timeout", env->timeout_flag,
                 "Deadline of each RPC, e.g. 5s, 500ms")
      ->capture_default_str();
  app.add_option("--output,-o", env->output_flag, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  env->gateway_id_option =
      app.add_option("--gateway-id", env->gateway_id,
                     "Gateway identity for lock operations; the target of "
                     "gateway/grace admin commands")
          ->capture_default_str();
  app.add_option("--tls-ca", env->tls_ca_file,
                 "PEM CA bundle verifying the server (enables TLS)");
  app.add_option("--tls-cert", env->tls_cert_file,
                 "PEM client certificate chain (mTLS; with --tls-key)");
  app.add_option("--tls-key", env->tls_key_file,
                 "PEM client private key (mTLS; with --tls-cert)");
  app.add_option("--token", env->bearer_token,
                 "Bearer token sent as 'authorization: Bearer <token>'")
      ->envname("LOCKWARDEN_TOKEN");
}

}  // namespace

absl::Status CommandEnv::Validate() {
  absl::StatusOr<std::vector<std::string>> addresses = ParseServerList(
      {server_flag.empty() ? std::string(kDefaultServer) : server_flag});
  if (!addresses.ok()) return addresses.status();
  addresses_ = *std::move(addresses);
  absl::StatusOr<absl::Duration> timeout =
      ParseDurationFlag(timeout_flag, "--timeout");
  if (!timeout.ok()) return timeout.status();
  rpc_timeout_ = *timeout;
  format_ = output_flag == "json" ? OutputFormat::kJson : OutputFormat::kTable;
  return absl::OkStatus();
}

ConnectionOptions CommandEnv::connection_options() const {
  ConnectionOptions options;
  options.addresses = addresses_;
  options.rpc_timeout = rpc_timeout_;
  options.tls_ca_file = tls_ca_file;
  options.tls_cert_file = tls_cert_file;
  options.tls_key_file = tls_key_file;
  options.bearer_token = bearer_token;
  return options;
}

absl::StatusOr<Connection*> CommandEnv::connection() {
  if (connection_ == nullptr) {
    absl::StatusOr<std::unique_ptr<Connection>> connection =
        Connection::Create(connection_options());
    if (!connection.ok()) return connection.status();
    connection_ = *std::move(connection);
  }
  return connection_.get();
}

int CommandEnv::Fail(const absl::Status& status) {
  err_ << "lockwardenctl: " << status.message() << "\n";
  return kExitError;
}

void CommandEnv::PrintJson(const nlohmann::json& document) {
  out_ << document.dump(2) << "\n";
}

absl::StatusOr<std::string> CommandEnv::ExplicitGatewayId(
    absl::string_view command) {
  if (gateway_id_option == nullptr || gateway_id_option->count() == 0 ||
      gateway_id.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(command, ": --gateway-id is required"));
  }
  return gateway_id;
}

void SetAction(CLI::App* command, CommandEnv* env,
               std::function<int()> action) {
  command->callback([env, action = std::move(action)] { env->action = action; });
}

CLI::App* Group(CLI::App& app, const std::string& name,
                const std::string& description) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->get_name() == name) return sub;
  }
  CLI::App* group = app.add_subcommand(name, description);
  group->require_subcommand(1);
  return group;
}

int RunLockwardenctl(const std::vector<std::string>& args, std::ostream& out,
                     std::ostream& err) {
  CommandEnv env(out, err);
  CLI::App app("lockwardenctl: operate a lockwarden lock service",
               "lockwardenctl");
  app.footer(kFooter);
  app.require_subcommand(1);
  // Global flags may also follow the subcommand: `lockwardenctl locks list
  // --server=...`.
  app.fallthrough();
  AddGlobalFlags(app, &env);
  AddLockCommands(app, &env);
  AddInspectCommands(app, &env);
  AddStatusCommands(app, &env);
  AddRepairCommands(app, &env);
  AddDrillCommands(app, &env);

  std::vector<std::string> storage = args;
  if (storage.empty()) storage.push_back("lockwardenctl");
  std::vector<char*> argv;
  for (std::string& arg : storage) argv.push_back(arg.data());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error, out, err);
    // --help and friends exit 0; every other parse error is a usage error.
    return code == 0 ? kExitOk : kExitError;
  }
  if (absl::Status status = env.Validate(); !status.ok()) {
    return env.Fail(status);
  }
  if (!env.action) {
    err << "lockwardenctl: no command given; see --help\n";
    return kExitError;
  }
  return env.action();
}

}  // namespace lockwarden::cli
