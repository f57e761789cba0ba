#include "tests/common/server_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/common/spawn.h"

namespace lockwarden::testing {
namespace {

constexpr char kPortLine[] = "lockwarden-server listening on port ";
// Polling interval while waiting for the port line, health or an exit.
constexpr absl::Duration kPollInterval = absl::Milliseconds(5);
// Deadline of one health Check while polling.
constexpr absl::Duration kHealthCallTimeout = absl::Milliseconds(500);

std::string ReadFileFrom(const std::string& path, size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size <= static_cast<std::streamoff>(offset)) return "";
  in.seekg(static_cast<std::streamoff>(offset));
  std::string out(static_cast<size_t>(size) - offset, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

size_t FileSize(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<size_t>(st.st_size);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

}  // namespace

absl::StatusOr<std::string> ResolveRunfile(const std::string& path) {
  if (path.empty()) return absl::NotFoundError("empty runfile path");
  if (access(path.c_str(), F_OK) == 0) return path;
  const char* srcdir = getenv("TEST_SRCDIR");
  if (srcdir != nullptr) {
    std::string p = absl::StrCat(srcdir, "/lockwarden/", path);
    if (access(p.c_str(), F_OK) == 0) return p;
  }
  return absl::NotFoundError(absl::StrCat("runfile not found: ", path));
}

absl::StatusOr<std::string> MakeTempDir(const std::string& prefix) {
  std::string templ = absl::StrCat(TestTempRoot(), "/", prefix, "XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return ErrnoError("mkdtemp " + templ);
  return templ;
}

void RemoveTree(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d != nullptr) {
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string p = absl::StrCat(dir, "/", name);
      struct stat st;
      if (lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        RemoveTree(p);
      } else {
        unlink(p.c_str());
      }
    }
    closedir(d);
  }
  rmdir(dir.c_str());
}

absl::Status WaitForServing(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& service, absl::Duration timeout) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no answer yet";
  while (absl::Now() < deadline) {
    auto ctx = ContextWithDeadline(kHealthCallTimeout);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = stub->Check(ctx.get(), req, &resp);
    if (s.ok() && resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    last = s.ok() ? absl::StrCat("status ", resp.status())
                  : absl::StrCat("rpc error ", s.error_code(), ": ", s.error_message());
    absl::SleepFor(kPollInterval);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "health of '", service, "' not SERVING within ", absl::FormatDuration(timeout),
      " (last: ", last, ")"));
}

std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

RequestIdGenerator::RequestIdGenerator(std::string prefix)
    : base_(absl::StrCat(prefix, "-", getpid(), "-", std::random_device{}() % 1000000)) {}

std::string RequestIdGenerator::Next() {
  return absl::StrCat(base_, "-", next_.fetch_add(1, std::memory_order_relaxed));
}

absl::StatusOr<uint64_t> ProcessRssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("no /proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (!absl::ConsumePrefix(&v, "VmRSS:")) continue;
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumeSuffix(&v, "kB");
    v = absl::StripAsciiWhitespace(v);
    uint64_t kb = 0;
    if (!absl::SimpleAtoi(v, &kb)) break;
    return kb * 1024;
  }
  return absl::InternalError(absl::StrCat("no VmRSS in /proc/", pid, "/status"));
}

// ---- ServerProcess -------------------------------------------------------

