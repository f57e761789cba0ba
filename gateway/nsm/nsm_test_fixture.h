// Test fixture for NsmService: everything real, on 127.0.0.1 ephemeral
// ports, in one process:
//   - a service::LockServer over a MemoryStore the fixture keeps (so the
//     server can be restarted on the same state, on the same port);
//   - NsmService on its own Dispatcher + RpcServer, reached by libtirpc
//     clients built from the project's sm_inter.x;
//   - an embedded Portmapper (instead of the host's rpcbind) that the
//     service's GETPORT queries go to (NsmOptions::rpcbind_port);
//   - a fake remote statd (100024/1 SM_NOTIFY) and a fake lockd
//     (100021/4 procedure 16) registered with that portmapper, recording
//     what they receive.
// Also helpers that drive the service's Dispatcher directly with a forged
// peer address, for the checks that depend on where a call comes from.
#ifndef LOCKWARDEN_GATEWAY_NSM_NSM_TEST_FIXTURE_H_
#define LOCKWARDEN_GATEWAY_NSM_NSM_TEST_FIXTURE_H_

#include <rpc/rpc.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gateway/client/server_client.h"
#include "gateway/nsm/client_address_book.h"
#include "gateway/nsm/nsm_service.h"
#include "gateway/portmap/portmapper.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"
#include "gateway/xdr/sm_inter.h"
#include "gtest/gtest.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "lockwarden/v1/lock_service.grpc.pb.h"
#include "lockwarden/v1/monitor_service.grpc.pb.h"
#include "server/service/lock_server.h"
#include "server/store/memory_store.h"

namespace lockwarden::gateway::nsm::testing {

inline constexpr char kGatewayId[] = "gw-test";

// What a fake peer received.
struct ReceivedCall {
  std::string mon_name;
  int state = 0;
  std::string priv;  // 16 bytes for status callbacks, empty for SM_NOTIFY
  std::string peer;
};

// A fake RPC peer (remote statd or local lockd) on 127.0.0.1.
class FakePeer {
 public:
  FakePeer(asio::io_context& io, uint32_t prog, uint32_t vers, uint32_t proc,
           bool status_shape);
  uint16_t port() const { return server_->port(); }
  std::vector<ReceivedCall> calls() const;
  // Waits until at least `n` calls arrived or `timeout` passed.
  bool WaitForCalls(size_t n, absl::Duration timeout) const;

 private:
  Dispatcher dispatcher_;
  std::unique_ptr<RpcServer> server_;
  mutable absl::Mutex mu_;
  std::vector<ReceivedCall> calls_ ABSL_GUARDED_BY(mu_);
};

class NsmServiceTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Options the service is (re)created with; tests may change them before
  // StartNsm().
  NsmOptions DefaultOptions() const;
  void StartNsm(NsmOptions options);
  void StopNsm();

  void StartLockServer();
  void StopLockServer();

  // libtirpc UDP client to the NSM service (caller must clnt_destroy).
  CLIENT* NsmClient() const;
  // One call over a fresh NsmClient(); nullopt if the client could not be
  // made (NsmClient has reported it).
  std::optional<clnt_stat> CallNsm(rpcproc_t proc, xdrproc_t encoder,
                                   void* args, xdrproc_t decoder,
                                   void* result) const;
  // SM_MON through libtirpc; returns the result.
  sm_stat_res Mon(const std::string& mon_name, const std::string& my_name,
                  int prog, int vers, int proc, const std::string& priv);
  sm_stat_res Stat(const std::string& mon_name);
  bool SimuCrash();
  bool Notify(const std::string& mon_name, int state);

  // Dispatches one call to the NSM service as if it came from `peer` and
  // returns the raw reply (nullopt if none within 5 s).
  std::optional<std::string> DispatchFrom(const std::string& peer,
                                          uint32_t proc, xdrproc_t encoder,
                                          const void* args);
  // SM_NOTIFY {mon_name, state} through DispatchFrom(peer, ...): true if
  // the service answered it (a rejected notify is answered; one the server
  // could not record is not).
  bool NotifyAnsweredFrom(const std::string& peer, const std::string& mon_name,
                          int state);

  // gRPC helpers against the LockServer.
  v1::LockStatus LockFor(const std::string& client, int32_t client_state,
                         const std::string& fh);
  size_t CountLocks(const std::string& fh);
  // Opens our own WatchNotifications stream (the service must be stopped,
  // or the server hands events to its stream) and returns the first
  // pending event, or nullopt if none arrives within `wait`.
  std::optional<v1::NotificationEvent> FirstPendingNotification(
      absl::Duration wait = absl::Seconds(5));

  // Polls `done` every 20 ms until true or `timeout`.
  static bool Eventually(const std::function<bool()>& done,
                         absl::Duration timeout = absl::Seconds(10));

  FakeClock clock_;
  store::MemoryStore store_;
  int server_port_ = 0;
  std::unique_ptr<service::LockServer> lock_server_;
  std::unique_ptr<v1::LockService::Stub> lock_stub_;
  std::unique_ptr<v1::MonitorService::Stub> monitor_stub_;
  std::unique_ptr<v1::AdminService::Stub> admin_stub_;

  std::unique_ptr<IoThreadPool> pool_;
  std::unique_ptr<ServerClient> server_client_;
  std::unique_ptr<RpcClient> rpc_client_;
  ClientAddressBook book_;

  Dispatcher portmap_dispatcher_;
  Portmapper portmapper_;
  std::unique_ptr<RpcServer> portmap_server_;
  std::unique_ptr<FakePeer> statd_;
  std::unique_ptr<FakePeer> lockd_;

  std::unique_ptr<Dispatcher> nsm_dispatcher_;
  std::unique_ptr<NsmService> nsm_;
  std::unique_ptr<RpcServer> nsm_server_;
  // Stopped services and their dispatchers, kept until the I/O threads
  // are gone (calls still in flight may refer to them).
  std::vector<std::unique_ptr<Dispatcher>> retired_dispatchers_;
  std::vector<std::unique_ptr<NsmService>> retired_services_;
  int request_seq_ = 0;
};

}  // namespace lockwarden::gateway::nsm::testing

#endif  // LOCKWARDEN_GATEWAY_NSM_NSM_TEST_FIXTURE_H_
