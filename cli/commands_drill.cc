// drill failover: the HA drill as one command against a live deployment.
//   1. snapshot locks, waiters, gateway and client state numbers (leader);
//   2. start a prober (LOCK+UNLOCK every --probe-interval on its own
//      connection) and let it settle;
//   3. trigger the failover: AdminService.StepDown, or --kill-command run by
//      /bin/sh with {leader_id} and {leader_address} substituted (also in
//      the environment as LOCKWARDEN_DRILL_LEADER_ID / _ADDRESS);
//   4. wait until a server reports itself LEADER under a higher fencing
//      token and a probe succeeded again (bounded by --max-wait);
//   5. snapshot again and compare (cli/drill.h says what counts as lost);
//   6. print the report; exit 0 when nothing was lost or changed, 1 when
//      something was, 2 when the drill could not run (no failover seen,
//      RPC errors, kill command failed).
//
// drill client-reboot: takes locks for a test client under its current NSM
// state (and a waiter, and a control client's lock), sends a stale SM_NOTIFY
// (nothing may change), takes a lock as the "rebooted" client under the new
// state, sends SM_NOTIFY with the new state through MonitorService.Notify,
// and checks that exactly the test client's older locks and waiter went
// away; then it cleans up. Exit codes as above.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "cli/commands.h"
#include "cli/drill.h"
#include "cli/parse.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"

