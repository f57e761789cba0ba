// lockwarden-gateway: the ONC-RPC edge (NLM v1/3/4, NSM v1, portmapper) in
// front of lockwarden-server. It keeps no lock state: every request becomes
// an asynchronous gRPC call, every callback comes from the server's streams.
//
//   lockwarden-gateway --name=nfs.example --server=10.0.0.5:7420
//       [--bind=0.0.0.0] [--nlm-port=32803] [--nsm-port=662]
//       [--portmap-port=111 | --portmap-port=0 --register-rpcbind]
//
// Every flag can also come from a config file (--config=FILE, TOML/INI:
// `name = "nfs.example"`); flags on the command line win. Ports may be 0
// (ephemeral, for tests): the bound ones are printed in the ready line
//   lockwarden-gateway ready nlm=<port> nsm=<port> portmap=<port>
// (portmap=0 when the embedded portmapper is off), followed by
// ` metrics=<port>` when --metrics-listen is set.
//
// --metrics-listen=HOST:PORT serves Prometheus metrics at /metrics
// (gateway/metrics/gateway_metrics.h lists the series).
//
// SIGTERM/SIGINT shut down gracefully: unregister from the host's rpcbind
// (no new clients find us), stop reading new calls and let the calls in
// flight answer, replies flushed (bounded by --shutdown-timeout-ms), close
// the transports, stop the grant and notification streams and the I/O
// threads.
#include <grpcpp/support/client_interceptor.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/daemon_main.h"
#include "common/logging.h"
#include "gateway/client/server_client.h"
#include "gateway/health/gateway_health.h"
#include "gateway/metrics/gateway_metrics.h"
#include "gateway/nlm/grant_delivery.h"
#include "gateway/nlm/nlm_callback_client.h"
#include "gateway/nlm/nlm_service.h"
#include "gateway/nsm/client_address_book.h"
#include "gateway/nsm/nsm_service.h"
#include "gateway/portmap/portmapper.h"
#include "gateway/portmap/rpcbind_registrar.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/duplicate_request_cache.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"
#include "gateway/server_credentials.h"
#include "gateway/xdr/nlm_prot.h"

