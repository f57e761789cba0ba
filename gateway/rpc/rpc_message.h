// ONC RPC version 2 messages (RFC 5531): decoding CALL headers and REPLY
// headers, encoding replies and outgoing calls.
//
// Wire format (all fields XDR unsigned 32-bit words):
//
//   CALL:  xid, 0 (CALL), rpcvers = 2, prog, vers, proc,
//          cred  = {flavor, opaque body<400>},
//          verf  = {flavor, opaque body<400>},
//          procedure arguments...
//   REPLY: xid, 1 (REPLY), reply_stat,
//     MSG_ACCEPTED (0): verf = {flavor, body<400>}, accept_stat,
//         SUCCESS (0):        results...
//         PROG_MISMATCH (2):  low, high
//         others:             nothing
//     MSG_DENIED (1): reject_stat,
//         RPC_MISMATCH (0):   low, high
//         AUTH_ERROR (1):     auth_stat
//
//   AUTH_SYS credential body: stamp, machinename<255>, uid, gid, gids<16>.
//
// The header is parsed by hand with bounds checks (gateway/rpc/xdr_wire.h);
// the arguments and results are (de)serialised by the rpcgen routines from
// the offset this parser reports. AUTH_NONE and AUTH_SYS are accepted; any
// other credential flavor, or a malformed AUTH_SYS body, is answered with
// MSG_DENIED/AUTH_ERROR/AUTH_BADCRED. Verifiers on calls are bounded and
// ignored (AUTH_SYS calls carry an AUTH_NONE verifier). Replies always carry
// an AUTH_NONE verifier.
//
// Thread safety: free functions, reentrant.
#ifndef LOCKWARDEN_GATEWAY_RPC_RPC_MESSAGE_H_
#define LOCKWARDEN_GATEWAY_RPC_RPC_MESSAGE_H_

#include <rpc/rpc.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockwarden::gateway {

inline constexpr uint32_t kRpcVersion = 2;
// RFC 5531: opaque_auth bodies are at most 400 bytes.
inline constexpr size_t kMaxAuthBodyBytes = 400;
// AUTH_SYS limits from RFC 5531 appendix A.
inline constexpr size_t kMaxAuthSysMachineNameBytes = 255;
inline constexpr size_t kMaxAuthSysGids = 16;

enum class AuthFlavor : uint32_t { kNone = 0, kSys = 1, kShort = 2, kDh = 3 };

enum class AcceptStat : uint32_t {
  kSuccess = 0,
  kProgUnavail = 1,
  kProgMismatch = 2,
  kProcUnavail = 3,
  kGarbageArgs = 4,
  kSystemErr = 5,
};

enum class RejectStat : uint32_t { kRpcMismatch = 0, kAuthError = 1 };

enum class AuthStat : uint32_t {
  kOk = 0,
  kBadCred = 1,
  kRejectedCred = 2,
  kBadVerf = 3,
  kRejectedVerf = 4,
  kTooWeak = 5,
};

const char* AcceptStatName(AcceptStat stat);

struct AuthSysParams {
  uint32_t stamp = 0;
  std::string machine_name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> gids;
};

struct CallHeader {
  uint32_t xid = 0;
  uint32_t rpc_version = 0;
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
  uint32_t cred_flavor = 0;
  std::optional<AuthSysParams> auth_sys;  // set iff cred_flavor == AUTH_SYS
  uint32_t verf_flavor = 0;
  size_t args_offset = 0;  // where the procedure arguments start
};

// What the server should do with a received message.
struct DecodedCall {
  enum class Outcome {
    kOk,           // header valid; dispatch `header`
    kDrop,         // not a well-formed CALL: no reply can or should be sent
    kRpcMismatch,  // rpcvers != 2: reply MSG_DENIED/RPC_MISMATCH
    kAuthError,    // reply MSG_DENIED/AUTH_ERROR with `auth_stat`
  };
  Outcome outcome = Outcome::kDrop;
  CallHeader header;  // xid is valid for every outcome but kDrop
  AuthStat auth_stat = AuthStat::kOk;
  std::string reason;  // for logs when outcome != kOk
};

DecodedCall DecodeCall(absl::string_view message);

// Reply encoders. `xid` echoes the call's.
absl::StatusOr<std::string> EncodeSuccessReply(uint32_t xid,
                                               xdrproc_t result_encoder,
                                               const void* result);
// PROG_UNAVAIL, PROC_UNAVAIL, GARBAGE_ARGS, SYSTEM_ERR (no body).
std::string EncodeAcceptedError(uint32_t xid, AcceptStat stat);
std::string EncodeProgMismatch(uint32_t xid, uint32_t low, uint32_t high);
// MSG_DENIED/RPC_MISMATCH; we speak only RPC version 2 (low = high = 2).
std::string EncodeRpcMismatch(uint32_t xid);
std::string EncodeAuthError(uint32_t xid, AuthStat why);

// Credentials for outgoing calls.
struct CallCredentials {
  static CallCredentials None() { return CallCredentials{}; }
  static CallCredentials Sys(AuthSysParams params) {
    CallCredentials c;
    c.auth_sys = std::move(params);
    return c;
  }
  std::optional<AuthSysParams> auth_sys;  // AUTH_NONE when empty
};

struct CallTarget {
  uint32_t prog = 0;
  uint32_t vers = 0;
  uint32_t proc = 0;
};

// Encodes a CALL with AUTH_NONE verifier. Fails if the credentials break
// the AUTH_SYS limits or the arguments do not encode.
absl::StatusOr<std::string> EncodeCall(uint32_t xid, const CallTarget& target,
                                       const CallCredentials& creds,
                                       xdrproc_t args_encoder,
                                       const void* args);

struct ReplyHeader {
  uint32_t xid = 0;
  bool accepted = false;
  AcceptStat accept_stat = AcceptStat::kSuccess;  // when accepted
  RejectStat reject_stat = RejectStat::kRpcMismatch;  // when !accepted
  AuthStat auth_stat = AuthStat::kOk;  // when AUTH_ERROR
  uint32_t mismatch_low = 0;   // PROG_MISMATCH or RPC_MISMATCH
  uint32_t mismatch_high = 0;
  size_t results_offset = 0;  // when SUCCESS
};

// Parses a REPLY header. InvalidArgument if the message is not a
// well-formed reply.
absl::StatusOr<ReplyHeader> DecodeReplyHeader(absl::string_view message);

// Maps a non-SUCCESS reply to a Status naming the RPC error; OkStatus for
// an accepted SUCCESS.
absl::Status ReplyStatus(const ReplyHeader& reply);

// Decodes a complete reply: checks the xid, maps RPC errors to a Status
// (UNIMPLEMENTED for PROG/PROC unavailable and mismatches, INVALID_ARGUMENT
// for GARBAGE_ARGS, INTERNAL for SYSTEM_ERR, PERMISSION_DENIED for auth
// errors) and decodes the results into `*result` (zero-initialised by the
// caller; freed by the caller with XdrFree).
absl::Status DecodeReply(absl::string_view message, uint32_t expected_xid,
                         xdrproc_t result_decoder, void* result);

// The xid and direction of any message with at least two words.
struct MessageKind {
  uint32_t xid = 0;
  bool is_call = false;
};
std::optional<MessageKind> PeekMessage(absl::string_view message);

}  // namespace lockwarden::gateway

#endif  // LOCKWARDEN_GATEWAY_RPC_RPC_MESSAGE_H_
