// Calls from the gateway to a client's NLM service: *_RES answers to
// *_MSG requests, and GRANTED / GRANTED_MSG for blocked locks.
//
// The client's NLM port is found like lockd finds it: PMAP GETPORT at the
// client's rpcbind (port `rpcbind_port`, 111 in production) for
// (NLM, version, transport). Answers are cached for `port_cache_ttl` (a
// client's lockd port is stable, but changes when lockd restarts) in a
// table of at most `port_cache_entries_max` entries; a failed call forgets
// the entry so the next attempt asks again. A target with an explicit port
// (CallbackTarget.client_port) skips the lookup.
//
// Arguments are encoded before the call returns (the port lookup is
// asynchronous, so the caller's argument struct need not outlive it).
//
// Thread safety: thread-safe. Callbacks run exactly once, on the RpcClient's
// io_context threads, except that ResolvePort answers a cached or explicit
// port inline and Send/Call report an argument encoding error inline.
#ifndef LOCKWARDEN_GATEWAY_NLM_NLM_CALLBACK_CLIENT_H_
#define LOCKWARDEN_GATEWAY_NLM_NLM_CALLBACK_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/rpc/rpc_client.h"

namespace lockwarden::gateway::nlm {

struct NlmCallbackClientOptions {
  uint16_t rpcbind_port = 111;
  absl::Duration port_cache_ttl = absl::Seconds(30);
  size_t port_cache_entries_max = 4096;
  // AUTH_SYS machine name of our calls (the gateway name); Linux lockd
  // calls its clients with AUTH_UNIX too.
  std::string machine_name = "lockwarden";
};

// Where to call: the client's address, NLM version and transport, and an
// explicit port (0 = ask the client's rpcbind).
struct NlmPeer {
  std::string address;
  uint16_t port = 0;
  uint32_t vers = 4;
  TransportKind transport = TransportKind::kUdp;
};

class NlmCallbackClient {
 public:
  NlmCallbackClient(RpcClient* rpc, NlmCallbackClientOptions options);
  NlmCallbackClient(const NlmCallbackClient&) = delete;
  NlmCallbackClient& operator=(const NlmCallbackClient&) = delete;

  // A call without reply (*_MSG, *_RES): `done` when sent.
  void Send(const NlmPeer& peer, uint32_t proc, xdrproc_t args_encoder,
            const void* args, std::function<void(absl::Status)> done);
  // A call with a reply (GRANTED).
  void Call(const NlmPeer& peer, uint32_t proc, xdrproc_t args_encoder,
            const void* args,
            std::function<void(absl::StatusOr<RpcReply>)> done);

  // The port for `peer` (cached, explicit, or from the client's rpcbind).
  void ResolvePort(const NlmPeer& peer,
                   std::function<void(absl::StatusOr<uint16_t>)> done);
  void ForgetPort(const NlmPeer& peer);

  size_t cached_ports() const;

 private:
  using Key = std::tuple<std::string, uint32_t, TransportKind>;
  struct Entry {
    uint16_t port = 0;
    absl::Time expires;
  };
  // Runs `fn(port)` once the port is known, or `fail(status)`.
  void WithPort(const NlmPeer& peer, std::function<void(uint16_t)> fn,
                std::function<void(absl::Status)> fail);
  CallCredentials Credentials() const;

  RpcClient* const rpc_;
  const NlmCallbackClientOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<Key, Entry> ports_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_NLM_CALLBACK_CLIENT_H_
