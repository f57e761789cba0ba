#include "tests/failover/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lockwarden::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int target_port) {
  std::unique_ptr<TcpProxy> p(new TcpProxy(target_port));
  if (absl::Status s = p->Listen(); !s.ok()) return s;
  return p;
}

TcpProxy::~TcpProxy() {
  Cut();
}

absl::Status TcpProxy::Listen() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(port_);
  socklen_t len = sizeof(a);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string err = strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("proxy listen on ", port_, ": ", err));
  }
  port_ = ntohs(a.sin_port);
  {
    absl::MutexLock lock(&mu_);
    listen_fd_ = fd;
  }
  acceptor_ = std::thread([this, fd] { AcceptLoop(fd); });
  return absl::OkStatus();
}

void TcpProxy::AcceptLoop(int listen_fd) {
  while (true) {
    const int client = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EINTR) continue;
      return;  // Cut(): the listener was shut down.
    }
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in t = Loopback(target_port_);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&t), sizeof(t)) != 0) {
      if (upstream >= 0) close(upstream);
      close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (listen_fd_ != listen_fd || fds_.size() / 2 >= kMaxProxyConnections) {
      close(client);
      close(upstream);
      continue;
    }
    fds_.push_back(client);
    fds_.push_back(upstream);
    threads_.emplace_back([client, upstream] { Copy(client, upstream); });
    threads_.emplace_back([client, upstream] { Copy(upstream, client); });
  }
}

void TcpProxy::Copy(int from, int to) {
  char buf[16384];
  while (true) {
    const ssize_t n = read(from, buf, sizeof(buf));
    if (n <= 0) break;
    ssize_t off = 0;
    while (off < n) {
      // MSG_NOSIGNAL: a reset peer must not SIGPIPE the whole test.
      const ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
      if (w <= 0) return;
      off += w;
    }
  }
  shutdown(to, SHUT_WR);
}

void TcpProxy::Cut() {
  std::vector<std::thread> threads;
  std::vector<int> fds;
  int listen_fd;
  {
    absl::MutexLock lock(&mu_);
    listen_fd = listen_fd_;
    listen_fd_ = -1;
    fds.swap(fds_);
    threads.swap(threads_);
  }
  if (listen_fd >= 0) shutdown(listen_fd, SHUT_RDWR);  // Wakes accept().
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd >= 0) close(listen_fd);
  // Reset rather than close gracefully: the server sees its etcd
  // connections die, as in a partition with RSTs or a dead route.
  for (int fd : fds) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    shutdown(fd, SHUT_RDWR);
  }
  for (std::thread& t : threads) t.join();
  for (int fd : fds) close(fd);
}

absl::Status TcpProxy::Heal() {
  {
    absl::MutexLock lock(&mu_);
    if (listen_fd_ >= 0) return absl::OkStatus();
  }
  return Listen();
}

}  // namespace lockwarden::testing
