#include "tests/etcd/etcd_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "server/store/etcd_client.h"
#include "tests/common/spawn.h"

namespace lockwarden::testing {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
constexpr absl::Duration kReapTimeout = absl::Seconds(10);
// Deadline of each probe while waiting for health.
constexpr absl::Duration kProbeTimeout = absl::Milliseconds(500);

std::string Url(int port) { return absl::StrCat("http://127.0.0.1:", port); }

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// A client for one member, with short deadlines, for probing.
absl::StatusOr<std::unique_ptr<store::EtcdClient>> ProbeClient(int port) {
  store::EtcdClientOptions options;
  options.endpoints = {Url(port)};
  options.attempt_timeout = kProbeTimeout;
  options.call_timeout = kProbeTimeout;
  options.max_attempts = 1;
  return store::EtcdClient::Create(options);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(
    EtcdClusterOptions options) {
  if (options.members < 1 || options.members > 5) {
    return absl::InvalidArgumentError("etcd cluster: 1 to 5 members");
  }
  if (access(options.etcd_binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(
        options.etcd_binary, " not found (install etcd-server)"));
  }
  std::string templ = absl::StrCat(TestTempRoot(), "/etcd-cluster-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return ErrnoError("mkdtemp");
  std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(options, templ));
  absl::Status last;
  for (int attempt = 0; attempt < kEtcdStartAttempts; ++attempt) {
    last = cluster->StartAll();
    if (last.ok()) return cluster;
    cluster->KillAll();
    std::error_code ec;
    for (const Member& m : cluster->members_) {
      std::filesystem::remove_all(m.data_dir, ec);
    }
  }
  return last;
}

EtcdCluster::EtcdCluster(EtcdClusterOptions options, std::string dir)
    : options_(std::move(options)), dir_(std::move(dir)) {
  cluster_token_ = absl::StrCat("lw-test-", getpid(), "-", absl::ToUnixMicros(absl::Now()));
  for (int i = 0; i < options_.members; ++i) {
    Member m;
    m.name = absl::StrCat("m", i);
    m.data_dir = absl::StrCat(dir_, "/", m.name, ".etcd");
    m.log_path = absl::StrCat(dir_, "/", m.name, ".log");
    members_.push_back(std::move(m));
  }
}

EtcdCluster::~EtcdCluster() {
  KillAll();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::vector<std::string> EtcdCluster::ClientEndpoints() const {
  std::vector<std::string> out;
  for (const Member& m : members_) out.push_back(Url(m.client_port));
  return out;
}

std::string EtcdCluster::EndpointsFlag() const {
  return absl::StrJoin(ClientEndpoints(), ",");
}

absl::Status EtcdCluster::AssignPorts() {
  // Probe all ports while holding none, then check they are distinct.
  std::map<int, int> seen;
  for (Member& m : members_) {
    for (int* port : {&m.client_port, &m.peer_port}) {
      for (int tries = 0;; ++tries) {
        absl::StatusOr<int> p = ProbeFreeLoopbackPort();
        if (!p.ok()) return p.status();
        if (seen.count(*p) == 0 || tries >= 10) {
          *port = *p;
          ++seen[*p];
          break;
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EtcdCluster::StartAll() {
  absl::Status ports = AssignPorts();
  if (!ports.ok()) return ports;
  for (int i = 0; i < size(); ++i) {
    absl::Status s = Spawn(i);
    if (!s.ok()) return s;
  }
  return WaitHealthy(options_.ready_timeout);
}

absl::Status EtcdCluster::Spawn(int i) {
  Member& m = members_[i];
  if (m.pid > 0) return absl::FailedPreconditionError(m.name + " is running");
  std::vector<std::string> peers;
  for (const Member& other : members_) {
    peers.push_back(absl::StrCat(other.name, "=", Url(other.peer_port)));
  }
  std::vector<std::string> args = {
      options_.etcd_binary,
      "--name", m.name,
      "--data-dir", m.data_dir,
      "--listen-client-urls", Url(m.client_port),
      "--advertise-client-urls", Url(m.client_port),
      "--listen-peer-urls", Url(m.peer_port),
      "--initial-advertise-peer-urls", Url(m.peer_port),
      "--initial-cluster", absl::StrJoin(peers, ","),
      "--initial-cluster-state", "new",
      "--initial-cluster-token", cluster_token_,
      absl::StrCat("--heartbeat-interval=", options_.heartbeat_interval_ms),
      absl::StrCat("--election-timeout=", options_.election_timeout_ms),
      "--logger=zap",
      "--log-outputs=stderr",
  };
  absl::StatusOr<pid_t> pid = SpawnLogged(std::move(args), m.log_path);
  if (!pid.ok()) return pid.status();
  m.pid = *pid;
  return absl::OkStatus();
}

absl::Status EtcdCluster::CheckAlive(int i) {
  Member& m = members_[i];
  if (m.pid <= 0) return absl::FailedPreconditionError(m.name + " is not running");
  int status = 0;
  const pid_t r = waitpid(m.pid, &status, WNOHANG);
  if (r == 0) return absl::OkStatus();
  m.pid = -1;
  return absl::InternalError(absl::StrCat(
      "etcd ", m.name, " ", r > 0 ? DescribeWaitStatus(status) : "vanished",
      "; log tail:\n", LogTail(i, 2048)));
}

void EtcdCluster::KillAll() {
  for (int i = 0; i < size(); ++i) {
    if (members_[i].pid > 0) (void)Kill(i, SIGKILL);
  }
}

absl::Status EtcdCluster::Kill(int i, int signal) {
  if (i < 0 || i >= size()) return absl::InvalidArgumentError("no such member");
  Member& m = members_[i];
  if (m.pid <= 0) return absl::FailedPreconditionError(m.name + " is not running");
  if (::kill(m.pid, signal) != 0) return ErrnoError("kill");
  if (signal != SIGKILL && signal != SIGTERM) return absl::OkStatus();
  if (signal == SIGTERM) ::kill(m.pid, SIGCONT);  // A paused member must run to exit.
  const absl::Time deadline = absl::Now() + kReapTimeout;
  while (absl::Now() < deadline) {
    int status = 0;
    const pid_t r = waitpid(m.pid, &status, WNOHANG);
    if (r == m.pid || (r < 0 && errno == ECHILD)) {
      m.pid = -1;
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::DeadlineExceededError(m.name + " did not exit");
}

absl::Status EtcdCluster::Restart(int i) {
  if (i < 0 || i >= size()) return absl::InvalidArgumentError("no such member");
  // An existing data dir makes etcd ignore the --initial-* flags.
  return Spawn(i);
}

bool EtcdCluster::running(int i) const { return members_[i].pid > 0; }
pid_t EtcdCluster::pid(int i) const { return members_[i].pid; }

absl::Status EtcdCluster::WaitHealthy(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("etcd cluster not healthy");
  std::vector<std::unique_ptr<store::EtcdClient>> clients(size());
  for (int i = 0; i < size(); ++i) {
    absl::StatusOr<std::unique_ptr<store::EtcdClient>> c =
        ProbeClient(members_[i].client_port);
    if (!c.ok()) return c.status();
    clients[i] = *std::move(c);
  }
  while (absl::Now() < deadline) {
    bool all = true;
    for (int i = 0; i < size() && all; ++i) {
      if (members_[i].pid <= 0) continue;
      absl::Status alive = CheckAlive(i);
      if (!alive.ok()) return alive;
      absl::StatusOr<etcdserverpb::StatusResponse> st = clients[i]->MemberStatus(0);
      if (!st.ok() || st->leader() == 0) {
        last = st.ok() ? absl::UnavailableError(members_[i].name + " has no leader")
                       : st.status();
        all = false;
        break;
      }
      etcdserverpb::RangeRequest read;
      read.set_key("/lockwarden-test/health");
      absl::StatusOr<etcdserverpb::RangeResponse> r = clients[i]->Range(read);
      if (!r.ok()) {
        last = r.status();
        all = false;
      }
    }
    if (all) return absl::OkStatus();
    absl::SleepFor(kPollInterval);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("etcd cluster not healthy within ", absl::FormatDuration(timeout),
                   ": ", last.ToString()));
}

absl::StatusOr<int> EtcdCluster::LeaderIndex(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    // member id -> index, and the leader id each answering member reports.
    std::map<uint64_t, int> index_of;
    std::map<uint64_t, int> votes;
    int answered = 0;
    for (int i = 0; i < size(); ++i) {
      if (members_[i].pid <= 0) continue;
      absl::StatusOr<std::unique_ptr<store::EtcdClient>> c =
          ProbeClient(members_[i].client_port);
      if (!c.ok()) return c.status();
      absl::StatusOr<etcdserverpb::StatusResponse> st = (*c)->MemberStatus(0);
      if (!st.ok()) continue;
      ++answered;
      index_of[st->header().member_id()] = i;
      if (st->leader() != 0) ++votes[st->leader()];
    }
    if (votes.size() == 1 && votes.begin()->second == answered) {
      auto it = index_of.find(votes.begin()->first);
      if (it != index_of.end()) return it->second;
    }
    absl::SleepFor(kPollInterval);
  }
  return absl::DeadlineExceededError("no agreed etcd leader");
}

std::string EtcdCluster::LogTail(int i, size_t max_bytes) const {
  std::ifstream in(members_[i].log_path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff from =
      size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(from);
  std::string out(static_cast<size_t>(size - from), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  return out;
}

}  // namespace lockwarden::testing
