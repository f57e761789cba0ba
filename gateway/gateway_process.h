// Test helpers for process-level tests of lockwarden-gateway: run the
// binary ($LW_GATEWAY_BIN, resolved like tests/common/server_process.h),
// parse its ready line, talk to it with libtirpc.
//
// Thread-safety: a GatewayProcess is used from one thread (the test's).
#ifndef LOCKWARDEN_GATEWAY_GATEWAY_PROCESS_H_
#define LOCKWARDEN_GATEWAY_GATEWAY_PROCESS_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <rpc/rpc.h>
// After rpc/rpc.h, which defines bool_t.
#include <rpc/pmap_prot.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/nlm/nlm_test_client.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"
#include "tests/common/server_process.h"

namespace lockwarden::gateway {

// A port free on 127.0.0.1 for both UDP and TCP right now.
inline uint16_t FreePort() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int u = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(u, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        getsockname(u, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      close(u);
      continue;
    }
    const int t = socket(AF_INET, SOCK_STREAM, 0);
    const bool tcp_ok =
        bind(t, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    close(t);
    close(u);
    if (tcp_ok) return ntohs(a.sin_port);
  }
  return 0;
}

struct ReadyPorts {
  int nlm = -1;
  int nsm = -1;
  int portmap = -1;
  int metrics = -1;  // only with --metrics-listen
};

// fork/exec of the gateway with stdout on a pipe; the ready line is parsed.
class GatewayProcess {
 public:
  // `stderr_path`: where the gateway's log goes (empty: the test's stderr).
  explicit GatewayProcess(std::vector<std::string> args,
                          const std::string& stderr_path = "") {
    auto bin = testing::ResolveRunfile(getenv("LW_GATEWAY_BIN"));
    EXPECT_TRUE(bin.ok()) << bin.status();
    if (!bin.ok()) return;
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      if (!stderr_path.empty()) {
        const int log =
            open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log >= 0) dup2(log, 2);
      }
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(bin->c_str()));
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin->c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~GatewayProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }

  // Reads stdout until the ready line or EOF/timeout.
  std::optional<ReadyPorts> WaitReady(absl::Duration timeout) {
    std::string text;
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = read(out_, buf, sizeof(buf));
      if (n <= 0) return std::nullopt;
      text.append(buf, static_cast<size_t>(n));
      ReadyPorts r;
      if (const size_t at = text.find("lockwarden-gateway ready");
          at != std::string::npos && text.find('\n', at) != std::string::npos &&
          std::sscanf(text.c_str() + at,
                      "lockwarden-gateway ready nlm=%d nsm=%d portmap=%d",
                      &r.nlm, &r.nsm, &r.portmap) == 3) {
        const size_t eol = text.find('\n', at);
        const size_t m = text.find(" metrics=", at);
        if (m != std::string::npos && m < eol) {
          std::sscanf(text.c_str() + m, " metrics=%d", &r.metrics);
        }
        return r;
      }
    }
    return std::nullopt;
  }

  // SIGTERM and the exit status (-1 if it did not exit in `timeout`).
  int Terminate(absl::Duration timeout) {
    kill(pid_, SIGTERM);
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }

  // Waits for the process to exit by itself; its exit code or -1.
  int WaitExit(absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

inline CLIENT* Connect(int port, uint32_t prog, uint32_t vers, bool tcp) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int sock = RPC_ANYSOCK;
  CLIENT* c =
      tcp ? clnttcp_create(&addr, prog, vers, &sock, 0, 0)
          : clntudp_create(&addr, prog, vers, timeval{0, 500000}, &sock);
  EXPECT_NE(c, nullptr) << clnt_spcreateerror("connect");
  return c;
}

inline u_int GetPort(int portmap_port, uint32_t prog, uint32_t vers, bool tcp) {
  CLIENT* c = Connect(portmap_port, PMAPPROG, PMAPVERS, false);
  if (c == nullptr) return 0;
  pmap query{prog, vers, static_cast<u_long>(tcp ? IPPROTO_TCP : IPPROTO_UDP),
             0};
  u_int port = 0;
  EXPECT_EQ(clnt_call(c, PMAPPROC_GETPORT, XdrProc(xdr_pmap),
                      reinterpret_cast<caddr_t>(&query), XdrProc(xdr_u_int),
                      reinterpret_cast<caddr_t>(&port), nlm::kTimeout),
            RPC_SUCCESS);
  clnt_destroy(c);
  return port;
}

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_GATEWAY_PROCESS_H_
