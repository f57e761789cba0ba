// RpcClient source ports: with privileged_source_port every call (UDP and
// TCP, Call and Send) leaves from a reserved port, as a kernel lockd
// requires of callbacks; without it from an ephemeral one. The server is a
// real RpcServer on 127.0.0.1 that records the caller's port. Needs root
// (or CAP_NET_BIND_SERVICE), which the test environment has.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gateway/rpc/address.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/reserved_port.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/xdr_codec.h"
#include "gtest/gtest.h"

namespace lockwarden::gateway {
namespace {

constexpr uint32_t kLockRes = 12;  // NLM4_LOCK_RES: no reply

class RpcClientPortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto record = [this](std::unique_ptr<RpcCall> call) {
      {
        absl::MutexLock lock(&mu_);
        ports_.push_back(call->context().peer_port);
      }
      if (call->procedure().result_encoder == XdrVoid() &&
          call->header().proc == kLockRes) {
        ASSERT_TRUE(call->ReplyNone().ok());
      } else {
        ASSERT_TRUE(call->Reply(nullptr).ok());
      }
    };
    ASSERT_TRUE(dispatcher_
                    .RegisterProcedure(NLM_PROG, NLM4_VERS, 0,
                                       MakeVoidProcedure("NULL", record))
                    .ok());
    ASSERT_TRUE(dispatcher_
                    .RegisterProcedure(
                        NLM_PROG, NLM4_VERS, kLockRes,
                        MakeVoidResultProcedure("LOCK_RES", xdr_nlm4_res,
                                                record))
                    .ok());
    server_ = std::make_unique<RpcServer>(
        pool_.context(), dispatcher_,
        RpcServerOptions{.bind_address = "127.0.0.1", .port = 0});
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    pool_.Stop();
  }

  // The source port the server saw for one Call (or Send) through a client
  // with `privileged`.
  uint16_t PortOfOneCall(bool privileged, TransportKind transport,
                         bool send) {
    RpcClientOptions o;
    o.privileged_source_port = privileged;
    RpcClient client(pool_.context(), o);
    const RpcEndpoint to{"127.0.0.1", server_->port(), transport};
    std::promise<absl::Status> done;
    if (send) {
      nlm4_res res{};
      client.Send(to, CallTarget{NLM_PROG, NLM4_VERS, kLockRes},
                  CallCredentials::None(), XdrProc(xdr_nlm4_res), &res,
                  [&done](absl::Status s) { done.set_value(s); });
    } else {
      client.Call(to, CallTarget{NLM_PROG, NLM4_VERS, 0},
                  CallCredentials::None(), XdrVoid(), nullptr,
                  [&done](absl::StatusOr<RpcReply> r) {
                    done.set_value(r.status());
                  });
    }
    const absl::Status s = done.get_future().get();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(client.privileged_port_fallbacks(), 0u);
    // A Send completes when written; wait (bounded) for the server to see it.
    const absl::Time end = absl::Now() + absl::Seconds(5);
    while (absl::Now() < end) {
      {
        absl::MutexLock lock(&mu_);
        if (!ports_.empty()) {
          const uint16_t port = ports_.back();
          ports_.clear();
          return port;
        }
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "the server saw no call";
    return 0;
  }

  IoThreadPool pool_{2};
  Dispatcher dispatcher_;
  std::unique_ptr<RpcServer> server_;
  absl::Mutex mu_;
  std::vector<uint16_t> ports_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RpcClientPortTest, PrivilegedCallsLeaveFromReservedPorts) {
  for (TransportKind t : {TransportKind::kUdp, TransportKind::kTcp}) {
    for (bool send : {false, true}) {
      SCOPED_TRACE(testing::Message()
                   << (t == TransportKind::kUdp ? "udp" : "tcp")
                   << (send ? " send" : " call"));
      const uint16_t port = PortOfOneCall(true, t, send);
      EXPECT_GE(port, kReservedPortLow);
      EXPECT_LE(port, kReservedPortHigh);
    }
  }
}

TEST_F(RpcClientPortTest, UnprivilegedCallsLeaveFromEphemeralPorts) {
  for (TransportKind t : {TransportKind::kUdp, TransportKind::kTcp}) {
    EXPECT_GE(PortOfOneCall(false, t, false), 1024);
  }
}

TEST_F(RpcClientPortTest, ManyPrivilegedTcpCallsInARowFindFreePorts) {
  // Closed connections leave their ports in TIME_WAIT; new calls must
  // still find one (SO_REUSEADDR, other ports of the range).
  for (int i = 0; i < 50; ++i) {
    const uint16_t port = PortOfOneCall(true, TransportKind::kTcp, false);
    ASSERT_GE(port, kReservedPortLow) << "call " << i;
    ASSERT_LE(port, kReservedPortHigh) << "call " << i;
  }
}

TEST(ReservedPortTest, WithoutPrivilegeTheBindIsPermissionDenied) {
  // A child that gave up root: the reserved range is closed to it.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setuid(65534) != 0) _exit(2);
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    absl::StatusOr<uint16_t> port = BindReservedPort(fd, AF_INET);
    _exit(absl::IsPermissionDenied(port.status()) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ReservedPortTest, BindsIpv4AndIpv6Sockets) {
  for (int family : {AF_INET, AF_INET6}) {
    const int fd = socket(family, SOCK_DGRAM, 0);
    if (fd < 0) continue;  // no IPv6 in this sandbox
    absl::StatusOr<uint16_t> port = BindReservedPort(fd, family);
    if (family == AF_INET6 && !port.ok() &&
        port.status().code() == absl::StatusCode::kInternal) {
      close(fd);
      continue;  // IPv6 disabled
    }
    ASSERT_TRUE(port.ok()) << port.status();
    EXPECT_GE(*port, kReservedPortLow);
    EXPECT_LE(*port, kReservedPortHigh);
    close(fd);
  }
  EXPECT_FALSE(BindReservedPort(-1, AF_UNIX).ok());
}

}  // namespace
}  // namespace lockwarden::gateway
