#include "gateway/rpc/rpc_message.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/rpc/xdr_wire.h"
#include "gateway/xdr/xdr_codec.h"

namespace lockwarden::gateway {
namespace {

constexpr uint32_t kMsgCall = 0;
constexpr uint32_t kMsgReply = 1;
constexpr uint32_t kMsgAccepted = 0;
constexpr uint32_t kMsgDenied = 1;

// Parses an AUTH_SYS body; it must be consumed exactly.
std::optional<AuthSysParams> ParseAuthSys(absl::string_view body) {
  XdrReader r(body);
  AuthSysParams p;
  absl::string_view name;
  uint32_t ngids = 0;
  if (!r.U32(&p.stamp) || !r.Opaque(kMaxAuthSysMachineNameBytes, &name) ||
      !r.U32(&p.uid) || !r.U32(&p.gid) || !r.U32(&ngids) ||
      ngids > kMaxAuthSysGids) {
    return std::nullopt;
  }
  p.machine_name = std::string(name);
  p.gids.resize(ngids);
  for (uint32_t i = 0; i < ngids; ++i) {
    if (!r.U32(&p.gids[i])) return std::nullopt;
  }
  if (r.remaining() != 0) return std::nullopt;
  return p;
}

absl::Status EncodeAuthSys(const AuthSysParams& p, std::string* body) {
  if (p.machine_name.size() > kMaxAuthSysMachineNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("AUTH_SYS machine name of ", p.machine_name.size(),
                     " bytes exceeds ", kMaxAuthSysMachineNameBytes));
  }
  if (p.gids.size() > kMaxAuthSysGids) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AUTH_SYS has ", p.gids.size(), " gids; max ", kMaxAuthSysGids));
  }
  XdrWriter w(body);
  w.U32(p.stamp).Opaque(p.machine_name).U32(p.uid).U32(p.gid);
  w.U32(static_cast<uint32_t>(p.gids.size()));
  for (uint32_t g : p.gids) w.U32(g);
  return absl::OkStatus();
}

// xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, accept_stat.
std::string AcceptedPrefix(uint32_t xid, AcceptStat stat) {
  std::string out;
  XdrWriter(&out)
      .U32(xid)
      .U32(kMsgReply)
      .U32(kMsgAccepted)
      .U32(static_cast<uint32_t>(AuthFlavor::kNone))
      .U32(0)
      .U32(static_cast<uint32_t>(stat));
  return out;
}

std::string DeniedPrefix(uint32_t xid, RejectStat stat) {
  std::string out;
  XdrWriter(&out).U32(xid).U32(kMsgReply).U32(kMsgDenied).U32(
      static_cast<uint32_t>(stat));
  return out;
}

}  // namespace

const char* AcceptStatName(AcceptStat stat) {
  switch (stat) {
    case AcceptStat::kSuccess:
      return "SUCCESS";
    case AcceptStat::kProgUnavail:
      return "PROG_UNAVAIL";
    case AcceptStat::kProgMismatch:
      return "PROG_MISMATCH";
    case AcceptStat::kProcUnavail:
      return "PROC_UNAVAIL";
    case AcceptStat::kGarbageArgs:
      return "GARBAGE_ARGS";
    case AcceptStat::kSystemErr:
      return "SYSTEM_ERR";
  }
  return "UNKNOWN_ACCEPT_STAT";
}

