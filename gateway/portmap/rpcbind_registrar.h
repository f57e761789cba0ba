// Registration of the gateway's programs with the host's rpcbind, through
// libtirpc's rpcb_set/rpcb_unset (the local rpcbind is reached over its
// unix socket or 127.0.0.1:111).
//
//   RpcbindRegistrar registrar;
//   absl::Status s = registrar.Register(NLM_PROG, NLM4_VERS, "udp", port);
//   // Unavailable: "host rpcbind is not reachable (is rpcbind running?) ..."
//
// Use this when the host runs rpcbind; otherwise serve the embedded
// Portmapper (portmapper.h) on port 111. Every mapping registered through
// one registrar is removed by UnregisterAll() and by the destructor.
//
// The calls block (libtirpc's RPC client): call from start-up/shutdown
// code, never from an io_context thread.
//
// Thread safety: thread-safe (one mutex around the libtirpc calls and the
// list of registrations).
#ifndef LOCKWARDEN_GATEWAY_PORTMAP_RPCBIND_REGISTRAR_H_
#define LOCKWARDEN_GATEWAY_PORTMAP_RPCBIND_REGISTRAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "gateway/portmap/registration_table.h"

namespace lockwarden::gateway {

class RpcbindRegistrar {
 public:
  RpcbindRegistrar() = default;
  ~RpcbindRegistrar();
  RpcbindRegistrar(const RpcbindRegistrar&) = delete;
  RpcbindRegistrar& operator=(const RpcbindRegistrar&) = delete;

  // Maps (prog, vers, netid) to `port` on every local address, replacing
  // an earlier mapping. netid: "udp", "tcp", "udp6" or "tcp6".
  // InvalidArgument for another netid; Unavailable if rpcbind cannot be
  // reached or refuses.
  absl::Status Register(uint32_t prog, uint32_t vers, const std::string& netid,
                        uint16_t port);
  absl::Status Unregister(uint32_t prog, uint32_t vers,
                          const std::string& netid);
  // Best effort; returns the first error.
  absl::Status UnregisterAll();

 private:
  absl::Status UnregisterLocked(uint32_t prog, uint32_t vers,
                                const std::string& netid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::vector<PortRegistration> registered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_PORTMAP_RPCBIND_REGISTRAR_H_
