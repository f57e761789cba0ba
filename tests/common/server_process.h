// ServerProcess: runs a real lockwarden-server process for process-level
// tests (crash, restart, benchmarks): fork/exec of the binary with a temp
// data dir and an OS-chosen port, wait until health says SERVING, SIGKILL or
// SIGTERM it, start it again on the same data dir, clean up at the end.
//
//   auto server = ServerProcess::Start(ServerProcessOptions{});
//   ASSERT_TRUE(server.ok()) << server.status();
//   auto stub = lockwarden::v1::LockService::NewStub((*server)->NewChannel());
//   ...
//   LW_ASSERT_OK((*server)->Kill());       // kill -9, reaped.
//   LW_ASSERT_OK((*server)->Restart());    // same data dir, new port.
//
// The binary is found through $LW_SERVER_BIN (a runfiles-relative path such
// as `$(rootpath //server:lockwarden-server)` set in the test rule's `env`),
// resolved against the working directory and then $TEST_SRCDIR/lockwarden.
// The server's stdout and stderr go to a log file next to the data dir; its
// tail is added to every error so a failed start explains itself.
//
// Thread-safety: a ServerProcess is used from one thread (the test's);
// NewChannel()/address() may be called from any thread while no
// Start/Restart/Kill/Terminate runs.
#ifndef LOCKWARDEN_TESTS_COMMON_SERVER_PROCESS_H_
#define LOCKWARDEN_TESTS_COMMON_SERVER_PROCESS_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace lockwarden::testing {

// Upper bound on how long a start may take before it is declared failed.
inline constexpr absl::Duration kServerReadyTimeout = absl::Seconds(60);
// How long Terminate() waits for a graceful exit before it gives up.
inline constexpr absl::Duration kServerTerminateTimeout = absl::Seconds(30);

struct ServerProcessOptions {
  // Path of the lockwarden-server binary; empty = $LW_SERVER_BIN (see above).
  std::string binary;
  // Data directory; empty = a fresh directory under $TEST_TMPDIR (or $TMPDIR,
  // or /tmp) that the destructor removes.
  std::string data_dir;
  // Extra flags, e.g. {"--grant-timeout-ms=3600000"}.
  std::vector<std::string> extra_args;
  absl::Duration ready_timeout = kServerReadyTimeout;
  // Credentials of NewChannel() (and so of the readiness check); default
  // insecure. Set them when extra_args make the server listen with TLS.
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
};

class ServerProcess {
 public:
  // Creates the data dir if needed, starts the server and waits until
  // grpc.health.v1 reports SERVING for lockwarden.v1.LockService.
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      ServerProcessOptions options);

  // Kills (SIGKILL) a still-running server, waits for it, removes an owned
  // data dir.
  ~ServerProcess();

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts the server again on the same data dir (it must not be running).
  // The port changes (a new ephemeral one).
  absl::Status Restart();

  // Sends `signal` (default SIGKILL) and reaps the process. The server dies
  // wherever it is: this is the crash.
  absl::Status Kill(int signal = 9);

  // SIGTERM, then waits up to `timeout` for a graceful exit. Returns the
  // exit code (0 expected); an error if it did not exit or died by a signal.
  absl::StatusOr<int> Terminate(absl::Duration timeout = kServerTerminateTimeout);

  // Polls health until SERVING or `timeout`; used by Start/Restart and by
  // benchmarks that time recovery.
  absl::Status WaitUntilServing(absl::Duration timeout);

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"
  const std::string& data_dir() const { return options_.data_dir; }
  const std::string& log_path() const { return log_path_; }
  // The last `max_bytes` of the server's log (stdout + stderr).
  std::string LogTail(size_t max_bytes = 4096) const;

  // A new channel to the server (each call a distinct connection), with
  // options.channel_credentials (default insecure).
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  explicit ServerProcess(ServerProcessOptions options, bool owns_dir,
                         std::string log_path);
  absl::Status Spawn();
  absl::Status WaitForPort(absl::Duration timeout);
  // Reaps the child; returns its wait status. Blocks at most `timeout`.
  absl::StatusOr<int> Reap(absl::Duration timeout);
  absl::Status WithLog(const absl::Status& status) const;

  ServerProcessOptions options_;
  const bool owns_dir_;
  const std::string log_path_;
  int starts_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Resolves a runfiles-relative path (as $(rootpath) gives) to an existing
// file: as is, then under $TEST_SRCDIR/lockwarden. NotFound otherwise.
absl::StatusOr<std::string> ResolveRunfile(const std::string& path);

// A fresh directory under $TEST_TMPDIR / $TMPDIR / /tmp named
// "<prefix>XXXXXX".
absl::StatusOr<std::string> MakeTempDir(const std::string& prefix);
// rm -rf `dir` (no symlinks followed). Best effort.
void RemoveTree(const std::string& dir);

// Waits until the health service reports SERVING for `service` ("" = the
// whole server), polling with short per-call deadlines, at most `timeout`.
absl::Status WaitForServing(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& service, absl::Duration timeout);

// A context with a deadline `timeout` from now.
std::unique_ptr<grpc::ClientContext> ContextWithDeadline(absl::Duration timeout);

// Unique request ids for a test process: "<prefix>-<pid>-<random>-<n>".
// Thread-safe (an atomic counter).
class RequestIdGenerator {
 public:
  explicit RequestIdGenerator(std::string prefix = "t");
  std::string Next();

 private:
  const std::string base_;
  std::atomic<uint64_t> next_{1};
};

// Resident set size of `pid` in bytes (VmRSS of /proc/<pid>/status).
absl::StatusOr<uint64_t> ProcessRssBytes(pid_t pid);

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_COMMON_SERVER_PROCESS_H_