DecodedCall DecodeCall(absl::string_view message) {
  DecodedCall d;
  CallHeader& h = d.header;
  XdrReader r(message);
  uint32_t direction = 0;
  if (!r.U32(&h.xid) || !r.U32(&direction)) {
    d.reason = "message shorter than xid + direction";
    return d;
  }
  if (direction != kMsgCall) {
    d.reason = "not a CALL";
    return d;
  }
  if (!r.U32(&h.rpc_version)) {
    d.reason = "truncated call header";
    return d;
  }
  if (h.rpc_version != kRpcVersion) {
    d.outcome = DecodedCall::Outcome::kRpcMismatch;
    d.reason = absl::StrCat("RPC version ", h.rpc_version);
    return d;
  }
  absl::string_view cred_body, verf_body;
  if (!r.U32(&h.prog) || !r.U32(&h.vers) || !r.U32(&h.proc) ||
      !r.U32(&h.cred_flavor)) {
    d.reason = "truncated call header";
    return d;
  }
  if (!r.Opaque(kMaxAuthBodyBytes, &cred_body)) {
    // Either truncated or a credential over 400 bytes: the latter is a
    // well-formed call with a bad credential, which deserves an answer.
    d.outcome = DecodedCall::Outcome::kAuthError;
    d.auth_stat = AuthStat::kBadCred;
    d.reason = "credential truncated or over 400 bytes";
    return d;
  }
  if (!r.U32(&h.verf_flavor) || !r.Opaque(kMaxAuthBodyBytes, &verf_body)) {
    d.outcome = DecodedCall::Outcome::kAuthError;
    d.auth_stat = AuthStat::kBadVerf;
    d.reason = "verifier truncated or over 400 bytes";
    return d;
  }
  h.args_offset = r.position();
  switch (static_cast<AuthFlavor>(h.cred_flavor)) {
    case AuthFlavor::kNone:
      break;
    case AuthFlavor::kSys:
      h.auth_sys = ParseAuthSys(cred_body);
      if (!h.auth_sys.has_value()) {
        d.outcome = DecodedCall::Outcome::kAuthError;
        d.auth_stat = AuthStat::kBadCred;
        d.reason = "malformed AUTH_SYS credential";
        return d;
      }
      break;
    default:
      d.outcome = DecodedCall::Outcome::kAuthError;
      d.auth_stat = AuthStat::kBadCred;
      d.reason = absl::StrCat("unsupported credential flavor ", h.cred_flavor);
      return d;
  }
  d.outcome = DecodedCall::Outcome::kOk;
  return d;
}

absl::StatusOr<std::string> EncodeSuccessReply(uint32_t xid,
                                               xdrproc_t result_encoder,
                                               const void* result) {
  std::string out = AcceptedPrefix(xid, AcceptStat::kSuccess);
  absl::Status s = XdrEncodeAppend(result_encoder, result, &out);
  if (!s.ok()) return s;
  return out;
}

std::string EncodeAcceptedError(uint32_t xid, AcceptStat stat) {
  return AcceptedPrefix(xid, stat);
}

std::string EncodeProgMismatch(uint32_t xid, uint32_t low, uint32_t high) {
  std::string out = AcceptedPrefix(xid, AcceptStat::kProgMismatch);
  XdrWriter(&out).U32(low).U32(high);
  return out;
}

std::string EncodeRpcMismatch(uint32_t xid) {
  std::string out = DeniedPrefix(xid, RejectStat::kRpcMismatch);
  XdrWriter(&out).U32(kRpcVersion).U32(kRpcVersion);
  return out;
}

std::string EncodeAuthError(uint32_t xid, AuthStat why) {
  std::string out = DeniedPrefix(xid, RejectStat::kAuthError);
  XdrWriter(&out).U32(static_cast<uint32_t>(why));
  return out;
}

