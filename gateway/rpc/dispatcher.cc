#include "gateway/rpc/dispatcher.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace lockwarden::gateway {
namespace {

absl::Time NowOf(const Clock* clock) {
  return absl::FromUnixMillis(clock->NowMs());
}

}  // namespace

ProcedureSpec MakeVoidProcedure(std::string name, ProcedureHandler handler) {
  return ProcedureSpec{std::move(name), XdrVoid(), 0, XdrVoid(), false,
                       std::move(handler)};
}

RpcCall::RpcCall(CallContext context, CallHeader header,
                 std::shared_ptr<const ProcedureSpec> spec, ReplySink sink,
                 DuplicateRequestCache* drc, std::optional<DrcKey> drc_key,
                 const Clock* clock, CallObserver* observer)
    : context_(std::move(context)),
      header_(std::move(header)),
      spec_(std::move(spec)),
      sink_(std::move(sink)),
      drc_(drc),
      drc_key_(std::move(drc_key)),
      clock_(clock),
      observer_(observer) {
  if (observer_ != nullptr) received_at_ = absl::Now();
  const size_t words =
      (spec_->args_size + sizeof(std::max_align_t) - 1) /
      sizeof(std::max_align_t);
  const size_t allocated = words > 0 ? words : 1;
  args_.reset(new std::max_align_t[allocated]);
  // rpcgen decoders reuse non-null pointers, so the object must start zeroed.
  std::memset(args_.get(), 0, allocated * sizeof(std::max_align_t));
}

RpcCall::~RpcCall() {
  if (args_decoded_) XdrFree(spec_->args_decoder, args_.get());
  if (!answered_) {
    LogEvent(LogLevel::kWarn, "rpc_call_dropped_unanswered",
             {{"proc", spec_->name},
              {"xid", header_.xid},
              {"peer", context_.peer_address}});
    if (drc_ != nullptr && drc_key_.has_value()) drc_->Abandon(*drc_key_);
    Observe(std::nullopt);
    if (sink_) sink_(std::nullopt);
  }
}

void RpcCall::Observe(const std::optional<std::string>& reply) {
  if (observer_ == nullptr) return;
  observer_->OnAnswered(*this, reply.has_value()
                                   ? std::optional<absl::string_view>(*reply)
                                   : std::nullopt);
}

absl::Status RpcCall::Finish(std::optional<std::string> reply) {
  if (answered_) {
    return absl::FailedPreconditionError(absl::StrCat(
        spec_->name, " xid ", header_.xid, " was already answered"));
  }
  answered_ = true;
  if (drc_ != nullptr && drc_key_.has_value()) {
    drc_->Complete(*drc_key_, reply.value_or(std::string()), NowOf(clock_));
  }
  Observe(reply);
  ReplySink sink = std::move(sink_);
  sink_ = nullptr;
  sink(std::move(reply));
  return absl::OkStatus();
}

absl::Status RpcCall::Reply(const void* result) {
  if (answered_) {
    return absl::FailedPreconditionError(absl::StrCat(
        spec_->name, " xid ", header_.xid, " was already answered"));
  }
  absl::StatusOr<std::string> bytes =
      EncodeSuccessReply(header_.xid, spec_->result_encoder, result);
  if (!bytes.ok()) {
    LogEvent(LogLevel::kError, "rpc_result_encode_failed",
             {{"proc", spec_->name}, {"status", bytes.status()}});
    Finish(EncodeAcceptedError(header_.xid, AcceptStat::kSystemErr))
        .IgnoreError();
    return bytes.status();
  }
  return Finish(*std::move(bytes));
}

absl::Status RpcCall::ReplyNone() { return Finish(std::nullopt); }

void RpcCall::AnswerGarbageArgs() {
  // Not cached: the same bytes would fail the same way, and a corrected
  // retransmission with the same xid must execute.
  if (drc_ != nullptr && drc_key_.has_value()) drc_->Abandon(*drc_key_);
  answered_ = true;
  std::optional<std::string> reply =
      EncodeAcceptedError(header_.xid, AcceptStat::kGarbageArgs);
  Observe(reply);
  ReplySink sink = std::move(sink_);
  sink_ = nullptr;
  sink(std::move(reply));
}

absl::Status RpcCall::ReplyError(AcceptStat stat) {
  if (stat == AcceptStat::kSuccess || stat == AcceptStat::kProgMismatch) {
    return absl::InvalidArgumentError(
        "ReplyError takes an error without a body");
  }
  return Finish(EncodeAcceptedError(header_.xid, stat));
}

Dispatcher::Dispatcher(DispatcherOptions options)
    : drc_(options.drc),
      observer_(options.observer),
      clock_(options.clock != nullptr ? options.clock : &real_clock_) {}

absl::Status Dispatcher::RegisterProcedure(uint32_t prog, uint32_t vers,
                                           uint32_t proc, ProcedureSpec spec) {
  if (!spec.handler || spec.args_decoder == nullptr ||
      spec.result_encoder == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("procedure ", spec.name, " lacks a handler or codec"));
  }
  absl::MutexLock lock(&mu_);
  auto& procs = programs_[prog].procedures;
  auto [it, inserted] = procs.emplace(
      std::make_pair(vers, proc),
      std::make_shared<const ProcedureSpec>(std::move(spec)));
  if (!inserted) {
    return absl::AlreadyExistsError(absl::StrCat(
        "procedure ", prog, "/", vers, "/", proc, " already registered"));
  }
  return absl::OkStatus();
}