namespace lockwarden::cli {
namespace {

namespace v1 = ::lockwarden::v1;

// How long the kill command may run before it is killed.
constexpr absl::Duration kKillCommandTimeout = absl::Seconds(60);
// Pause between two leadership polls.
constexpr absl::Duration kLeaderPollInterval = absl::Milliseconds(100);

struct FailoverFlags {
  std::string kill_command;
  std::string probe_interval = "50ms";
  std::string probe_timeout = "1s";
  std::string settle = "1s";
  std::string max_wait = "60s";
  std::string reason;
};

void Progress(CommandEnv* env, const std::string& line) {
  env->err() << "drill: " << line << "\n";
  env->err().flush();
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

std::string FormatSeconds(absl::Duration d) {
  return absl::StrCat(absl::StrFormat("%.2f", Seconds(d)), " s");
}

// Runs `command` with /bin/sh -c, bounded by kKillCommandTimeout.
absl::Status RunKillCommand(const std::string& command, const std::string& leader_id,
                            const std::string& leader_address) {
  const std::string expanded = absl::StrReplaceAll(
      command, {{"{leader_id}", leader_id}, {"{leader_address}", leader_address}});
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed for --kill-command");
  if (pid == 0) {
    setpgid(0, 0);
    setenv("LOCKWARDEN_DRILL_LEADER_ID", leader_id.c_str(), 1);
    setenv("LOCKWARDEN_DRILL_LEADER_ADDRESS", leader_address.c_str(), 1);
    execl("/bin/sh", "sh", "-c", expanded.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const absl::Time deadline = absl::Now() + kKillCommandTimeout;
  int wstatus = 0;
  while (true) {
    const pid_t done = waitpid(pid, &wstatus, WNOHANG);
    if (done == pid) break;
    if (absl::Now() > deadline) {
      kill(-pid, SIGKILL);
      waitpid(pid, &wstatus, 0);
      return absl::DeadlineExceededError(
          absl::StrCat("--kill-command did not finish within ",
                       absl::FormatDuration(kKillCommandTimeout), ": ", expanded));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--kill-command failed (", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1,
        "): ", expanded));
  }
  return absl::OkStatus();
}

// Polls every known address until one reports itself LEADER with a fencing
// token above `old_token`.
absl::StatusOr<v1::GetServerStatusResponse> WaitForNewLeader(CommandEnv* env,
                                                            uint64_t old_token,
                                                            absl::Time deadline,
                                                            std::string* address) {
  std::vector<std::string> addresses = env->connection_options().addresses;
  std::map<std::string, std::unique_ptr<Connection>> single;
  std::string last_error = "no server answered";
  while (absl::Now() < deadline) {
    for (size_t i = 0; i < addresses.size() && i < kChannelsMax; ++i) {
      const std::string addr = addresses[i];
      if (!single.count(addr)) {
        ConnectionOptions options = env->connection_options();
        options.addresses = {addr};
        options.rpc_timeout = absl::Seconds(1);
        absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Create(options);
        if (!c.ok()) return c.status();
        single[addr] = *std::move(c);
      }
      v1::GetServerStatusResponse st;
      absl::Status s = single[addr]->Call(
          "GetServerStatus",
          [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
            return v1::AdminService::NewStub(channel)->GetServerStatus(
                context, v1::GetServerStatusRequest(), &st);
          });
      if (!s.ok()) {
        last_error = std::string(s.message());
        continue;
      }
      // A standby redirects the call to the leader, so `st` may be the
      // leader's answer to a call sent to another address.
      if (st.role() == v1::SERVER_ROLE_LEADER && st.fencing_token() > old_token) {
        *address = st.leader_address().empty() ? addr : st.leader_address();
        return st;
      }
      // A standby names the leader: poll it too.
      const std::string& leader = st.leader_address();
      if (!leader.empty() &&
          std::find(addresses.begin(), addresses.end(), leader) == addresses.end()) {
        addresses.push_back(leader);
      }
    }
    absl::SleepFor(kLeaderPollInterval);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no server became leader under a fencing token above ", old_token,
                   " in time; last error: ", last_error));
}

// `leader_seen`: trigger to a server reporting itself the new leader (polled
// every 100 ms; a dead address costs up to 1 s per round, so an upper
// bound); `recovery`: trigger start to the first successful probe that
// started after the trigger finished.
int FailoverReport(CommandEnv* env, const StateSnapshot& before, const StateSnapshot& after,
                   const std::string& trigger, absl::Duration leader_seen,
                   absl::Duration recovery, const ProbeReport& probe,
                   const DrillComparison& cmp) {
  const bool passed = cmp.findings.empty();
  if (env->format() == OutputFormat::kJson) {
    nlohmann::json doc = {
        {"drill", "failover"},
        {"passed", passed},
        {"trigger", trigger},
        {"old_leader",
         {{"server_id", before.status.server_id()},
          {"address", before.status.leader_address()},
          {"fencing_token", before.status.fencing_token()}}},
        {"new_leader",
         {{"server_id", after.status.server_id()},
          {"address", after.status.leader_address()},
          {"fencing_token", after.status.fencing_token()}}},
        {"new_leader_seen_ms", absl::ToInt64Milliseconds(leader_seen)},
        {"recovery_ms", absl::ToInt64Milliseconds(recovery)},
        {"unavailability_ms", absl::ToInt64Milliseconds(probe.longest_gap)},
        {"probes", {{"total", probe.probes}, {"failed", probe.failed},
                    {"last_error", probe.last_error}}},
        {"locks", {{"before", cmp.locks_before}, {"after", cmp.locks_after}}},
        {"waiters", {{"before", cmp.waiters_before}, {"after", cmp.waiters_after},
                     {"granted_meanwhile", cmp.waiters_granted}}},
        {"gateways_checked", cmp.gateways_checked},
        {"clients_checked", cmp.clients_checked},
        {"findings", FindingsToJson(cmp.findings)}};
    env->PrintJson(doc);
  } else {
    size_t lost_locks = 0, lost_waiters = 0, state_changes = 0, graces = 0;
    for (const DrillFinding& f : cmp.findings) {
      lost_locks += f.kind == "lock_lost";
      lost_waiters += f.kind == "waiter_lost";
      state_changes += f.kind == "gateway_state_changed" || f.kind == "client_state_changed" ||
                       f.kind == "gateway_lost";
      graces += f.kind == "grace_started";
    }
    KeyValueList kv;
    kv.Add("result", passed ? "PASSED: nothing lost, no state number changed, no grace"
                            : "FAILED: see the findings below");
    kv.Add("trigger", trigger);
    kv.Add("old leader", absl::StrCat(before.status.server_id(), " ",
                                      before.status.leader_address(), " fencing token ",
                                      before.status.fencing_token()));
    kv.Add("new leader", absl::StrCat(after.status.server_id(), " ",
                                      after.status.leader_address(), " fencing token ",
                                      after.status.fencing_token()));
    kv.Add("recovery",
           absl::StrCat(FormatSeconds(recovery), " (trigger to first good probe after it)"));
    kv.Add("new leader seen",
           absl::StrCat(FormatSeconds(leader_seen), " (trigger to status poll)"));
    kv.Add("unavailability",
           absl::StrCat(FormatSeconds(probe.longest_gap), " (longest gap between successful "
                        "probes; ", probe.probes, " probes, ", probe.failed, " failed)"));
    kv.Add("locks", absl::StrCat(cmp.locks_before, " before, ", cmp.locks_after, " after, ",
                                 lost_locks, " lost"));
    kv.Add("waiters", absl::StrCat(cmp.waiters_before, " before, ", cmp.waiters_after,
                                   " after (", cmp.waiters_granted, " granted meanwhile), ",
                                   lost_waiters, " lost"));
    kv.Add("state numbers", absl::StrCat(cmp.gateways_checked, " gateways and ",
                                         cmp.clients_checked, " clients checked, ",
                                         state_changes, " changed"));
    kv.Add("grace started", graces == 0 ? std::string("none") : absl::StrCat(graces));
    env->out() << kv.Render();
    if (!passed) {
      Table t({"FINDING", "ITEM", "DETAIL"});
      for (const DrillFinding& f : cmp.findings) t.AddRow({f.kind, f.item, f.detail});
      env->out() << "\n" << t.Render();
    }
  }
  return passed ? kExitOk : kExitDenied;
}

int RunFailoverDrill(CommandEnv* env, const FailoverFlags& flags) {
  absl::StatusOr<absl::Duration> interval =
      ParseDurationFlag(flags.probe_interval, "--probe-interval");
  if (!interval.ok()) return env->Fail(interval.status());
  absl::StatusOr<absl::Duration> probe_timeout =
      ParseDurationFlag(flags.probe_timeout, "--probe-timeout");
  if (!probe_timeout.ok()) return env->Fail(probe_timeout.status());
  absl::StatusOr<absl::Duration> settle = ParseDurationFlag(flags.settle, "--settle");
  if (!settle.ok()) return env->Fail(settle.status());
  absl::StatusOr<absl::Duration> max_wait = ParseDurationFlag(flags.max_wait, "--max-wait");
  if (!max_wait.ok()) return env->Fail(max_wait.status());
  absl::StatusOr<Connection*> connection = env->connection();
  if (!connection.ok()) return env->Fail(connection.status());

  Progress(env, "taking the before snapshot");
  absl::StatusOr<StateSnapshot> before = TakeSnapshot(*connection);
  if (!before.ok()) return env->Fail(before.status());
  if (before->status.role() != v1::SERVER_ROLE_LEADER) {
    return env->Fail(absl::FailedPreconditionError(
        absl::StrCat("the server that answered (", before->answered_by,
                     ") is not the leader; cannot take a consistent snapshot")));
  }
  Progress(env, absl::StrCat(before->locks.size(), " locks, ", before->waiters.size(),
                             " waiters, ", before->gateways.size(), " gateway identities; leader ",
                             before->status.server_id(), " at ", before->status.leader_address(),
                             ", fencing token ", before->status.fencing_token()));

  ConnectionOptions probe_options = env->connection_options();
  probe_options.rpc_timeout = *probe_timeout;
  Prober prober(probe_options, *interval);
  if (absl::Status s = prober.Start(); !s.ok()) return env->Fail(s);
  absl::SleepFor(*settle);
  if (prober.Report().last_success == absl::InfinitePast()) {
    prober.Stop();
    return env->Fail(absl::UnavailableError(absl::StrCat(
        "the probe never succeeded before the failover: ", prober.Report().last_error)));
  }

  const absl::Time triggered = absl::Now();
  std::string trigger;
  absl::Status fired;
  if (!flags.kill_command.empty()) {
    trigger = absl::StrCat("kill command: ", flags.kill_command);
    Progress(env, absl::StrCat("running the kill command for leader ",
                               before->status.server_id()));
    fired = RunKillCommand(flags.kill_command, before->status.server_id(),
                           before->status.leader_address());
  } else {
    trigger = "AdminService.StepDown";
    Progress(env, absl::StrCat("asking leader ", before->status.server_id(), " to step down"));
    v1::StepDownRequest request;
    request.set_request_id(NewRequestId());
    request.set_reason(flags.reason.empty() ? DefaultReason("drill failover") : flags.reason);
    v1::StepDownResponse response;
    fired = (*connection)->Call(
        "StepDown",
        [&](grpc::ClientContext* context, const std::shared_ptr<grpc::Channel>& channel) {
          return v1::AdminService::NewStub(channel)->StepDown(context, request, &response);
        });
  }
  if (!fired.ok()) {
    prober.Stop();
    return env->Fail(fired);
  }
  // Probes that started before the trigger finished (a kill command may do
  // other things first; StepDown returns once it resigned) prove nothing
  // about the new leader.
  const absl::Time fired_at = absl::Now();
  Progress(env, "waiting for a new leader");
  std::string leader_address;
  absl::StatusOr<v1::GetServerStatusResponse> leader = WaitForNewLeader(
      env, before->status.fencing_token(), triggered + *max_wait, &leader_address);
  const absl::Duration leader_seen = absl::Now() - triggered;
  if (!leader.ok()) {
    prober.Stop();
    return env->Fail(leader.status());
  }
  Progress(env, absl::StrCat("new leader ", leader->server_id(), " at ", leader_address,
                             " after ", FormatSeconds(leader_seen), "; waiting for the probe"));
  while (!prober.SucceededAfter(fired_at) && absl::Now() < triggered + *max_wait) {
    absl::SleepFor(*interval);
  }
  prober.Stop();
  const ProbeReport probe = prober.Report();
  const absl::Duration recovery = prober.FirstSuccessAfter(fired_at) - triggered;
  if (!prober.SucceededAfter(fired_at)) {
    return env->Fail(absl::UnavailableError(absl::StrCat(
        "the probe did not succeed after the failover within --max-wait: ", probe.last_error)));
  }
  Progress(env, "taking the after snapshot");
  absl::StatusOr<StateSnapshot> after = TakeSnapshot(*connection);
  if (!after.ok()) return env->Fail(after.status());
  return FailoverReport(env, *before, *after, trigger, leader_seen, recovery, probe,
                        CompareSnapshots(*before, *after));
}

}  // namespace

// drill client-reboot lives in commands_drill_reboot.cc.
int RunClientRebootDrill(CommandEnv* env, const std::string& client);

void AddDrillCommands(CLI::App& app, CommandEnv* env) {
  CLI::App* drill = Group(app, "drill", "Rehearse failures against a live deployment");

  auto failover_flags = std::make_shared<FailoverFlags>();
  CLI::App* failover = drill->add_subcommand(
      "failover",
      "Fail the leader over (StepDown, or --kill-command) and check that no lock, waiter, "
      "state number or grace changed; measures unavailability with a probe. Exit 0 "
      "passed, 1 something lost or changed, 2 the drill could not run.");
  failover->add_option("--kill-command", failover_flags->kill_command,
                       "Shell command that kills the leader instead of StepDown; "
                       "{leader_id} and {leader_address} are substituted");
  failover->add_option("--probe-interval", failover_flags->probe_interval,
                       "Pause between probes (LOCK+UNLOCK)")
      ->capture_default_str();
  failover->add_option("--probe-timeout", failover_flags->probe_timeout,
                       "Deadline of each probe RPC")
      ->capture_default_str();
  failover->add_option("--settle", failover_flags->settle,
                       "How long the probe runs before the failover")
      ->capture_default_str();
  failover->add_option("--max-wait", failover_flags->max_wait,
                       "Longest wait for the new leader and the first good probe")
      ->capture_default_str();
  failover->add_option("--reason", failover_flags->reason, "StepDown reason (audit log)");
  SetAction(failover, env, [env, failover_flags] {
    return RunFailoverDrill(env, *failover_flags);
  });

  auto client = std::make_shared<std::string>("lockwardenctl-drill-client");
  CLI::App* reboot = drill->add_subcommand(
      "client-reboot",
      "Lock as a test client, send its SM_NOTIFY (stale, then newer) and check that "
      "exactly its older locks and waiter went away. Exit 0 passed, 1 wrong effect, 2 error.");
  reboot->add_option("--client", *client,
                     "Test client name; must hold nothing (the drill refuses otherwise)")
      ->capture_default_str();
  SetAction(reboot, env, [env, client] { return RunClientRebootDrill(env, *client); });
}

}  // namespace lockwarden::cli
