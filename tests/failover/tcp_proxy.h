// TcpProxy (testonly): a loopback TCP forwarder a test can cut and heal, to
// partition one lockwarden server from etcd without network namespaces.
//
//   auto proxy = TcpProxy::Start(target_port);   // listens on 127.0.0.1:port()
//   proxy->Cut();    // resets every connection, refuses new ones
//   proxy->Heal();   // listens again on the same port
//
// One thread accepts; each connection gets two copier threads. At most
// kMaxProxyConnections connections at a time (more are refused).
//
// Thread-safety: Cut/Heal/port from the test's thread; the rest internal.
#ifndef LOCKWARDEN_TESTS_FAILOVER_TCP_PROXY_H_
#define LOCKWARDEN_TESTS_FAILOVER_TCP_PROXY_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace lockwarden::testing {

inline constexpr int kMaxProxyConnections = 64;

class TcpProxy {
 public:
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int target_port);
  ~TcpProxy();  // Cut()s and joins.

  int port() const { return port_; }
  void Cut();
  absl::Status Heal();

 private:
  explicit TcpProxy(int target_port) : target_port_(target_port) {}
  absl::Status Listen();
  void AcceptLoop(int listen_fd);
  static void Copy(int from, int to);

  const int target_port_;
  int port_ = 0;
  absl::Mutex mu_;
  int listen_fd_ ABSL_GUARDED_BY(mu_) = -1;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);  // Every open connection end.
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_FAILOVER_TCP_PROXY_H_