namespace lockwarden::gateway {
namespace {

constexpr uint32_t kNsmProgram = 100024;
constexpr uint32_t kNsmVersion = 1;

struct Flags {
  std::string name;
  std::string servers = "127.0.0.1:7420";
  std::string bind = "0.0.0.0";
  int nlm_port = 32803;
  int nsm_port = 662;
  int portmap_port = 111;
  bool register_rpcbind = false;
  std::string advertise_address;
  int64_t failover_wait_ms = 5000;
  int64_t rpc_timeout_ms = 2000;
  int drc_entries = 8192;
  int io_threads = 1;  // reads only: replies go out from gRPC threads
  std::string granted_callback = "msg";
  std::string notify_source_check = "strict";
  bool allow_remote_mon = false;
  int client_rpcbind_port = 111;
  std::string instance_name;
  int64_t shutdown_timeout_ms = 3000;
  int64_t grant_timeout_ms = 60000;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string metrics_listen;
  std::string health_listen;
  ServerTlsOptions tls;
  bool privileged_source_port = true;
};

void DefineFlags(CLI::App& app, Flags& f) {
  app.set_config("--config", "", "read flags from this TOML/INI file");
  app.add_option("--name", f.name,
                 "gateway identity: the host name NFS clients mount")
      ->required();
  app.add_option("--server", f.servers,
                 "lockwarden-server addresses HOST:PORT[,HOST:PORT...]")
      ->capture_default_str();
  app.add_option("--bind", f.bind,
                 "address to serve NLM/NSM/portmap on (0.0.0.0, ::, ...)")
      ->capture_default_str();
  app.add_option("--nlm-port", f.nlm_port, "NLM port (0 = ephemeral)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--nsm-port", f.nsm_port, "NSM (statd) port (0 = ephemeral)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--portmap-port", f.portmap_port,
                 "embedded portmapper port; 0 = no embedded portmapper")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_flag("--register-rpcbind", f.register_rpcbind,
               "register NLM 1/3/4 and NSM 1 (udp, tcp) with the host's "
               "rpcbind; unregister on shutdown");
  app.add_option("--advertise-address", f.advertise_address,
                 "IPv4 address the embedded portmapper puts in universal "
                 "addresses (default: the address the query arrived on)");
  app.add_option("--failover-wait-ms", f.failover_wait_ms,
                 "how long a request waits for an unreachable server before "
                 "the client is answered DENIED_NOLOCKS")
      ->check(CLI::Range(int64_t{0}, int64_t{600000}))
      ->capture_default_str();
  app.add_option("--rpc-timeout-ms", f.rpc_timeout_ms,
                 "deadline of one gRPC attempt to the server")
      ->check(CLI::Range(int64_t{1}, int64_t{600000}))
      ->capture_default_str();
  app.add_option("--drc-entries", f.drc_entries,
                 "duplicate request cache size (entries)")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--io-threads", f.io_threads, "RPC I/O threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--granted-callback", f.granted_callback,
                 "how blocked locks are granted: msg (GRANTED_MSG, like Linux "
                 "lockd) or sync (GRANTED)")
      ->check(CLI::IsMember({"msg", "sync"}))
      ->capture_default_str();
  app.add_option("--notify-source-check", f.notify_source_check,
                 "SM_NOTIFY accepted from: strict (the client's address) or "
                 "trust-name (anyone)")
      ->check(CLI::IsMember({"strict", "trust-name"}))
      ->capture_default_str();
  app.add_flag("--allow-remote-mon", f.allow_remote_mon,
               "accept SM_MON/UNMON/UNMON_ALL/SIMU_CRASH from non-loopback "
               "callers");
  app.add_option("--client-rpcbind-port", f.client_rpcbind_port,
                 "port of the clients' rpcbind for callbacks (tests)")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--grant-timeout-ms", f.grant_timeout_ms,
                 "the server's --grant-timeout-ms: how long a GRANTED callback "
                 "is retried when the grant event names no deadline")
      ->check(CLI::Range(int64_t{1000}, int64_t{3600000}))
      ->capture_default_str();
  app.add_option("--instance-name", f.instance_name,
                 "this process in admin listings (default: host name + pid)");
  app.add_option("--shutdown-timeout-ms", f.shutdown_timeout_ms,
                 "how long calls in flight may take on shutdown")
      ->check(CLI::Range(int64_t{0}, int64_t{600000}))
      ->capture_default_str();
  app.add_option("--privileged-source-port", f.privileged_source_port,
                 "send GRANTED, *_RES, SM_NOTIFY and statd callbacks from a "
                 "port below 1024 (a kernel lockd ignores others; needs root "
                 "or CAP_NET_BIND_SERVICE, else falls back with a warning)")
      ->capture_default_str();
  app.add_option("--tls-ca", f.tls.ca_file,
                 "PEM CA bundle: talk TLS to the server, whose certificate "
                 "must chain to it");
  app.add_option("--tls-cert", f.tls.cert_file,
                 "PEM certificate chain presented to the server (mutual "
                 "TLS); with --tls-key");
  app.add_option("--tls-key", f.tls.key_file, "PEM private key of --tls-cert");
  app.add_option("--metrics-listen", f.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics "
                 "(port 0 = ephemeral; empty = off)");
  app.add_option("--health-listen", f.health_listen,
                 "serve grpc.health.v1 at HOST:PORT for readiness: SERVING "
                 "while the leader answers and --name is not drained "
                 "(empty = off)");
  AddLogFlags(app, &f.log_level, &f.log_format);
}

int Fail(const absl::Status& status) {
  return FailStartup("lockwarden-gateway", status);
}

std::string DefaultInstanceName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat(host, "/", getpid());
}

bool IsIpv6Bind(const std::string& bind) {
  return bind.find(':') != std::string::npos;
}

