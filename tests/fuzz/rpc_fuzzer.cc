// libFuzzer target over the gateway's network decode path.
//
// Input format: the first byte selects a mode, the rest is the payload.
//   mode % 3 == 0: the payload is one UDP datagram: RPC call header decode,
//                  dispatch (program/version/procedure lookup, DRC) and the
//                  rpcgen decoding of the arguments of every NLM v1/v3/v4,
//                  NSM and portmapper procedure.
//   mode % 3 == 1: the payload is a TCP byte stream: the record-marking
//                  decoder, fed in chunks of (second byte % 61 + 1) bytes,
//                  and every completed record dispatched as above.
//   mode % 3 == 2: the payload is an RPC reply (the client side):
//                  DecodeReplyHeader and DecodeReply with result decoders.
//
// NLM and NSM handlers only free their arguments (the RpcCall does it);
// portmapper handlers run for real. Invariants checked: every reply the
// dispatcher produces is itself a well-formed reply with the call's xid,
// and the sink is called exactly once per dispatch.
//
// Build and run: tests/fuzz/run_fuzz.sh (clang-14 + libFuzzer, ASan, UBSan).
// Without libFuzzer, rpc_fuzzer_corpus_test runs the seed corpus through
// LLVMFuzzerTestOneInput as a regular unit test.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "gateway/portmap/portmapper.h"
#include "gateway/rpc/dispatcher.h"
#include "gateway/rpc/record_marking.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/xdr/nlm_prot.h"
#include "gateway/xdr/sm_inter.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {
namespace {

void FreeArgsOnly(std::unique_ptr<RpcCall> call) {
  call->ReplyNone().IgnoreError();
}

template <typename Args>
void Register(Dispatcher& d, uint32_t prog, uint32_t vers, uint32_t proc,
              bool_t (*args)(XDR*, Args*)) {
  ProcedureSpec spec =
      MakeVoidResultProcedure("fuzz", args, FreeArgsOnly);
  if (!d.RegisterProcedure(prog, vers, proc, std::move(spec)).ok()) abort();
}

void RegisterVoid(Dispatcher& d, uint32_t prog, uint32_t vers, uint32_t proc) {
  if (!d.RegisterProcedure(prog, vers, proc,
                           MakeVoidProcedure("fuzz", FreeArgsOnly))
           .ok()) {
    abort();
  }
}

void RegisterNlm13(Dispatcher& d, uint32_t vers) {
  RegisterVoid(d, NLM_PROG, vers, NLMPROC_NULL);
  Register(d, NLM_PROG, vers, NLMPROC_TEST, xdr_nlm_testargs);
  Register(d, NLM_PROG, vers, NLMPROC_LOCK, xdr_nlm_lockargs);
  Register(d, NLM_PROG, vers, NLMPROC_CANCEL, xdr_nlm_cancargs);
  Register(d, NLM_PROG, vers, NLMPROC_UNLOCK, xdr_nlm_unlockargs);
  Register(d, NLM_PROG, vers, NLMPROC_GRANTED, xdr_nlm_testargs);
  Register(d, NLM_PROG, vers, NLMPROC_TEST_MSG, xdr_nlm_testargs);
  Register(d, NLM_PROG, vers, NLMPROC_LOCK_MSG, xdr_nlm_lockargs);
  Register(d, NLM_PROG, vers, NLMPROC_CANCEL_MSG, xdr_nlm_cancargs);
  Register(d, NLM_PROG, vers, NLMPROC_UNLOCK_MSG, xdr_nlm_unlockargs);
  Register(d, NLM_PROG, vers, NLMPROC_GRANTED_MSG, xdr_nlm_testargs);
  Register(d, NLM_PROG, vers, NLMPROC_TEST_RES, xdr_nlm_testres);
  Register(d, NLM_PROG, vers, NLMPROC_LOCK_RES, xdr_nlm_res);
  Register(d, NLM_PROG, vers, NLMPROC_CANCEL_RES, xdr_nlm_res);
  Register(d, NLM_PROG, vers, NLMPROC_UNLOCK_RES, xdr_nlm_res);
  Register(d, NLM_PROG, vers, NLMPROC_GRANTED_RES, xdr_nlm_res);
  Register(d, NLM_PROG, vers, NLMPROC_SM_NOTIFY, xdr_nlm_sm_status);
  if (vers == NLM_VERSX) {
    Register(d, NLM_PROG, vers, NLMPROC_SHARE, xdr_nlm_shareargs);
    Register(d, NLM_PROG, vers, NLMPROC_UNSHARE, xdr_nlm_shareargs);
    Register(d, NLM_PROG, vers, NLMPROC_NM_LOCK, xdr_nlm_lockargs);
    Register(d, NLM_PROG, vers, NLMPROC_FREE_ALL, xdr_nlm_notify);
  }
}

void RegisterNlm4(Dispatcher& d) {
  const uint32_t v = NLM4_VERS;
  RegisterVoid(d, NLM_PROG, v, NLMPROC4_NULL);
  Register(d, NLM_PROG, v, NLMPROC4_TEST, xdr_nlm4_testargs);
  Register(d, NLM_PROG, v, NLMPROC4_LOCK, xdr_nlm4_lockargs);
  Register(d, NLM_PROG, v, NLMPROC4_CANCEL, xdr_nlm4_cancargs);
  Register(d, NLM_PROG, v, NLMPROC4_UNLOCK, xdr_nlm4_unlockargs);
  Register(d, NLM_PROG, v, NLMPROC4_GRANTED, xdr_nlm4_testargs);
  Register(d, NLM_PROG, v, NLMPROC4_TEST_MSG, xdr_nlm4_testargs);
  Register(d, NLM_PROG, v, NLMPROC4_LOCK_MSG, xdr_nlm4_lockargs);
  Register(d, NLM_PROG, v, NLMPROC4_CANCEL_MSG, xdr_nlm4_cancargs);
  Register(d, NLM_PROG, v, NLMPROC4_UNLOCK_MSG, xdr_nlm4_unlockargs);
  Register(d, NLM_PROG, v, NLMPROC4_GRANTED_MSG, xdr_nlm4_testargs);
  Register(d, NLM_PROG, v, NLMPROC4_TEST_RES, xdr_nlm4_testres);
  Register(d, NLM_PROG, v, NLMPROC4_LOCK_RES, xdr_nlm4_res);
  Register(d, NLM_PROG, v, NLMPROC4_CANCEL_RES, xdr_nlm4_res);
  Register(d, NLM_PROG, v, NLMPROC4_UNLOCK_RES, xdr_nlm4_res);
  Register(d, NLM_PROG, v, NLMPROC4_GRANTED_RES, xdr_nlm4_res);
  Register(d, NLM_PROG, v, NLMPROC4_SM_NOTIFY, xdr_nlm_sm_status);
  Register(d, NLM_PROG, v, NLMPROC4_SHARE, xdr_nlm4_shareargs);
  Register(d, NLM_PROG, v, NLMPROC4_UNSHARE, xdr_nlm4_shareargs);
  Register(d, NLM_PROG, v, NLMPROC4_NM_LOCK, xdr_nlm4_lockargs);
  Register(d, NLM_PROG, v, NLMPROC4_FREE_ALL, xdr_nlm4_notify);
}

void RegisterNsm(Dispatcher& d) {
  RegisterVoid(d, SM_PROG, SM_VERS, SM_NULL);
  Register(d, SM_PROG, SM_VERS, SM_STAT, xdr_sm_name);
  Register(d, SM_PROG, SM_VERS, SM_MON, xdr_mon);
  Register(d, SM_PROG, SM_VERS, SM_UNMON, xdr_mon_id);
  Register(d, SM_PROG, SM_VERS, SM_UNMON_ALL, xdr_my_id);
  RegisterVoid(d, SM_PROG, SM_VERS, SM_SIMU_CRASH);
  Register(d, SM_PROG, SM_VERS, SM_NOTIFY, xdr_stat_chge);
}

struct Harness {
  Harness() : drc(DrcOptions{.max_entries = 64, .max_reply_bytes = 1 << 16}),
              dispatcher(DispatcherOptions{&drc, nullptr}) {
    LogOptions quiet;
    quiet.level = LogLevel::kError;
    InitLogging(quiet);
    RegisterNlm13(dispatcher, NLM_VERS);
    RegisterNlm13(dispatcher, NLM_VERSX);
    RegisterNlm4(dispatcher);
    RegisterNsm(dispatcher);
    if (!portmapper.RegisterProcedures(dispatcher).ok()) abort();
    if (!portmapper.AddService(NLM_PROG, NLM4_VERS, 4045).ok()) abort();
  }
  DuplicateRequestCache drc;
  Dispatcher dispatcher;
  Portmapper portmapper;
};

Harness& GetHarness() {
  static Harness* harness = new Harness;
  return *harness;
}

void DispatchOne(absl::string_view message, TransportKind transport) {
  CallContext context;
  context.transport = transport;
  context.peer_address = "127.0.0.1";
  context.peer_is_loopback = true;  // reaches the portmapper SET paths too
  int calls = 0;
  std::optional<std::string> reply;
  GetHarness().dispatcher.Dispatch(
      context, message, [&](std::optional<std::string> r) {
        ++calls;
        reply = std::move(r);
      });
  // Every handler here answers synchronously: exactly one sink call.
  if (calls != 1) abort();
  if (reply.has_value()) {
    absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(*reply);
    std::optional<MessageKind> call = PeekMessage(message);
    if (!h.ok() || !call.has_value() || h->xid != call->xid) abort();
  }
}

void FuzzReply(absl::string_view message) {
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(message);
  if (!h.ok()) return;
  XdrObject<nlm4_testres> testres(XdrProc(xdr_nlm4_testres));
  DecodeReply(message, h->xid, XdrProc(xdr_nlm4_testres), testres.get())
      .IgnoreError();
  XdrObject<sm_stat_res> stat(XdrProc(xdr_sm_stat_res));
  DecodeReply(message, h->xid, XdrProc(xdr_sm_stat_res), stat.get())
      .IgnoreError();
}

}  // namespace
}  // namespace lockwarden::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lockwarden::gateway;  // NOLINT
  if (size < 2) return 0;
  const absl::string_view payload(reinterpret_cast<const char*>(data + 1),
                                  size - 1);
  switch (data[0] % 3) {
    case 0:
      DispatchOne(payload, TransportKind::kUdp);
      break;
    case 1: {
      const size_t chunk = data[1] % 61 + 1;
      RecordDecoder decoder(/*max_record_bytes=*/4096, /*max_fragments=*/8);
      absl::string_view rest = payload.substr(1);
      while (!rest.empty()) {
        std::vector<std::string> records;
        const absl::Status s =
            decoder.Feed(rest.substr(0, chunk), &records);
        rest.remove_prefix(std::min(chunk, rest.size()));
        for (const std::string& r : records) {
          DispatchOne(r, TransportKind::kTcp);
        }
        if (!s.ok()) break;
      }
      break;
    }
    default:
      FuzzReply(payload);
      break;
  }
  return 0;
}
