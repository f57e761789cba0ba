#include "gateway/metrics/reply_classifier.h"

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gateway/rpc/rpc_message.h"
#include "gateway/rpc/xdr_wire.h"

namespace lockwarden::gateway::metrics {
namespace {

// NLM cookies are netobj (no protocol bound); Linux sends at most 32 bytes.
// Anything past 1 KiB is not a cookie we would have encoded.
constexpr size_t kMaxCookieBytes = 1024;

}  // namespace

const char* CallOutcomeName(CallOutcome outcome) {
  switch (outcome) {
    case CallOutcome::kSuccess:
      return "success";
    case CallOutcome::kNoReply:
      return "no_reply";
    case CallOutcome::kDropped:
      return "dropped";
    case CallOutcome::kGarbageArgs:
      return "garbage_args";
    case CallOutcome::kSystemErr:
      return "system_err";
    case CallOutcome::kOtherError:
      return "error";
  }
  return "error";
}

CallOutcome ClassifyReply(std::optional<absl::string_view> reply,
                          bool answered) {
  if (!reply.has_value()) {
    return answered ? CallOutcome::kNoReply : CallOutcome::kDropped;
  }
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(*reply);
  if (!h.ok() || !h->accepted) return CallOutcome::kOtherError;
  switch (h->accept_stat) {
    case AcceptStat::kSuccess:
      return CallOutcome::kSuccess;
    case AcceptStat::kGarbageArgs:
      return CallOutcome::kGarbageArgs;
    case AcceptStat::kSystemErr:
      return CallOutcome::kSystemErr;
    default:
      return CallOutcome::kOtherError;
  }
}

std::optional<uint32_t> LeadingNlmStat(absl::string_view body) {
  XdrReader r(body);
  absl::string_view cookie;
  uint32_t stat = 0;
  if (!r.Opaque(kMaxCookieBytes, &cookie) || !r.U32(&stat)) {
    return std::nullopt;
  }
  return stat;
}

std::optional<uint32_t> NlmStatOfReply(absl::string_view reply) {
  absl::StatusOr<ReplyHeader> h = DecodeReplyHeader(reply);
  if (!h.ok() || !h->accepted || h->accept_stat != AcceptStat::kSuccess ||
      h->results_offset > reply.size()) {
    return std::nullopt;
  }
  return LeadingNlmStat(reply.substr(h->results_offset));
}

bool HasNlmResult(uint32_t proc) {
  // 1 TEST, 2 LOCK, 3 CANCEL, 4 UNLOCK, 5 GRANTED, 20 SHARE, 21 UNSHARE,
  // 22 NM_LOCK (field notes, procedure table).
  return (proc >= 1 && proc <= 5) || (proc >= 20 && proc <= 22);
}

std::string ProgramName(uint32_t prog) {
  switch (prog) {
    case kNlmProgram:
      return "nlm";
    case kNsmProgram:
      return "nsm";
    case kPortmapProgram:
      return "portmap";
  }
  return absl::StrCat(prog);
}

}  // namespace lockwarden::gateway::metrics