// Registrations with the host's rpcbind: NLM 1/3/4 and NSM 1 on udp and tcp
// (and udp6/tcp6 when bound to IPv6).
absl::Status RegisterWithRpcbind(RpcbindRegistrar& registrar,
                                 uint16_t nlm_port, uint16_t nsm_port,
                                 bool ipv6) {
  std::vector<std::string> netids = {"udp", "tcp"};
  if (ipv6) {
    netids.push_back("udp6");
    netids.push_back("tcp6");
  }
  for (const std::string& netid : netids) {
    for (uint32_t vers : {NLM_VERS, NLM_VERSX, NLM4_VERS}) {
      absl::Status s = registrar.Register(NLM_PROG, vers, netid, nlm_port);
      if (!s.ok()) return s;
    }
    absl::Status s = registrar.Register(kNsmProgram, kNsmVersion, netid,
                                        nsm_port);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Graceful stop of the RPC side, all before `deadline`: every transport
// stops reading new calls at once and lets the calls in flight answer (the
// replies are flushed, then the sockets close); then NLM work that outlives
// its RPC (a *_MSG request whose *_RES call is not sent yet) may finish.
// True if nothing was abandoned. `servers` may contain nullptr.
bool DrainCalls(absl::Time deadline, std::vector<RpcServer*> servers,
                const nlm::NlmService& nlm) {
  std::atomic<size_t> abandoned{0};
  std::vector<std::thread> drains;
  for (RpcServer* server : servers) {
    if (server == nullptr) continue;
    drains.emplace_back([server, deadline, &abandoned] {
      abandoned += server->Drain(
          std::max(deadline - absl::Now(), absl::ZeroDuration()));
    });
  }
  for (std::thread& t : drains) t.join();
  const bool idle =
      nlm.WaitIdle(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  if (abandoned.load() > 0) {
    LogEvent(LogLevel::kWarn, "shutdown_calls_abandoned",
             {{"rpc_calls", abandoned.load()}});
  }
  return idle && abandoned.load() == 0;
}

int Run(Flags& f) {
  // Before any thread starts: they inherit the blocked shutdown signals.
  const sigset_t signals = StartDaemon("gateway", f.log_level, f.log_format);

  if (f.name.empty()) return Fail(absl::InvalidArgumentError("--name is empty"));
  absl::StatusOr<std::vector<std::string>> servers = ParseServerList(f.servers);
  if (!servers.ok()) return Fail(servers.status());
  if (f.instance_name.empty()) f.instance_name = DefaultInstanceName();
  const bool ipv6 = IsIpv6Bind(f.bind);

  // Metrics first: the dispatchers and the RPC client report to it, and
  // gRPC requires the (process-wide) interceptor before any channel exists.
  std::unique_ptr<metrics::GatewayMetrics> gateway_metrics;
  if (!f.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<metrics::GatewayMetrics>> m =
        metrics::GatewayMetrics::Start(f.metrics_listen);
    if (!m.ok()) return Fail(m.status());
    gateway_metrics = *std::move(m);
    // A global interceptor because ServerClient builds its channels itself;
    // the factory is never freed (gRPC keeps using it until exit) and keeps
    // what it records into alive on its own.
    grpc::experimental::RegisterGlobalClientInterceptorFactory(
        gateway_metrics->NewServerCallInterceptorFactory().release());
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeServerChannelCredentials(f.tls);
  if (!credentials.ok()) return Fail(credentials.status());

  ServerClientOptions sco;
  sco.servers = *servers;
  sco.credentials = *std::move(credentials);
  sco.failover_wait_ms = f.failover_wait_ms;
  sco.rpc_timeout_ms = f.rpc_timeout_ms;
  ServerClient server(sco);

  IoThreadPool pool(static_cast<size_t>(f.io_threads));
  RpcClientOptions rpc_options;
  rpc_options.observer = gateway_metrics.get();
  rpc_options.privileged_source_port = f.privileged_source_port;
  RpcClient rpc(pool.context(), rpc_options);
  DrcOptions drc_options;
  drc_options.max_entries = static_cast<size_t>(f.drc_entries);
  DuplicateRequestCache drc(drc_options);
  Dispatcher nlm_dispatcher(
      DispatcherOptions{&drc, nullptr, gateway_metrics.get()});
  Dispatcher nsm_dispatcher(
      DispatcherOptions{&drc, nullptr, gateway_metrics.get()});
  Dispatcher portmap_dispatcher(
      DispatcherOptions{nullptr, nullptr, gateway_metrics.get()});

  nsm::ClientAddressBook addresses;
  nlm::NlmCallbackClientOptions cco;
  cco.rpcbind_port = static_cast<uint16_t>(f.client_rpcbind_port);
  cco.machine_name = f.name;
  nlm::NlmCallbackClient callbacks(&rpc, cco);

  nlm::GrantDeliveryOptions gdo;
  gdo.gateway_name = f.name;
  gdo.instance_name = f.instance_name;
  gdo.default_grant_timeout = absl::Milliseconds(f.grant_timeout_ms);
  nlm::GrantDelivery grants(gdo, &server, &callbacks, pool.context());

  nlm::NlmServiceOptions nlo;
  nlo.gateway_name = f.name;
  nlo.use_granted_msg = f.granted_callback == "msg";
  nlo.record_client_address = [&addresses](const std::string& name,
                                           const std::string& address) {
    addresses.Record(name, address);
  };
  nlm::NlmService nlm(nlo, &server, &callbacks, &grants);
  if (absl::Status s = nlm.Register(nlm_dispatcher); !s.ok()) return Fail(s);

  nsm::NsmOptions nso;
  nso.gateway_id = f.name;
  nso.notify_source_check =
      f.notify_source_check == "strict"
          ? nsm::NsmOptions::NotifySourceCheck::kStrict
          : nsm::NsmOptions::NotifySourceCheck::kTrustName;
  nso.allow_remote_mon = f.allow_remote_mon;
  nso.rpcbind_port = static_cast<uint16_t>(f.client_rpcbind_port);
  nso.instance_name = f.instance_name;
  nsm::NsmService nsm(nso, &server, &rpc, &addresses);
  if (absl::Status s = nsm.Register(nsm_dispatcher); !s.ok()) return Fail(s);

  RpcServer nlm_server(
      pool.context(), nlm_dispatcher,
      RpcServerOptions{.bind_address = f.bind,
                       .port = static_cast<uint16_t>(f.nlm_port)});
  if (absl::Status s = nlm_server.Start(); !s.ok()) return Fail(s);
  RpcServer nsm_server(
      pool.context(), nsm_dispatcher,
      RpcServerOptions{.bind_address = f.bind,
                       .port = static_cast<uint16_t>(f.nsm_port)});
  if (absl::Status s = nsm_server.Start(); !s.ok()) return Fail(s);

  PortmapperOptions pmo;
  pmo.advertised_ipv4 = f.advertise_address;
  Portmapper portmapper(pmo);
  std::unique_ptr<RpcServer> portmap_server;
  if (f.portmap_port != 0) {
    if (absl::Status s = portmapper.RegisterProcedures(portmap_dispatcher);
        !s.ok()) {
      return Fail(s);
    }
    portmap_server = std::make_unique<RpcServer>(
        pool.context(), portmap_dispatcher,
        RpcServerOptions{.bind_address = f.bind,
                         .port = static_cast<uint16_t>(f.portmap_port)});
    if (absl::Status s = portmap_server->Start(); !s.ok()) return Fail(s);
    for (uint32_t vers : {NLM_VERS, NLM_VERSX, NLM4_VERS}) {
      (void)portmapper.AddService(NLM_PROG, vers, nlm_server.port(), ipv6);
    }
    (void)portmapper.AddService(kNsmProgram, kNsmVersion, nsm_server.port(),
                                ipv6);
    for (uint32_t vers : {2u, 3u, 4u}) {
      (void)portmapper.AddService(kPortmapProgram, vers, portmap_server->port(),
                                  ipv6);
    }
  }

  RpcbindRegistrar registrar;
  if (f.register_rpcbind) {
    absl::Status s = RegisterWithRpcbind(registrar, nlm_server.port(),
                                         nsm_server.port(), ipv6);
    if (!s.ok()) {
      (void)registrar.UnregisterAll();
      return Fail(s);
    }
  }

  if (gateway_metrics != nullptr) {
    metrics::GatewayMetricsSources sources;
    sources.services = {{"nlm", &nlm_dispatcher, &nlm_server},
                        {"nsm", &nsm_dispatcher, &nsm_server}};
    if (portmap_server) {
      sources.services.push_back(
          {"portmap", &portmap_dispatcher, portmap_server.get()});
    }
    sources.drc = &drc;
    sources.rpc_client = &rpc;
    sources.nlm = &nlm;
    sources.grants = &grants;
    sources.nsm = &nsm;
    gateway_metrics->SetSources(std::move(sources));
  }

  grants.Start();
  nsm.Start();
  std::unique_ptr<health::GatewayHealth> readiness;
  if (!f.health_listen.empty()) {
    absl::StatusOr<std::unique_ptr<health::GatewayHealth>> h =
        health::GatewayHealth::Start({f.health_listen, f.name}, &server);
    if (!h.ok()) return Fail(h.status());
    readiness = *std::move(h);
  }
  LogEvent(
      LogLevel::kInfo, "gateway_ready",
      {{"name", f.name},
       {"servers", f.servers},
       {"server_tls", f.tls.enabled()},
       {"server_mtls", !f.tls.cert_file.empty()},
       {"bind", f.bind},
       {"nlm_port", nlm_server.port()},
       {"nsm_port", nsm_server.port()},
       {"portmap_port", portmap_server ? portmap_server->port() : uint16_t{0}},
       {"register_rpcbind", f.register_rpcbind},
       {"metrics_port", gateway_metrics ? gateway_metrics->port() : 0},
       {"instance", f.instance_name}});
  // Scripts and tests wait for this line to learn the ports.
  std::printf("lockwarden-gateway ready nlm=%u nsm=%u portmap=%u%s%s\n",
              unsigned{nlm_server.port()}, unsigned{nsm_server.port()},
              portmap_server ? unsigned{portmap_server->port()} : 0u,
              gateway_metrics
                  ? absl::StrCat(" metrics=", gateway_metrics->port()).c_str()
                  : "",
              readiness ? absl::StrCat(" health=", readiness->port()).c_str()
                        : "");
  std::fflush(stdout);

  WaitForShutdownSignal(signals);
  // New clients stop finding us first (not ready, unregistered); calls in
  // flight then get their answers (bounded) before the transports close.
  if (readiness) readiness->Stop();
  if (f.register_rpcbind) {
    if (absl::Status s = registrar.UnregisterAll(); !s.ok()) {
      LogEvent(LogLevel::kWarn, "rpcbind_unregister_failed", {{"error", s}});
    }
  }
  const bool idle = DrainCalls(
      absl::Now() + absl::Milliseconds(f.shutdown_timeout_ms),
      {&nlm_server, &nsm_server, portmap_server.get()}, nlm);
  grants.Stop();
  nsm.Stop();
  pool.Stop();
  // The sources are destroyed when Run returns; no scrape may read them.
  if (gateway_metrics != nullptr) gateway_metrics->ClearSources();
  const DrcStats drc_stats = drc.stats();
  const nlm::NlmServiceStats nlm_stats = nlm.stats();
  LogEvent(LogLevel::kInfo, "shutdown_done",
           {{"nlm_calls", nlm_stats.calls},
            {"drained", idle},
            {"nlm_in_flight_abandoned", idle ? int64_t{0} : nlm.in_flight()},
            {"drc_hits", drc_stats.hits},
            {"drc_absorbed", drc_stats.in_progress},
            {"grants_delivered", grants.stats().delivered}});
  return 0;
}

}  // namespace
}  // namespace lockwarden::gateway

int main(int argc, char** argv) {
  // As in server/main.cc: Debian's abseil runs its mutex deadlock detector
  // on every lock (1-2% of the gateway's CPU); thread annotations cover it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "lockwarden-gateway: NLM/NSM for NFS clients, backed by "
      "lockwarden-server"};
  lockwarden::gateway::Flags flags;
  lockwarden::gateway::DefineFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  return lockwarden::gateway::Run(flags);
}
