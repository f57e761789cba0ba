// Transport-independent RPC dispatch: a registry of programs and procedures
// and the code that turns one received CALL into exactly one outcome.
//
//   Dispatcher d(DispatcherOptions{.drc = &cache});
//   d.RegisterProcedure(NLM_PROG, NLM4_VERS, NLM4_LOCK,
//       MakeProcedure("NLM4_LOCK", xdr_nlm4_lockargs, xdr_nlm4_res,
//           [&](std::unique_ptr<RpcCall> call) {
//             nlm4_lockargs* args = call->args<nlm4_lockargs>();
//             ... start async work; later, on any thread:
//             nlm4_res res = ...;  call->Reply(&res);
//           }));
//   // transport, per received message:
//   d.Dispatch(context, bytes, [](std::optional<std::string> reply) {...});
//
// Dispatch decodes the header and answers, in this order:
//   not a CALL / truncated header       -> dropped (no reply)
//   rpcvers != 2                        -> MSG_DENIED RPC_MISMATCH (2, 2)
//   credential not AUTH_NONE/AUTH_SYS   -> MSG_DENIED AUTH_ERROR AUTH_BADCRED
//   program not registered              -> PROG_UNAVAIL
//   version not registered              -> PROG_MISMATCH (lowest, highest)
//   procedure not registered            -> PROC_UNAVAIL
//   DRC hit (completed)                 -> the cached reply, handler not run
//   DRC hit (in progress)               -> dropped (absorbed)
//   arguments do not decode             -> GARBAGE_ARGS
//   otherwise                           -> the handler runs
//
// The handler is called on the dispatching thread and must not block: it
// starts asynchronous work and keeps the RpcCall until it answers with
// Reply (results), ReplyNone (procedures without a reply, e.g. NLM *_MSG)
// or ReplyError (e.g. SYSTEM_ERR). Destroying an RpcCall that never
// answered sends nothing and forgets the DRC entry, so a retransmission is
// executed again.
//
// Contract with the transport: the ReplySink passed to Dispatch is called
// exactly once per Dispatch, with the reply bytes (one RPC message, without
// record marking) or std::nullopt when nothing is to be sent; possibly on
// another thread, possibly after Dispatch returned. That call is how a
// transport counts calls in flight.
//
// Thread safety: RegisterProcedure and Dispatch may be called from any
// thread (the registry is behind a reader/writer mutex); register before
// serving. An RpcCall is owned by one thread at a time.
#ifndef LOCKWARDEN_GATEWAY_RPC_DISPATCHER_H_
#define LOCKWARDEN_GATEWAY_RPC_DISPATCHER_H_

#include <rpc/rpc.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "gateway/rpc/duplicate_request_cache.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {

enum class TransportKind { kUdp, kTcp };

// Where a call came from. Addresses are normalised (IPv4-mapped IPv6 ->
// IPv4 dotted quad; see NormalizeAddress in transport.h).
struct CallContext {
  TransportKind transport = TransportKind::kUdp;
  std::string peer_address;
  uint16_t peer_port = 0;
  // The address the call arrived on: the connection's for TCP, the
  // socket's bound address for UDP (which is "0.0.0.0"/"::" on a wildcard
  // socket, where the datagram's destination is not known).
  std::string local_address;
  uint16_t local_port = 0;
  bool peer_is_loopback = false;
};

using ReplySink = std::function<void(std::optional<std::string> reply)>;

class RpcCall;

// Sees every call that reached a procedure exactly once, when it is answered
// (GARBAGE_ARGS included) or dropped unanswered; gateway/metrics counts and
// times calls through it. Runs on the answering thread; must not block.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  // `reply`: the bytes sent, nullopt when nothing is sent (no-reply
  // procedures, or dropped). call.received_at() is when it was decoded.
  virtual void OnAnswered(const RpcCall& call,
                          std::optional<absl::string_view> reply) = 0;
};
using ProcedureHandler = std::function<void(std::unique_ptr<RpcCall> call)>;

struct ProcedureSpec {
  std::string name;
  xdrproc_t args_decoder = nullptr;  // XdrVoid() for void
  size_t args_size = 0;
  xdrproc_t result_encoder = nullptr;  // XdrVoid() for void
  // Replies go through the duplicate request cache. NULL procedures and
  // read-only lookups may turn this off.
  bool use_drc = true;
  ProcedureHandler handler;
};

// Typed constructors: the argument size and decoders come from the rpcgen
// routine signatures.
template <typename Args, typename Result>
ProcedureSpec MakeProcedure(std::string name, bool_t (*args)(XDR*, Args*),
                            bool_t (*result)(XDR*, Result*),
                            ProcedureHandler handler) {
  return ProcedureSpec{std::move(name), XdrProc(args), sizeof(Args),
                       XdrProc(result), true, std::move(handler)};
}
// Void arguments, typed result.
template <typename Result>
ProcedureSpec MakeVoidArgsProcedure(std::string name,
                                    bool_t (*result)(XDR*, Result*),
                                    ProcedureHandler handler) {
  return ProcedureSpec{std::move(name), XdrVoid(), 0, XdrProc(result), true,
                       std::move(handler)};
}
// Typed arguments, void result (NLM *_MSG/*_RES, FREE_ALL, SM_NOTIFY).
template <typename Args>
ProcedureSpec MakeVoidResultProcedure(std::string name,
                                      bool_t (*args)(XDR*, Args*),
                                      ProcedureHandler handler) {
  return ProcedureSpec{std::move(name), XdrProc(args), sizeof(Args),
                       XdrVoid(), true, std::move(handler)};
}
// void -> void (NULL procedures, SM_SIMU_CRASH).
ProcedureSpec MakeVoidProcedure(std::string name, ProcedureHandler handler);

