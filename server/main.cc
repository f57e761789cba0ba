// lockwarden-server: the durable NLM/NSM lock service.
//
//   lockwarden-server --listen=127.0.0.1:7420 --data-dir=/var/lib/lockwarden
//
// Every flag can also come from a config file (--config=FILE, TOML/INI:
// `data-dir = "/var/lib/lockwarden"`); flags on the command line win.
// SIGTERM/SIGINT shut down gracefully: health turns NOT_SERVING, in-flight
// requests finish and are committed, the store is closed.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/daemon_main.h"
#include "common/logging.h"
#include "server/service/ha_server.h"
#include "server/service/lock_server.h"
#include "server/service/tls.h"
#include "server/store/etcd_client.h"
#include "server/store/rocksdb_store.h"

namespace lockwarden {
namespace {

struct Flags {
  std::string listen = "127.0.0.1:7420";
  std::string data_dir = "/var/lib/lockwarden";
  std::string store = "rocksdb";
  std::string etcd_endpoints;
  size_t etcd_max_txn_ops = store::kEtcdMaxTxnOps;
  std::string advertise_address;
  int64_t lease_ttl_ms = 5000;
  int64_t probe_interval_ms = 100;
  int64_t probe_timeout_ms = 200;
  int probe_failures = 3;
  int64_t probe_min_unresponsive_ms = 1000;
  service::ProbeTlsOptions probe_tls;
  std::string probe_tls_server_name;
  std::string replication_metrics_listen;
  std::string server_id;
  std::string version = "dev";
  std::string log_level = "info";
  std::string log_format = "text";
  service::TlsOptions tls;
  std::string admin_token_file;
  service::LockServerOptions options;
};

void DefineFlags(CLI::App& app, Flags& f) {
  app.set_config("--config", "", "read flags from this TOML/INI file");
  app.add_option("--listen", f.listen, "gRPC listen address HOST:PORT (port 0 = ephemeral)")
      ->capture_default_str();
  app.add_option("--data-dir", f.data_dir, "RocksDB data directory (created if missing)")
      ->capture_default_str();
  app.add_option("--store", f.store,
                 "state store backend: rocksdb (single node) or etcd (replicated)")
      ->check(CLI::IsMember({"rocksdb", "etcd"}))
      ->capture_default_str();
  app.add_option("--etcd-endpoints", f.etcd_endpoints,
                 "with --store=etcd: http://HOST:PORT[,...] of the etcd cluster");
  app.add_option("--etcd-max-txn-ops", f.etcd_max_txn_ops,
                 "with --store=etcd: operations per commit Txn; raise it only "
                 "together with etcd's own --max-txn-ops (etcd refuses larger "
                 "Txns); bigger Txns carry more requests per commit")
      ->check(CLI::Range(size_t{1}, store::kEtcdMaxTxnOpsLimit))
      ->capture_default_str();
  app.add_option("--advertise-address", f.advertise_address,
                 "with --store=etcd: HOST:PORT gateways and the CLI use to reach this "
                 "server when it leads (default: --listen)");
  app.add_option("--lease-ttl-ms", f.lease_ttl_ms,
                 "with --store=etcd: leader lease TTL in whole seconds (ms); a dead leader is replaced "
                 "after at most this long")
      ->capture_default_str();
  app.add_option("--probe-interval-ms", f.probe_interval_ms,
                 "with --store=etcd: standbys probe the leader's health this often "
                 "(0 = no probes: only the lease TTL replaces a dead leader)")
      ->capture_default_str();
  app.add_option("--probe-timeout-ms", f.probe_timeout_ms,
                 "with --store=etcd: deadline of one leader health probe")
      ->capture_default_str();
  app.add_option("--probe-failures", f.probe_failures,
                 "with --store=etcd: consecutive failed probes before a standby deposes "
                 "the leader (fencing keeps a wrong suspicion safe)")
      ->capture_default_str();
  app.add_option("--probe-min-unresponsive-ms", f.probe_min_unresponsive_ms,
                 "with --store=etcd: failed probes that include a timeout "
                 "depose the leader only once they span this long "
                 "(refused connections do not wait)")
      ->capture_default_str();
  app.add_option("--probe-tls-ca", f.probe_tls.ca_file,
                 "with --store=etcd and TLS: PEM CA the leader's certificate "
                 "must chain to for the standbys' health probes "
                 "(default: --tls-ca, else the system roots)");
  app.add_option("--probe-tls-cert", f.probe_tls.cert_file,
                 "with --store=etcd and TLS: client certificate the probes "
                 "present (default: --tls-cert with --tls-require-client-cert)");
  app.add_option("--probe-tls-key", f.probe_tls.key_file,
                 "PEM private key of --probe-tls-cert");
  app.add_option("--probe-tls-server-name", f.probe_tls_server_name,
                 "with --store=etcd and TLS: name the leader's certificate "
                 "carries when it is not the host of its --advertise-address");
  app.add_option("--replication-metrics-listen", f.replication_metrics_listen,
                 "with --store=etcd: Prometheus HTTP address HOST:PORT of the "
                 "replication series (probes, warm copy), on every role; "
                 "empty = off");
  app.add_option("--server-id", f.server_id, "this server's id (default: host name)");
  app.add_option("--grace-period-ms", f.options.core.grace_period_ms,
                 "grace period after a real loss of lock state (SIMU_CRASH, reset)")
      ->capture_default_str();
  app.add_option("--grant-timeout-ms", f.options.core.grant_timeout_ms,
                 "a granted blocked lock its client does not confirm within this is "
                 "released and passed on")
      ->capture_default_str();
  app.add_option("--shutdown-timeout-ms", f.options.shutdown_timeout_ms,
                 "how long in-flight requests may take on shutdown")
      ->capture_default_str();
  app.add_option("--max-locks", f.options.core.locks_max, "limit on held locks")
      ->capture_default_str();
  app.add_option("--max-waiters", f.options.core.waiters_max, "limit on queued blocked locks")
      ->capture_default_str();
  app.add_option("--max-waiters-per-file", f.options.core.waiters_per_file_max,
                 "limit on waiters per file")
      ->capture_default_str();
  app.add_option("--max-monitors", f.options.core.monitors_max, "limit on NSM monitors")
      ->capture_default_str();
  app.add_option("--max-queued-commits", f.options.pipeline.max_queued_deltas,
                 "limit on mutations waiting for a durable commit")
      ->capture_default_str();
  AddLogFlags(app, &f.log_level, &f.log_format);
  app.add_option("--tls-cert", f.tls.cert_file, "PEM certificate chain: serve TLS");
  app.add_option("--tls-key", f.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--tls-ca", f.tls.ca_file,
                 "PEM CA bundle: verify client certificates (mTLS)");
  app.add_flag("--tls-require-client-cert", f.tls.require_client_cert,
               "refuse clients without a certificate signed by --tls-ca");
  app.add_option("--metrics-listen", f.options.metrics_listen,
                 "Prometheus /metrics HTTP address HOST:PORT (empty = off)");
  app.add_option("--admin-token-file", f.admin_token_file,
                 "file whose first line is the bearer token for mutating admin calls");
  app.add_option("--version-string", f.version, "version reported by GetServerStatus")
      ->capture_default_str();
}

int Fail(const absl::Status& status) {
  return FailStartup("lockwarden-server", status);
}

// --store=etcd: campaign for leadership; serve as leader or redirect as standby.
int RunReplicated(Flags& f, const sigset_t& signals, const Clock& clock) {
  auto endpoints = store::ParseEtcdEndpoints(f.etcd_endpoints);
  if (!endpoints.ok()) return Fail(endpoints.status());
  service::HaServerOptions ha;
  ha.server = f.options;
  ha.etcd_endpoints = *endpoints;
  ha.etcd_max_txn_ops = f.etcd_max_txn_ops;
  ha.advertise_address = f.advertise_address;
  ha.lease_ttl = absl::Milliseconds(f.lease_ttl_ms);
  ha.fast_failover = f.probe_interval_ms > 0;
  ha.probe_interval = absl::Milliseconds(f.probe_interval_ms);
  ha.probe_timeout = absl::Milliseconds(f.probe_timeout_ms);
  ha.probe_failures = f.probe_failures;
  ha.probe_min_unresponsive = absl::Milliseconds(f.probe_min_unresponsive_ms);
  ha.replication_metrics_listen = f.replication_metrics_listen;
  ha.listener_tls = f.tls.enabled();
  if (ha.listener_tls) {
    // The probes must pass the same TLS the leader's listener demands.
    service::ProbeTlsOptions probe = f.probe_tls;
    if (probe.ca_file.empty()) probe.ca_file = f.tls.ca_file;
    if (probe.cert_file.empty() && probe.key_file.empty() &&
        f.tls.require_client_cert) {
      probe.cert_file = f.tls.cert_file;
      probe.key_file = f.tls.key_file;
    }
    auto credentials = service::MakeProbeCredentials(probe);
    if (!credentials.ok()) return Fail(credentials.status());
    ha.probe_credentials = *credentials;
    ha.probe_tls_server_name = f.probe_tls_server_name;
  }
  if (ha.server.server_id.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    ha.server.server_id = absl::StrCat(host, "-", getpid());
  }
  auto server = service::HaLockServer::Start(ha, &clock);
  if (!server.ok()) return Fail(server.status());
  std::printf("lockwarden-server listening on %s (etcd, server id %s)\n", f.listen.c_str(),
              ha.server.server_id.c_str());
  std::fflush(stdout);
  WaitForShutdownSignal(signals);
  (*server)->Shutdown();
  return 0;
}

int Run(Flags& f) {
  // Before any thread starts: they inherit the blocked shutdown signals.
  const sigset_t signals = StartDaemon("server", f.log_level, f.log_format);

  f.options.listen = f.listen;
  f.options.server_id = f.server_id;
  f.options.version = f.version;
  // TLS and admin authorisation (docs/operations.md).
  auto credentials = service::MakeServerCredentials(f.tls);
  if (!credentials.ok()) return Fail(credentials.status());
  f.options.credentials = *credentials;
  f.options.admin_auth.tls_enabled = f.tls.enabled();
  if (!f.admin_token_file.empty()) {
    auto token = service::ReadAdminTokenFile(f.admin_token_file);
    if (!token.ok()) return Fail(token.status());
    f.options.admin_auth.bearer_token = *token;
  }
  RealClock clock;
  if (f.store == "etcd") return RunReplicated(f, signals, clock);

  auto store = store::RocksDbStore::Open(f.data_dir);
  if (!store.ok()) return Fail(store.status());
  auto server = service::LockServer::Start(f.options, *std::move(store), &clock);
  if (!server.ok()) return Fail(server.status());
  // Scripts wait for this line to learn the port (useful with port 0).
  std::printf("lockwarden-server listening on port %d\n", (*server)->port());
  std::fflush(stdout);

  WaitForShutdownSignal(signals);
  (*server)->Shutdown();
  server->reset();
  return 0;
}

}  // namespace
}  // namespace lockwarden

int main(int argc, char** argv) {
  // Debian's abseil enables the mutex deadlock detector, which costs ~1% of
  // the server's CPU on every lock; thread-safety annotations and tests
  // cover lock ordering instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"lockwarden-server: the durable NLM/NSM lock service"};
  lockwarden::Flags flags;
  lockwarden::DefineFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  return lockwarden::Run(flags);
}