ServerProcess::ServerProcess(ServerProcessOptions options, bool owns_dir,
                             std::string log_path)
    : options_(std::move(options)), owns_dir_(owns_dir), log_path_(std::move(log_path)) {}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    ServerProcessOptions options) {
  if (options.binary.empty()) {
    const char* env = getenv("LW_SERVER_BIN");
    if (env == nullptr || *env == '\0') {
      return absl::FailedPreconditionError(
          "no server binary: set ServerProcessOptions.binary or $LW_SERVER_BIN "
          "(env = {\"LW_SERVER_BIN\": \"$(rootpath //server:lockwarden-server)\"})");
    }
    options.binary = env;
  }
  auto binary = ResolveRunfile(options.binary);
  if (!binary.ok()) return binary.status();
  options.binary = *binary;
  bool owns_dir = false;
  if (options.data_dir.empty()) {
    auto dir = MakeTempDir("lw-server-");
    if (!dir.ok()) return dir.status();
    options.data_dir = *dir;
    owns_dir = true;
  } else if (mkdir(options.data_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoError("mkdir " + options.data_dir);
  }
  std::string log_path = absl::StrCat(options.data_dir, ".log");
  std::unique_ptr<ServerProcess> p(
      new ServerProcess(std::move(options), owns_dir, std::move(log_path)));
  if (absl::Status s = p->Restart(); !s.ok()) return s;
  return p;
}

ServerProcess::~ServerProcess() {
  if (running()) (void)Kill(SIGKILL);
  if (owns_dir_) {
    RemoveTree(options_.data_dir);
    unlink(log_path_.c_str());
  }
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::shared_ptr<grpc::Channel> ServerProcess::NewChannel() const {
  grpc::ChannelArguments args;
  // A distinct connection per channel, so client threads do not share one
  // HTTP/2 connection unless they share the channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address(),
                                   options_.channel_credentials != nullptr
                                       ? options_.channel_credentials
                                       : grpc::InsecureChannelCredentials(),
                                   args);
}

std::string ServerProcess::LogTail(size_t max_bytes) const {
  const size_t size = FileSize(log_path_);
  return ReadFileFrom(log_path_, size > max_bytes ? size - max_bytes : 0);
}

absl::Status ServerProcess::WithLog(const absl::Status& status) const {
  return absl::Status(status.code(), absl::StrCat(status.message(), "\n--- server log (",
                                                  log_path_, ") tail ---\n", LogTail()));
}

absl::Status ServerProcess::Restart() {
  if (running()) return absl::FailedPreconditionError("server is still running");
  if (absl::Status s = Spawn(); !s.ok()) return WithLog(s);
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  if (absl::Status s = WaitForPort(options_.ready_timeout); !s.ok()) {
    if (running()) (void)Kill(SIGKILL);
    return WithLog(s);
  }
  if (absl::Status s = WaitUntilServing(deadline - absl::Now()); !s.ok()) {
    if (running()) (void)Kill(SIGKILL);
    return WithLog(s);
  }
  return absl::OkStatus();
}

absl::Status ServerProcess::Spawn() {
  ++starts_;
  std::vector<std::string> args = {
      options_.binary, "--listen=127.0.0.1:0",
      absl::StrCat("--data-dir=", options_.data_dir)};
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  const std::string banner = absl::StrCat("=== start ", starts_, " ===\n");
  absl::StatusOr<pid_t> pid = SpawnLogged(std::move(args), log_path_, banner);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;
  port_ = 0;
  return absl::OkStatus();
}

absl::Status ServerProcess::WaitForPort(absl::Duration timeout) {
  // The banner of this start marks where its output begins.
  const std::string banner = absl::StrCat("=== start ", starts_, " ===\n");
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const std::string log = ReadFileFrom(log_path_, 0);
    const size_t from = log.rfind(banner);
    if (from != std::string::npos) {
      const size_t at = log.find(kPortLine, from);
      const size_t eol = at == std::string::npos ? at : log.find('\n', at);
      if (eol != std::string::npos) {
        const std::string num =
            log.substr(at + strlen(kPortLine), eol - at - strlen(kPortLine));
        if (!absl::SimpleAtoi(num, &port_) || port_ <= 0) {
          return absl::InternalError(absl::StrCat("bad port line: ", num));
        }
        return absl::OkStatus();
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(
          absl::StrCat("server ", DescribeWaitStatus(status), " before listening"));
    }
    absl::SleepFor(kPollInterval);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "server printed no port line within ", absl::FormatDuration(timeout)));
}

absl::Status ServerProcess::WaitUntilServing(absl::Duration timeout) {
  if (!running() || port_ == 0) return absl::FailedPreconditionError("server not running");
  return WaitForServing(NewChannel(), "lockwarden.v1.LockService", timeout);
}

absl::StatusOr<int> ServerProcess::Reap(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      port_ = 0;
      return status;
    }
    if (r < 0 && errno != EINTR) return ErrnoError("waitpid");
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "server pid ", pid_, " did not exit within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPollInterval);
  }
}

absl::Status ServerProcess::Kill(int signal) {
  if (!running()) return absl::FailedPreconditionError("server not running");
  if (kill(pid_, signal) != 0) return ErrnoError("kill");
  // SIGKILL cannot be caught: the exit is immediate. Other signals get the
  // terminate timeout and then SIGKILL.
  auto status = Reap(signal == SIGKILL ? absl::Seconds(10) : kServerTerminateTimeout);
  if (!status.ok() && running()) {
    kill(pid_, SIGKILL);
    (void)Reap(absl::Seconds(10));
  }
  return status.ok() ? absl::OkStatus() : status.status();
}

absl::StatusOr<int> ServerProcess::Terminate(absl::Duration timeout) {
  if (!running()) return absl::FailedPreconditionError("server not running");
  if (kill(pid_, SIGTERM) != 0) return ErrnoError("kill");
  auto status = Reap(timeout);
  if (!status.ok()) {
    kill(pid_, SIGKILL);
    (void)Reap(absl::Seconds(10));
    return WithLog(status.status());
  }
  if (!WIFEXITED(*status)) {
    return WithLog(absl::InternalError(
        absl::StrCat("server did not exit cleanly on SIGTERM: ", DescribeWaitStatus(*status))));
  }
  return WEXITSTATUS(*status);
}

}  // namespace lockwarden::testing