// One received call being served; see the file comment for the contract.
class RpcCall {
 public:
  ~RpcCall();
  RpcCall(const RpcCall&) = delete;
  RpcCall& operator=(const RpcCall&) = delete;

  const CallContext& context() const { return context_; }
  const CallHeader& header() const { return header_; }
  const ProcedureSpec& procedure() const { return *spec_; }

  // The decoded arguments; nullptr if T's size does not match the
  // registered decoder (a registration bug) or the procedure takes void.
  template <typename T>
  T* args() {
    return sizeof(T) == spec_->args_size ? static_cast<T*>(args_raw())
                                         : nullptr;
  }
  void* args_raw() { return args_.get(); }

  // Encodes `result` with the procedure's encoder and sends it. Errors:
  // FailedPrecondition if already answered; InvalidArgument if the result
  // does not encode (then SYSTEM_ERR is sent instead).
  absl::Status Reply(const void* result);
  // Sends nothing (the procedure has no reply).
  absl::Status ReplyNone();
  // Sends an accepted error reply (SYSTEM_ERR, GARBAGE_ARGS, ...).
  absl::Status ReplyError(AcceptStat stat);

  bool answered() const { return answered_; }
  // When the dispatcher created the call (set only with a CallObserver).
  absl::Time received_at() const { return received_at_; }

 private:
  friend class Dispatcher;
  RpcCall(CallContext context, CallHeader header,
          std::shared_ptr<const ProcedureSpec> spec, ReplySink sink,
          DuplicateRequestCache* drc, std::optional<DrcKey> drc_key,
          const Clock* clock, CallObserver* observer);
  void Observe(const std::optional<std::string>& reply);
  absl::Status Finish(std::optional<std::string> reply);
  // The arguments did not decode: GARBAGE_ARGS, and the DRC entry goes.
  void AnswerGarbageArgs();

  const CallContext context_;
  const CallHeader header_;
  const std::shared_ptr<const ProcedureSpec> spec_;
  std::unique_ptr<std::max_align_t[]> args_;  // zeroed, args_size bytes
  ReplySink sink_;
  DuplicateRequestCache* const drc_;
  const std::optional<DrcKey> drc_key_;
  const Clock* const clock_;
  CallObserver* const observer_;
  absl::Time received_at_;
  bool args_decoded_ = false;
  bool answered_ = false;
};

struct DispatcherOptions {
  DuplicateRequestCache* drc = nullptr;  // optional, not owned
  const Clock* clock = nullptr;          // defaults to a RealClock
  CallObserver* observer = nullptr;      // optional, not owned
};

struct DispatcherStats {
  uint64_t calls = 0;
  uint64_t dropped = 0;  // malformed or absorbed retransmissions
  uint64_t prog_unavail = 0;
  uint64_t prog_mismatch = 0;
  uint64_t proc_unavail = 0;
  uint64_t garbage_args = 0;
  uint64_t auth_errors = 0;
  uint64_t rpc_mismatch = 0;
  uint64_t drc_replays = 0;
};

class Dispatcher {
 public:
  explicit Dispatcher(DispatcherOptions options = {});
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // AlreadyExists if (prog, vers, proc) is taken; InvalidArgument if the
  // spec has no handler or decoders.
  absl::Status RegisterProcedure(uint32_t prog, uint32_t vers, uint32_t proc,
                                 ProcedureSpec spec);

  // Lowest and highest registered version of `prog`, if any.
  std::optional<std::pair<uint32_t, uint32_t>> VersionRange(
      uint32_t prog) const;

  void Dispatch(const CallContext& context, absl::string_view message,
                ReplySink sink);

  DispatcherStats stats() const;

 private:
  struct Program {
    // (vers, proc) -> spec; ordered so the version range is first/last.
    std::map<std::pair<uint32_t, uint32_t>,
             std::shared_ptr<const ProcedureSpec>>
        procedures;
  };
  // Looks up (prog, vers, proc) or produces the error reply.
  std::shared_ptr<const ProcedureSpec> Resolve(const CallHeader& h,
                                               std::string* error_reply);
  // Answers a call whose header is unusable; false if the header is fine.
  bool AnswerHeaderProblem(const CallContext& context,
                           const DecodedCall& decoded, ReplySink& sink);
  // Answers a retransmission from the DRC; false for a new call.
  bool AnswerFromDrc(const DrcKey& key, ReplySink& sink);
  void Count(uint64_t DispatcherStats::*counter);

  DuplicateRequestCache* const drc_;
  CallObserver* const observer_;
  RealClock real_clock_;
  const Clock* const clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint32_t, Program> programs_ ABSL_GUARDED_BY(mu_);
  DispatcherStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_DISPATCHER_H_