std::optional<std::pair<uint32_t, uint32_t>> Dispatcher::VersionRange(
    uint32_t prog) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = programs_.find(prog);
  if (it == programs_.end() || it->second.procedures.empty()) {
    return std::nullopt;
  }
  return std::make_pair(it->second.procedures.begin()->first.first,
                        it->second.procedures.rbegin()->first.first);
}

std::shared_ptr<const ProcedureSpec> Dispatcher::Resolve(
    const CallHeader& h, std::string* error_reply) {
  absl::MutexLock lock(&mu_);
  auto prog = programs_.find(h.prog);
  if (prog == programs_.end() || prog->second.procedures.empty()) {
    ++stats_.prog_unavail;
    *error_reply = EncodeAcceptedError(h.xid, AcceptStat::kProgUnavail);
    return nullptr;
  }
  const auto& procs = prog->second.procedures;
  auto version = procs.lower_bound({h.vers, 0});
  if (version == procs.end() || version->first.first != h.vers) {
    ++stats_.prog_mismatch;
    *error_reply = EncodeProgMismatch(h.xid, procs.begin()->first.first,
                                      procs.rbegin()->first.first);
    return nullptr;
  }
  auto it = procs.find({h.vers, h.proc});
  if (it == procs.end()) {
    ++stats_.proc_unavail;
    *error_reply = EncodeAcceptedError(h.xid, AcceptStat::kProcUnavail);
    return nullptr;
  }
  return it->second;
}

bool Dispatcher::AnswerHeaderProblem(const CallContext& context,
                                     const DecodedCall& decoded,
                                     ReplySink& sink) {
  switch (decoded.outcome) {
    case DecodedCall::Outcome::kOk:
      return false;
    case DecodedCall::Outcome::kDrop:
      Count(&DispatcherStats::dropped);
      LogEvent(LogLevel::kDebug, "rpc_message_dropped",
               {{"peer", context.peer_address}, {"reason", decoded.reason}});
      sink(std::nullopt);
      return true;
    case DecodedCall::Outcome::kRpcMismatch:
      Count(&DispatcherStats::rpc_mismatch);
      sink(EncodeRpcMismatch(decoded.header.xid));
      return true;
    case DecodedCall::Outcome::kAuthError:
      Count(&DispatcherStats::auth_errors);
      LogEvent(LogLevel::kInfo, "rpc_auth_rejected",
               {{"peer", context.peer_address}, {"reason", decoded.reason}});
      sink(EncodeAuthError(decoded.header.xid, decoded.auth_stat));
      return true;
  }
  return false;
}

bool Dispatcher::AnswerFromDrc(const DrcKey& key, ReplySink& sink) {
  DuplicateRequestCache::Lookup hit = drc_->Begin(key, NowOf(clock_));
  switch (hit.state) {
    case DuplicateRequestCache::State::kNew:
      return false;
    case DuplicateRequestCache::State::kInProgress:
      // Absorbed: the execution under way answers (see the DRC header).
      Count(&DispatcherStats::dropped);
      sink(std::nullopt);
      return true;
    case DuplicateRequestCache::State::kCompleted:
      Count(&DispatcherStats::drc_replays);
      if (hit.reply.empty()) {
        sink(std::nullopt);  // the procedure has no reply
      } else {
        sink(std::move(hit.reply));
      }
      return true;
  }
  return false;
}

void Dispatcher::Dispatch(const CallContext& context,
                          absl::string_view message, ReplySink sink) {
  Count(&DispatcherStats::calls);
  DecodedCall decoded = DecodeCall(message);
  if (AnswerHeaderProblem(context, decoded, sink)) return;
  const CallHeader& h = decoded.header;
  std::string error_reply;
  std::shared_ptr<const ProcedureSpec> spec = Resolve(h, &error_reply);
  if (spec == nullptr) {
    sink(std::move(error_reply));
    return;
  }
  const absl::string_view args_bytes = message.substr(h.args_offset);
  std::optional<DrcKey> key;
  if (drc_ != nullptr && spec->use_drc) {
    key = DrcKey::Make(context.peer_address, h.xid, h.prog, h.vers, h.proc,
                       args_bytes);
    if (AnswerFromDrc(*key, sink)) return;
  }
  std::unique_ptr<RpcCall> call(new RpcCall(context, h, spec, std::move(sink),
                                            drc_, std::move(key), clock_,
                                            observer_));
  absl::Status decode =
      XdrDecode(spec->args_decoder, args_bytes, call->args_raw());
  if (!decode.ok()) {
    Count(&DispatcherStats::garbage_args);
    LogEvent(LogLevel::kInfo, "rpc_garbage_args",
             {{"proc", spec->name},
              {"xid", h.xid},
              {"peer", context.peer_address},
              {"status", decode}});
    call->AnswerGarbageArgs();
    return;
  }
  call->args_decoded_ = true;
  spec->handler(std::move(call));
}

void Dispatcher::Count(uint64_t DispatcherStats::*counter) {
  absl::MutexLock lock(&mu_);
  ++(stats_.*counter);
}

DispatcherStats Dispatcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace lockwarden::gateway
