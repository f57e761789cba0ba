// Test-only: an in-process gateway NLM stack on loopback.
//
//   lockwarden-server (LockServer on a MemoryStore, 127.0.0.1:ephemeral)
//   <- ServerClient <- NlmService + GrantDelivery on an RpcServer
//   (127.0.0.1:ephemeral, UDP + TCP)
//
// plus a fake client host: an embedded Portmapper (the "client's rpcbind")
// and a client NLM callback server that records GRANTED/GRANTED_MSG and the
// *_RES answers, and (optionally) answers GRANTED_MSG with GRANTED_RES.
// NlmCallbackClient asks that portmapper for the client's NLM port, so the
// whole callback path, GETPORT included, is exercised.
//
// Thread safety: the recorder is thread-safe; the rest is driven from the
// test thread.
#ifndef LOCKWARDEN_GATEWAY_NLM_NLM_TEST_ENV_H_
#define LOCKWARDEN_GATEWAY_NLM_NLM_TEST_ENV_H_

#include <rpc/rpc.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gateway/client/server_client.h"
#include "gateway/nlm/grant_delivery.h"
#include "gateway/nlm/nlm_callback_client.h"
#include "gateway/nlm/nlm_service.h"
#include "gateway/portmap/portmapper.h"
#include "gateway/rpc/duplicate_request_cache.h"
#include "gateway/rpc/rpc_client.h"
#include "gateway/rpc/transport.h"
#include "lockwarden/v1/admin_service.grpc.pb.h"
#include "server/service/lock_server.h"

namespace lockwarden::gateway::nlm {

// What the fake client's NLM received.
struct ClientNlmEvent {
  uint32_t vers = 0;
  uint32_t proc = 0;
  std::string cookie;
  uint32_t stat = 0;   // *_RES: the status
  uint32_t svid = 0;   // GRANTED*: the lock's svid
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string caller_name;
};

struct NlmTestEnvOptions {
  // Dead server (nothing listens) instead of a LockServer.
  bool server_down = false;
  int64_t failover_wait_ms = 3000;
  int64_t rpc_timeout_ms = 1000;
  bool use_granted_msg = true;
  // The fake client answers GRANTED_MSG with GRANTED_RES(GRANTED).
  bool client_answers_granted = true;
  absl::Duration grant_retry_interval = absl::Seconds(1);
  int64_t grant_timeout_ms = 60000;
};

class NlmTestEnv {
 public:
  explicit NlmTestEnv(NlmTestEnvOptions options = {});
  ~NlmTestEnv();

  uint16_t gateway_port() const { return gateway_server_->port(); }
  uint16_t client_nlm_port() const { return client_server_->port(); }
  NlmService& nlm() { return *nlm_; }
  GrantDelivery& grants() { return *grants_; }
  DuplicateRequestCache& drc() { return drc_; }
  Dispatcher& dispatcher() { return *dispatcher_; }
  v1::AdminService::Stub& admin() { return *admin_; }
  RpcClient& rpc() { return *rpc_; }
  ServerClient& server_client() { return *server_client_; }
  asio::io_context& io() { return pool_.context(); }

  // Simulates a gateway process restart without any goodbye: the grant
  // stream and the NLM service are replaced (acks in flight are not sent);
  // the gateway's port changes. The server and the client host stay.
  void RestartGateway();
  void set_client_answers_granted(bool answer) {
    client_answers_granted_.store(answer);
  }

  // libtirpc clients to the gateway.
  CLIENT* Client(bool tcp, uint32_t vers) const;

  std::vector<ClientNlmEvent> client_events() const;
  // Waits (bounded) until the fake client received `proc`; true if so.
  bool WaitForClientEvent(uint32_t proc, absl::Duration timeout) const;
  std::vector<std::pair<std::string, std::string>> recorded_addresses() const;

  std::vector<v1::Lock> ListLocks();
  std::vector<v1::Waiter> ListWaiters();

 private:
  void StartClientHost();
  void StartGateway();
  void Record(ClientNlmEvent e);

  const NlmTestEnvOptions options_;
  RealClock clock_;
  std::unique_ptr<service::LockServer> server_;
  std::unique_ptr<ServerClient> server_client_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  IoThreadPool pool_{2};
  std::unique_ptr<RpcClient> rpc_;
  // The fake client host.
  std::unique_ptr<Dispatcher> client_dispatcher_;
  std::unique_ptr<RpcServer> client_server_;
  std::unique_ptr<Portmapper> client_portmapper_;
  std::unique_ptr<Dispatcher> client_pm_dispatcher_;
  std::unique_ptr<RpcServer> client_pm_server_;
  // The gateway.
  DuplicateRequestCache drc_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<NlmCallbackClient> callbacks_;
  std::unique_ptr<GrantDelivery> grants_;
  std::unique_ptr<NlmService> nlm_;
  std::unique_ptr<RpcServer> gateway_server_;
  std::vector<std::shared_ptr<void>> retired_;  // see RestartGateway

  std::atomic<bool> client_answers_granted_;
  mutable absl::Mutex mu_;
  std::vector<ClientNlmEvent> events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> addresses_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_NLM_TEST_ENV_H_
