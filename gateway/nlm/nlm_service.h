// NlmService: NLM (program 100021, versions 1, 3 and 4) on a Dispatcher,
// every procedure turned into asynchronous calls to lockwarden-server.
//
//   NlmService nlm(NlmServiceOptions{.gateway_name = "nfs.example"},
//                  &server_client, &callback_client, &grant_delivery);
//   LW_RETURN_IF_ERROR(nlm.Register(dispatcher));
//
// Procedures (one file per group, as NFS-Ganesha lays them out):
//   0  NULL                  void                        (nlm_service.cc)
//   1  TEST                  LockService.Test            (nlm_test.cc)
//   2  LOCK, 22 NM_LOCK      [MonitorService.Mon once per host, LOCK only]
//                            LockService.Lock            (nlm_lock.cc)
//   3  CANCEL                LockService.Cancel          (nlm_cancel.cc)
//   4  UNLOCK                LockService.Unlock          (nlm_unlock.cc)
//   5  GRANTED               answered DENIED: the gateway is only ever an
//                            NLM server, it has no blocked requests of its
//                            own, and DENIED is what Linux lockd answers a
//                            GRANTED that matches none   (nlm_async.cc)
//   6-10 *_MSG               the same logic; no RPC reply; the result goes
//                            to the caller's NLM as the *_RES call (proc + 5)
//                            with the same version and transport, the port
//                            found through the caller's rpcbind
//   11-14 *_RES              ignored (we never send *_MSG requests)
//   15 GRANTED_RES           acknowledges our GRANTED_MSG: GrantDelivery
//   16 statd callback        void reply, ignored: the gateway's NSM and the
//                            lock service share state, so a real statd that
//                            someone pointed at us has nothing to tell us
//   20 SHARE, 21 UNSHARE     LockService.Share/Unshare   (nlm_share.cc)
//   23 FREE_ALL              LockService.FreeAll, void   (nlm_free_all.cc)
// SHARE, UNSHARE, NM_LOCK and FREE_ALL exist in versions 3 and 4 only.
//
// Outcomes: the server's LockStatus mapped per version (version.h). When the
// server cannot be reached within ServerClient's failover wait the answer is
// DENIED_NOLOCKS (the client's lockd retries); a server INVALID_ARGUMENT is
// FAILED on v4 and DENIED_NOLOCKS on v1/v3. Requests are never dropped.
//
// Identity: the lock owner is (caller_name, svid, oh) (nlm_args.h OwnerOf);
// caller_name -> source address goes to `record_client_address` (the NSM's
// address book). Mutations carry request ids derived from the DRC key
// material (request_id.h).
//
// Monitoring: a monitored LOCK (not NM_LOCK) first registers the caller with
// MonitorService.Mon (mon_name = caller_name, my_id = {gateway name, 100021,
// 4, 16}, priv = 16 zero bytes), once per host per process (a bounded
// cache), like lockd's nsm_monitor before nlmsvc_lock. That registration is
// what makes the server queue SM_NOTIFY to the client after a real state
// loss. A failed or refused Mon answers DENIED_NOLOCKS.
//
// Thread safety: Register before serving; handlers run on any thread and
// never block; completions run on gRPC or io_context threads.
#ifndef LOCKWARDEN_GATEWAY_NLM_NLM_SERVICE_H_
#define LOCKWARDEN_GATEWAY_NLM_NLM_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/client/server_client.h"
#include "gateway/client/session_client.h"
#include "gateway/nlm/nlm_args.h"
#include "gateway/nlm/nlm_callback_client.h"
#include "gateway/rpc/dispatcher.h"

namespace lockwarden::gateway::nlm {

class GrantDelivery;

inline constexpr uint32_t kNlmStatusCallbackProc = 16;
inline constexpr size_t kNsmPrivBytes = 16;

struct NlmServiceOptions {
  // The gateway identity (--name): gateway_id on every server call, my_name
  // of the Mon registrations, caller_name of our callbacks.
  std::string gateway_name;
  // Hosts whose Mon registration this process remembers; past the limit the
  // memory is cleared (a repeated Mon is harmless: the server replaces it).
  size_t monitored_hosts_max = 65536;
  // Blocked locks are granted with GRANTED_MSG (like Linux lockd) when true,
  // with the synchronous GRANTED otherwise.
  bool use_granted_msg = true;
  // TEST, LOCK, CANCEL and UNLOCK go over one batched LockService.Session
  // stream (session_client.h) when true, as unary RPCs otherwise.
  bool use_session = true;
  // Called with (caller_name, normalised source address) of every request
  // that names its caller; may be empty.
  std::function<void(const std::string&, const std::string&)>
      record_client_address;
};

struct NlmServiceStats {
  uint64_t calls = 0;
  uint64_t edge_rejections = 0;  // oversize/empty fields refused
  uint64_t server_errors = 0;    // answered DENIED_NOLOCKS/FAILED
  uint64_t mon_calls = 0;
  uint64_t res_sent = 0;         // *_RES calls sent for *_MSG requests
  uint64_t res_failed = 0;
  uint64_t granted_res = 0;      // GRANTED_RES received
};

class NlmService {
 public:
  // `server` and `callbacks` must outlive the service; `grants` may be null
  // (GRANTED_RES are then only logged).
  NlmService(NlmServiceOptions options, ServerClient* server,
             NlmCallbackClient* callbacks, GrantDelivery* grants);
  NlmService(const NlmService&) = delete;
  NlmService& operator=(const NlmService&) = delete;

