// NLM arguments and results in the gateway's version-independent form, and
// their conversions from and to the rpcgen wire types of every version.
//
// Decoded wire arguments (nlm_lockargs, nlm4_lockargs, ...) are turned into
// NlmArgs/NlmShareArgs at once (ranges normalised by version.h); the
// handlers never see a wire type. Results go the other way through
// WithWireResult, which builds the wire struct for the call's version on the
// stack and hands it to a sink (RpcCall::Reply, or an outgoing *_RES call).
//
// The lock owner is (caller_name, svid, oh): OwnerOf() is the one place
// that builds it (docs/protocol.md "Lock owners"). Shares have no svid:
// ShareOwnerOf() is (caller_name, oh).
//
// Thread safety: pure functions over values.
#ifndef LOCKWARDEN_GATEWAY_NLM_NLM_ARGS_H_
#define LOCKWARDEN_GATEWAY_NLM_NLM_ARGS_H_

#include <rpc/rpc.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gateway/nlm/version.h"
#include "gateway/xdr/nlm_prot.h"
#include "lockwarden/v1/common.pb.h"

namespace lockwarden::gateway::nlm {

// nlm_lock / nlm4_lock, normalised.
struct NlmLock {
  std::string caller_name;
  std::string fh;
  std::string oh;
  uint32_t svid = 0;
  Range64 range;
};

// Any of testargs, lockargs, cancargs, unlockargs (fields a form lacks stay
// at their defaults).
struct NlmArgs {
  uint32_t vers = NLM4_VERS;
  std::string cookie;
  bool block = false;
  bool exclusive = false;
  bool reclaim = false;
  int32_t state = 0;
  NlmLock lock;
};

struct NlmShareArgs {
  uint32_t vers = NLM4_VERS;
  std::string cookie;
  std::string caller_name;
  std::string fh;
  std::string oh;
  uint32_t mode = fsm_DN;    // fsh_mode (deny)
  uint32_t access = fsa_NONE;  // fsh_access
  bool reclaim = false;
};

struct NlmNotifyArgs {
  std::string name;
  int32_t state = 0;
};

std::string NetobjBytes(const netobj& obj);
// A netobj viewing `bytes` (which must outlive it; libtirpc's netobj is not
// const-correct, the bytes are not modified by encoding).
netobj NetobjOf(const std::string& bytes);

NlmArgs FromWire(const nlm_testargs& a, uint32_t vers);
NlmArgs FromWire(const nlm4_testargs& a);
NlmArgs FromWire(const nlm_lockargs& a, uint32_t vers);
NlmArgs FromWire(const nlm4_lockargs& a);
NlmArgs FromWire(const nlm_cancargs& a, uint32_t vers);
NlmArgs FromWire(const nlm4_cancargs& a);
NlmArgs FromWire(const nlm_unlockargs& a, uint32_t vers);
NlmArgs FromWire(const nlm4_unlockargs& a);
NlmShareArgs FromWire(const nlm_shareargs& a, uint32_t vers);
NlmShareArgs FromWire(const nlm4_shareargs& a);
NlmNotifyArgs FromWire(const nlm_notify& a);
NlmNotifyArgs FromWire(const nlm4_notify& a);

v1::LockOwner OwnerOf(const NlmLock& lock);
v1::ShareOwner ShareOwnerOf(const NlmShareArgs& share);
// fsh_access/fsh_mode -> the proto enums (+1); out of range -> UNSPECIFIED.
v1::ShareAccess ShareAccessOf(uint32_t access);
v1::ShareDeny ShareDenyOf(uint32_t mode);

// A conflicting lock for a TEST answer.
struct NlmHolder {
  bool exclusive = false;
  uint32_t svid = 0;
  std::string oh;
  Range64 range;
};
NlmHolder HolderOf(const v1::LockHolder& holder);

// The outcome of one NLM procedure, before version encoding.
struct NlmOutcome {
  v1::LockStatus status = v1::LOCK_STATUS_FAILED;
  std::optional<NlmHolder> holder;  // TEST with DENIED
  int32_t share_sequence = 0;       // SHARE/UNSHARE
};

// Which result type the procedure has.
enum class ResultKind {
  kRes,       // nlm_res / nlm4_res: LOCK, CANCEL, UNLOCK, NM_LOCK, GRANTED
  kTestRes,   // nlm_testres / nlm4_testres: TEST
  kShareRes,  // nlm_shareres / nlm4_shareres: SHARE, UNSHARE
};

using WireResultSink = std::function<absl::Status(xdrproc_t encoder,
                                                  const void* result)>;

// Builds the wire result of `kind` for `vers` and passes it to `sink`
// (valid only during the call). A v1/v3 TEST holder that starts past
// 2^32 - 1 turns the answer into DENIED_NOLOCKS (see version.h).
absl::Status WithWireResult(ResultKind kind, uint32_t vers,
                            const std::string& cookie,
                            const NlmOutcome& outcome,
                            const WireResultSink& sink);

// The NLM status carried by a *_RES or GRANTED reply, decoded for `vers`
// (nlm_res or nlm4_res bytes). Decoding is the caller's: these take the
// decoded struct.
v1::LockStatus StatusOf(const nlm_res& res);
v1::LockStatus StatusOf(const nlm4_res& res);

}  // namespace lockwarden::gateway::nlm

#endif  // LOCKWARDEN_GATEWAY_NLM_NLM_ARGS_H_
