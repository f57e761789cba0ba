// What an RPC reply (or outgoing NLM *_RES call) says, for metrics: the
// RPC-level outcome and, for NLM results, the lock status.
//
// NLM results all start with the same two fields (nlm_res, nlm_testres,
// nlm_shareres and their nlm4_ forms):
//   cookie: netobj = uint32 length, bytes padded to 4
//   stat:   uint32 (nlm_stats / nlm4_stats; DENIED_NOLOCKS = 2 in both)
// so the status is read without decoding the whole result.
//
// Thread safety: free functions, reentrant.
#ifndef LOCKWARDEN_GATEWAY_METRICS_REPLY_CLASSIFIER_H_
#define LOCKWARDEN_GATEWAY_METRICS_REPLY_CLASSIFIER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace lockwarden::gateway::metrics {

inline constexpr uint32_t kNlmProgram = 100021;
inline constexpr uint32_t kNsmProgram = 100024;
inline constexpr uint32_t kPortmapProgram = 100000;
// nlm_stats / nlm4_stats value of DENIED_NOLOCKS.
inline constexpr uint32_t kNlmDeniedNoLocks = 2;

// The outcome label of an answered call.
enum class CallOutcome {
  kSuccess,  // accepted, SUCCESS
  kNoReply,  // the procedure sends none (NLM *_MSG, SM_NOTIFY ...)
  kDropped,  // the handler dropped the call unanswered
  kGarbageArgs,
  kSystemErr,
  kOtherError,  // any other accepted or denied reply
};
inline constexpr int kCallOutcomes = 6;
const char* CallOutcomeName(CallOutcome outcome);

// `reply` as passed to CallObserver::OnAnswered; `answered` is
// RpcCall::answered() (false: dropped).
CallOutcome ClassifyReply(std::optional<absl::string_view> reply,
                          bool answered);

// The NLM status in an encoded NLM result (cookie, stat, ...); nullopt if
// `body` is too short or the cookie length is implausible.
std::optional<uint32_t> LeadingNlmStat(absl::string_view body);

// The NLM status of a SUCCESS reply message carrying an NLM result.
std::optional<uint32_t> NlmStatOfReply(absl::string_view reply);

// True for the NLM procedures whose result starts with (cookie, stat):
// TEST, LOCK, CANCEL, UNLOCK, GRANTED, SHARE, UNSHARE, NM_LOCK.
bool HasNlmResult(uint32_t proc);

// "nlm", "nsm", "portmap" or the number.
std::string ProgramName(uint32_t prog);

}  // namespace lockwarden::gateway::metrics

#endif  // LOCKWARDEN_GATEWAY_METRICS_REPLY_CLASSIFIER_H_