  // Registers program 100021 versions 1, 3 and 4 with `dispatcher`.
  absl::Status Register(Dispatcher& dispatcher);

  NlmServiceStats stats() const;
  // Requests being served (for a bounded wait at shutdown).
  int64_t in_flight() const { return in_flight_.load(); }
  // Waits until no request is in flight or `timeout` passed; true if idle.
  bool WaitIdle(absl::Duration timeout) const;

  // How an NLM request is answered.
  enum class Mode { kSync, kMsg };

  // One request being served (shared by the asynchronous steps).
  struct Pending {
    std::unique_ptr<RpcCall> call;
    Mode mode = Mode::kSync;
    ResultKind kind = ResultKind::kRes;
    uint32_t vers = 4;
    std::string cookie;
    std::string request_id;  // mutations only
    std::atomic<int64_t>* in_flight = nullptr;  // the service's counter
    ~Pending() {
      if (in_flight != nullptr) in_flight->fetch_sub(1);
    }
  };
  using PendingPtr = std::shared_ptr<Pending>;

 private:
  enum class LockOp { kTest, kLock, kNmLock, kCancel, kUnlock, kGranted };

  // Registration (nlm_service.cc, nlm_async.cc).
  absl::Status RegisterVersion(Dispatcher& d, uint32_t vers);
  template <typename WireArgs>
  absl::Status RegisterLockProc(Dispatcher& d, uint32_t vers, uint32_t proc,
                                const char* name,
                                bool_t (*decode)(XDR*, WireArgs*),
                                xdrproc_t result_encoder, LockOp op,
                                Mode mode);
  absl::Status RegisterResProcs(Dispatcher& d, uint32_t vers);

  // Shared steps (nlm_service.cc).
  PendingPtr Begin(std::unique_ptr<RpcCall> call, Mode mode, ResultKind kind,
                   uint32_t vers, std::string cookie, bool mutation);
  void Finish(const PendingPtr& p, const NlmOutcome& outcome);
  void SendRes(const PendingPtr& p, const NlmOutcome& outcome);
  void RecordCaller(const RpcCall& call, const std::string& caller_name);
  // Refuses bad fields; true if it answered.
  bool RejectAtEdge(const PendingPtr& p, const std::string& caller_name,
                    const std::string& fh, const std::string& oh);
  // Outcome of a failed server call (logged).
  NlmOutcome ServerFailure(const PendingPtr& p, const grpc::Status& status,
                           const char* rpc);
  void Dispatch(LockOp op, const PendingPtr& p, NlmArgs args);

  // The procedures (one file each).
  void DoTest(const PendingPtr& p, NlmArgs args);       // nlm_test.cc
  void DoLock(const PendingPtr& p, NlmArgs args, bool monitored);  // nlm_lock.cc
  void EnsureMonitored(const std::string& caller_name,
                       std::function<void(absl::Status)> done);
  void SendLock(const PendingPtr& p, NlmArgs args, bool monitored);
  void DoCancel(const PendingPtr& p, NlmArgs args);     // nlm_cancel.cc
  void DoUnlock(const PendingPtr& p, NlmArgs args);     // nlm_unlock.cc
  void DoShare(const PendingPtr& p, NlmShareArgs args, bool share);  // nlm_share.cc
  void DoFreeAll(const PendingPtr& p, NlmNotifyArgs args);  // nlm_free_all.cc
  void OnGrantedRes(std::unique_ptr<RpcCall> call, uint32_t vers,
                    std::string cookie, v1::LockStatus status);  // nlm_async.cc
  // Sends one lock call to the server; `rpc` names it in logs. `on_ok`
  // gets the result of a successful call; a failure is answered here.
  void CallServer(const PendingPtr& p, v1::SessionCall call, const char* rpc,
                  std::function<void(const v1::SessionResult&)> on_ok);

  const NlmServiceOptions options_;
  ServerClient* const server_;
  NlmCallbackClient* const callbacks_;
  GrantDelivery* const grants_;
  // Random per process: Mon request ids must differ between processes so a
  // new process re-registers even if an old registration was removed.
  const std::string process_nonce_;

  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::string> monitored_ ABSL_GUARDED_BY(mu_);

  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> edge_rejections_{0};
  std::atomic<uint64_t> server_errors_{0};
  std::atomic<uint64_t> mon_calls_{0};
  std::atomic<uint64_t> res_sent_{0};
  std::atomic<uint64_t> res_failed_{0};
  std::atomic<uint64_t> granted_res_{0};
  // Last, so destroyed first: its destructor ends the stream and completes
  // calls still pending, whose callbacks use the members above.
  std::unique_ptr<SessionClient> session_;
};

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_NLM_SERVICE_H_
