#include "tests/failover/ha_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/store/etcd_store.h"
#include "tests/common/server_process.h"
#include "tests/common/spawn.h"

namespace lockwarden::testing {
namespace {

// Reaps `pid`, waiting at most `timeout`; SIGKILLs it if it is still there.
void Reap(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    absl::SleepFor(absl::Milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HaCluster>> HaCluster::Start(HaClusterOptions options) {
  const char* bin = getenv("LW_SERVER_BIN");
  if (bin == nullptr) return absl::FailedPreconditionError("set $LW_SERVER_BIN");
  absl::StatusOr<std::string> binary = ResolveRunfile(bin);
  if (!binary.ok()) return binary.status();
  absl::StatusOr<std::string> dir = MakeTempDir("ha-cluster-");
  if (!dir.ok()) return dir.status();
  std::unique_ptr<HaCluster> c(new HaCluster(std::move(options), *binary, *dir));
  auto etcd = EtcdCluster::Start({.members = c->options_.etcd_members});
  if (!etcd.ok()) return etcd.status();
  c->etcd_ = *std::move(etcd);
  c->servers_.resize(c->options_.servers);
  for (int i = 0; i < c->size(); ++i) {
    absl::StatusOr<int> port = ProbeFreeLoopbackPort();
    if (!port.ok()) return port.status();
    c->servers_[i].port = *port;
    c->servers_[i].log = absl::StrCat(*dir, "/s", i, ".log");
    if (c->options_.proxy_etcd) {
      for (const std::string& endpoint : c->etcd_->ClientEndpoints()) {
        int member_port = 0;
        const size_t colon = endpoint.rfind(':');
        if (colon == std::string::npos ||
            !absl::SimpleAtoi(endpoint.substr(colon + 1), &member_port)) {
          return absl::InternalError(absl::StrCat("bad etcd endpoint ", endpoint));
        }
        auto proxy = TcpProxy::Start(member_port);
        if (!proxy.ok()) return proxy.status();
        c->servers_[i].etcd_proxies.push_back(*std::move(proxy));
      }
    }
    if (absl::Status s = c->StartServer(i); !s.ok()) return s;
  }
  if (absl::StatusOr<int> l = c->WaitForLeader(kLeaderWaitMax); !l.ok()) return l.status();
  return c;
}

HaCluster::~HaCluster() {
  for (int i = 0; i < size(); ++i) {
    if (servers_[i].pid > 0) {
      kill(servers_[i].pid, SIGKILL);
      waitpid(servers_[i].pid, nullptr, 0);
    }
  }
  etcd_.reset();
  // Logs are kept on failure by the caller copying them; the dir goes.
  RemoveTree(dir_);
}

std::string HaCluster::EtcdEndpointsOf(int i) const {
  if (servers_[i].etcd_proxies.empty()) return etcd_->EndpointsFlag();
  std::vector<std::string> urls;
  for (const auto& p : servers_[i].etcd_proxies) {
    urls.push_back(absl::StrCat("http://127.0.0.1:", p->port()));
  }
  return absl::StrJoin(urls, ",");
}

void HaCluster::CutFromEtcd(int i) {
  for (auto& p : servers_[i].etcd_proxies) p->Cut();
}

absl::Status HaCluster::HealToEtcd(int i) {
  for (auto& p : servers_[i].etcd_proxies) {
    if (absl::Status s = p->Heal(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string HaCluster::address(int i) const {
  return absl::StrCat("127.0.0.1:", servers_[i].port);
}

std::shared_ptr<grpc::Channel> HaCluster::Channel(int i) const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // A fresh connection.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  return grpc::CreateCustomChannel(address(i),
                                   options_.client_credentials != nullptr
                                       ? options_.client_credentials
                                       : grpc::InsecureChannelCredentials(),
                                   args);
}

absl::Status HaCluster::StartServer(int i) {
  Server& s = servers_[i];
  if (s.pid > 0) return absl::FailedPreconditionError("server already running");
  std::vector<std::string> args = {
      binary_,
      "--store=etcd",
      absl::StrCat("--etcd-endpoints=", EtcdEndpointsOf(i)),
      absl::StrCat("--listen=", address(i)),
      absl::StrCat("--server-id=s", i),
  };
  for (const std::string& a : options_.extra_args) args.push_back(a);
  absl::StatusOr<pid_t> pid = SpawnLogged(std::move(args), s.log);
  if (!pid.ok()) return pid.status();
  s.pid = *pid;
  return absl::OkStatus();
}

absl::Status HaCluster::Signal(int i, int signal) {
  Server& s = servers_[i];
  if (s.pid <= 0) return absl::FailedPreconditionError("server not running");
  if (kill(s.pid, signal) != 0) return ErrnoError("kill");
  if (signal == SIGKILL || signal == SIGTERM) {
    Reap(s.pid, absl::Seconds(15));
    s.pid = -1;
  }
  return absl::OkStatus();
}

bool HaCluster::Serving(int i, absl::Duration timeout) const {
  if (servers_[i].pid <= 0) return false;
  auto stub = grpc::health::v1::Health::NewStub(Channel(i));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("lockwarden.v1.LockService");
  grpc::health::v1::HealthCheckResponse resp;
  return stub->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

absl::StatusOr<int> HaCluster::WaitForLeader(absl::Duration timeout, int not_index) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    for (int i = 0; i < size(); ++i) {
      if (i != not_index && Serving(i)) return i;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no leader within ", absl::FormatDuration(timeout)));
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> HaCluster::ScanState() const {
  store::EtcdStoreOptions options;
  options.client.endpoints = etcd_->ClientEndpoints();
  options.key_prefix = kHaStatePrefix;
  options.fenced = false;
  auto store = store::EtcdStore::Open(options);
  if (!store.ok()) return store.status();
  std::vector<std::pair<std::string, std::string>> out;
  absl::Status s = (*store)->Scan("", [&out](absl::string_view k, absl::string_view v) {
    out.emplace_back(std::string(k), std::string(v));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

std::string HaCluster::LogTail(int i, size_t max_bytes) const {
  std::ifstream in(servers_[i].log);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string all = ss.str();
  return all.size() > max_bytes ? all.substr(all.size() - max_bytes) : all;
}

}  // namespace lockwarden::testing