absl::StatusOr<std::string> EncodeCall(uint32_t xid, const CallTarget& target,
                                       const CallCredentials& creds,
                                       xdrproc_t args_encoder,
                                       const void* args) {
  std::string out;
  XdrWriter w(&out);
  w.U32(xid).U32(kMsgCall).U32(kRpcVersion);
  w.U32(target.prog).U32(target.vers).U32(target.proc);
  if (creds.auth_sys.has_value()) {
    std::string body;
    absl::Status s = EncodeAuthSys(*creds.auth_sys, &body);
    if (!s.ok()) return s;
    w.U32(static_cast<uint32_t>(AuthFlavor::kSys)).Opaque(body);
  } else {
    w.U32(static_cast<uint32_t>(AuthFlavor::kNone)).U32(0);
  }
  w.U32(static_cast<uint32_t>(AuthFlavor::kNone)).U32(0);  // verifier
  absl::Status s = XdrEncodeAppend(args_encoder, args, &out);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ReplyHeader> DecodeReplyHeader(absl::string_view message) {
  ReplyHeader h;
  XdrReader r(message);
  uint32_t direction = 0, reply_stat = 0;
  if (!r.U32(&h.xid) || !r.U32(&direction) || direction != kMsgReply ||
      !r.U32(&reply_stat)) {
    return absl::InvalidArgumentError("not an RPC reply");
  }
  if (reply_stat == kMsgAccepted) {
    h.accepted = true;
    uint32_t verf_flavor = 0, stat = 0;
    absl::string_view verf;
    if (!r.U32(&verf_flavor) || !r.Opaque(kMaxAuthBodyBytes, &verf) ||
        !r.U32(&stat) || stat > static_cast<uint32_t>(AcceptStat::kSystemErr)) {
      return absl::InvalidArgumentError("malformed accepted reply");
    }
    h.accept_stat = static_cast<AcceptStat>(stat);
    if (h.accept_stat == AcceptStat::kProgMismatch &&
        (!r.U32(&h.mismatch_low) || !r.U32(&h.mismatch_high))) {
      return absl::InvalidArgumentError("truncated PROG_MISMATCH reply");
    }
    h.results_offset = r.position();
    return h;
  }
  if (reply_stat != kMsgDenied) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown reply_stat ", reply_stat));
  }
  uint32_t reject = 0;
  if (!r.U32(&reject)) return absl::InvalidArgumentError("truncated reply");
  if (reject == static_cast<uint32_t>(RejectStat::kRpcMismatch)) {
    h.reject_stat = RejectStat::kRpcMismatch;
    if (!r.U32(&h.mismatch_low) || !r.U32(&h.mismatch_high)) {
      return absl::InvalidArgumentError("truncated RPC_MISMATCH reply");
    }
    return h;
  }
  uint32_t why = 0;
  if (reject != static_cast<uint32_t>(RejectStat::kAuthError) || !r.U32(&why)) {
    return absl::InvalidArgumentError("malformed rejected reply");
  }
  h.reject_stat = RejectStat::kAuthError;
  h.auth_stat = static_cast<AuthStat>(why);
  return h;
}

absl::Status ReplyStatus(const ReplyHeader& reply) {
  if (!reply.accepted) {
    if (reply.reject_stat == RejectStat::kRpcMismatch) {
      return absl::UnimplementedError(
          absl::StrCat("RPC_MISMATCH: server speaks RPC ", reply.mismatch_low,
                       "..", reply.mismatch_high));
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "AUTH_ERROR ", static_cast<uint32_t>(reply.auth_stat)));
  }
  switch (reply.accept_stat) {
    case AcceptStat::kSuccess:
      return absl::OkStatus();
    case AcceptStat::kProgMismatch:
      return absl::UnimplementedError(
          absl::StrCat("PROG_MISMATCH: versions ", reply.mismatch_low, "..",
                       reply.mismatch_high));
    case AcceptStat::kProgUnavail:
    case AcceptStat::kProcUnavail:
      return absl::UnimplementedError(AcceptStatName(reply.accept_stat));
    case AcceptStat::kGarbageArgs:
      return absl::InvalidArgumentError("GARBAGE_ARGS");
    case AcceptStat::kSystemErr:
      return absl::InternalError("SYSTEM_ERR");
  }
  return absl::InternalError("unknown accept_stat");
}

absl::Status DecodeReply(absl::string_view message, uint32_t expected_xid,
                         xdrproc_t result_decoder, void* result) {
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(message);
  if (!h.ok()) return h.status();
  if (h->xid != expected_xid) {
    return absl::InvalidArgumentError(
        absl::StrCat("reply xid ", h->xid, " != call xid ", expected_xid));
  }
  absl::Status s = ReplyStatus(*h);
  if (!s.ok()) return s;
  return XdrDecode(result_decoder, message.substr(h->results_offset), result);
}

std::optional<MessageKind> PeekMessage(absl::string_view message) {
  XdrReader r(message);
  uint32_t xid = 0, direction = 0;
  if (!r.U32(&xid) || !r.U32(&direction) || direction > kMsgReply) {
    return std::nullopt;
  }
  return MessageKind{xid, direction == kMsgCall};
}

}  // namespace lockwarden::gateway
