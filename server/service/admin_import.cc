// AdminService.ImportSnapshot: replaces the whole lock state with a snapshot
// streamed by the client (snapshot.proto, as ExportSnapshot writes it).
//
// Safety, in order:
//   1. Everything is verified before anything changes: header first,
//      format_version 1, keys strictly increasing, key count, byte count and
//      SHA-256 as the header says, at most kImportBytesMax in memory, and
//      the entries must rebuild into a core whose invariants hold
//      (LockCore::Rebuild + CheckInvariants). Any failure answers
//      INVALID_ARGUMENT / FAILED_PRECONDITION / DATA_LOSS and changes nothing.
//   2. A store that holds locks, shares, waiters or monitors is replaced only
//      with force = true.
//   3. Counters never go backwards: the snapshot's m/counters record is
//      raised to the current next fencing token / event sequence / id, so no
//      fencing token or event sequence is ever issued twice.
//   4. Unless state_is_current, every gateway identity (of the snapshot or of
//      the replaced store) gets an NSM state number above both, through one
//      ResetGateway each after the swap: its imported holdings are released
//      (they may be stale), it enters grace and SM_NOTIFY goes to every
//      monitored client, which reclaims. With state_is_current the snapshot
//      is taken as the truth (a backend migration from a stopped server).
//   5. The state is written by CoreRunner::ImportState in as many commits
//      as the store's limits need (RocksDB: 4096 mutations / 16 MiB per
//      batch; etcd: 128 operations per Txn): first the import marker
//      (core/codec.h "m/import") with the raised counters, then chunks of
//      deletes and puts, then the marker's deletion, which makes the import
//      current. If the server dies or the store fails in between, the store
//      holds the marker: recovery (restart, standby takeover) gives an
//      interrupted-import core, and the server answers UNAVAILABLE and
//      health NOT_SERVING until an import with force finishes the job or an
//      import with `abandon` (no snapshot) replaces the partial state with
//      an empty one (counters and gateway identities kept, every identity
//      reset). Lock and monitor calls are refused (UNAVAILABLE, retried by
//      the gateways) while an import runs; its end resets every event and
//      session stream so the gateways reconnect to the new state.
// One import at a time (RESOURCE_EXHAUSTED otherwise). Not deduplicated by
// request_id: a retry after success finds a non-empty store.
#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/service/admin_service.h"
#include "server/service/convert.h"
#include "server/service/snapshot.h"

namespace lockwarden::service {
namespace {

using admin_internal::Audit;

// Reads one LEB128 varint from the front of `*in`.
bool ReadVarint(absl::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void WriteVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

// m/counters: the first four u64 fields raised to at least `floor`'s
// (codec.h grammar: version, next_token, next_event_sequence, next_id,
// events_dropped, then any later fields kept verbatim).
absl::StatusOr<std::string> RaiseCounters(absl::string_view value,
                                          const core::CoreCounters& floor) {
  if (value.empty() || static_cast<uint8_t>(value.front()) != core::codec::kVersion) {
    return absl::DataLossError("m/counters: unknown record version");
  }
  absl::string_view in = value.substr(1);
  const uint64_t floors[4] = {floor.next_fencing_token, floor.next_event_sequence,
                              floor.next_id, floor.events_dropped};
  std::string out(1, static_cast<char>(core::codec::kVersion));
  for (uint64_t f : floors) {
    uint64_t v;
    if (!ReadVarint(&in, &v)) return absl::DataLossError("m/counters: truncated");
    WriteVarint(&out, std::max(v, f));
  }
  out.append(in.data(), in.size());
  return out;
}

// g/<name>: the first field (i32 nsm_state) replaced.
absl::StatusOr<std::string> WithGatewayState(absl::string_view value, int32_t state) {
  if (value.empty() || static_cast<uint8_t>(value.front()) != core::codec::kVersion) {
    return absl::DataLossError("gateway record: unknown version");
  }
  absl::string_view in = value.substr(1);
  uint64_t old;
  if (!ReadVarint(&in, &old)) return absl::DataLossError("gateway record: truncated");
  std::string out(1, static_cast<char>(core::codec::kVersion));
  WriteVarint(&out, ZigZag(state));
  out.append(in.data(), in.size());
  return out;
}

int32_t GatewayStateOf(absl::string_view value) {
  if (value.size() < 2) return 0;
  absl::string_view in = value.substr(1);
  uint64_t v;
  return ReadVarint(&in, &v) ? static_cast<int32_t>(UnZigZag(v)) : 0;
}

// A gateway record with `state`, not in grace, empty ledger.
std::string FreshGatewayRecord(int32_t state) {
  core::codec::Writer w;
  w.I32(state);
  w.I64(0);
  w.U64(0);
  return std::move(w).Finish();
}

// The later of two NSM state numbers (serial arithmetic).
int32_t Later(int32_t a, int32_t b) { return core::NsmStateNewer(a, b) ? a : b; }

}  // namespace

// Reads the stream, verifies it, swaps the state in and resets gateways.
class AdminServiceImpl::ImportReactor final
    : public grpc::ServerReadReactor<v1::ImportSnapshotRequest> {
 public:
  ImportReactor(AdminServiceImpl* service, grpc::CallbackServerContext* ctx,
                v1::ImportSnapshotResponse* response)
      : service_(service), response_(response),
        caller_(service->auth_.CallerIdentity(*ctx)),
        authorized_(service->auth_.AuthorizeMutation(*ctx)) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Complete();
      return;
    }
    absl::Status s = Accept();
    if (!s.ok()) {
      End(s);
      return;
    }
    message_.Clear();
    StartRead(&message_);
  }

  void OnDone() override {
    if (!ended_) service_->import_running_.store(false);
    delete this;
  }

 private:
  // One message of the stream.
  absl::Status Accept() {
    const v1::SnapshotChunk& chunk = message_.chunk();
    if (!have_header_) {
      reason_ = message_.reason();
      request_id_ = message_.request_id();
      force_ = message_.force();
      state_is_current_ = message_.state_is_current();
      abandon_ = message_.abandon();
      if (!authorized_.ok()) return authorized_;
      if (reason_.empty()) {
        return absl::InvalidArgumentError("reason: required (it goes to the audit log)");
      }
      if (reason_.size() > kReasonBytesMax) {
        return absl::InvalidArgumentError(
            absl::StrCat("reason: longer than ", kReasonBytesMax, " bytes"));
      }
      if (abandon_) {
        if (chunk.has_header() || chunk.has_entries() || state_is_current_) {
          return absl::InvalidArgumentError(
              "abandon: send no snapshot and no state_is_current with it");
        }
        // An empty state replaces the interrupted import's records.
        force_ = true;
        have_header_ = true;
        header_.set_format_version(kSnapshotFormatVersion);
        return absl::OkStatus();
      }
      if (!chunk.has_header()) {
        return absl::InvalidArgumentError("the first message must carry the snapshot header");
      }
      header_ = chunk.header();
      if (header_.format_version() != kSnapshotFormatVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            "snapshot format_version ", header_.format_version(), " is not supported (",
            kSnapshotFormatVersion, ")"));
      }
      have_header_ = true;
      return absl::OkStatus();
    }
    if (abandon_) return absl::InvalidArgumentError("abandon: send no snapshot with it");
    if (!chunk.has_entries()) {
      return absl::InvalidArgumentError("after the header, every chunk must hold entries");
    }
    for (const v1::SnapshotEntry& e : chunk.entries().entries()) {
      if (!entries_.empty() && e.key() <= entries_.back().first) {
        return absl::InvalidArgumentError(absl::StrCat(
            "entry ", entries_.size(), ": keys out of order or repeated"));
      }
      bytes_ += e.key().size() + e.value().size();
      if (bytes_ > kImportBytesMax) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "snapshot larger than ", kImportBytesMax, " bytes (kImportBytesMax)"));
      }
      if (entries_.size() >= header_.key_count()) {
        return absl::DataLossError(absl::StrCat("more entries than the header's key_count ",
                                                header_.key_count()));
      }
      checksum_.Add(e.key(), e.value());
      entries_.emplace_back(e.key(), e.value());
    }
    return absl::OkStatus();
  }

  // The whole stream was read: verify, plan, swap.
  void Complete() {
    if (!have_header_) {
      End(absl::InvalidArgumentError("empty stream: the snapshot header is missing"));
      return;
    }
    if (entries_.size() != header_.key_count() || bytes_ != header_.total_bytes()) {
      End(absl::DataLossError(absl::StrCat(
          "snapshot incomplete: ", entries_.size(), " keys / ", bytes_, " bytes, header says ",
          header_.key_count(), " / ", header_.total_bytes())));
      return;
    }
    if (!abandon_ && checksum_.Finish() != header_.checksum_sha256()) {
      End(absl::DataLossError("snapshot checksum (SHA-256) mismatch"));
      return;
    }
    absl::StatusOr<core::LockCore> next = Plan();
    if (!next.ok()) {
      End(next.status());
      return;
    }
    keys_ = entries_.size();
    entries_.clear();
    core::ImportMarker marker;
    marker.key_count = keys_;
    marker.started_ms = service_->clock_->NowMs();
    marker.source = absl::StrCat(abandon_ ? "abandon by " : "import by ", caller_, ": ",
                                 reason_.substr(0, 200));
    service_->runner_->ImportState(*std::move(next), marker, service_->store_->Limits(),
                                   [this](absl::Status s) {
                                     if (!s.ok()) {
                                       End(s);
                                       return;
                                     }
                                     ResetNext(0);
                                   });
  }

  // Rewrites counters and gateway states as described at the top of this
  // file and rebuilds the new core.
  absl::StatusOr<core::LockCore> Plan() {
    core::CoreCounters now;
    std::map<std::string, int32_t> current;  // Gateway states being replaced.
    core::CoreOptions options;
    bool interrupted = false;
    LW_RETURN_IF_ERROR(service_->runner_->ReadNow([&](const core::LockCore& core, int64_t) {
      now = core.Counters();
      options = core.options();
      interrupted = core.interrupted_import().has_value();
      // Of an interrupted import: the identities of its records (old or new).
      for (const core::GatewayInfo& g : core.ListGateways()) current[g.name] = g.nsm_state;
    }));
    if (abandon_ && !interrupted) {
      return absl::FailedPreconditionError(
          "abandon: the store holds no interrupted snapshot import");
    }
    if (!force_ && interrupted) {
      return absl::FailedPreconditionError(
          "the store holds an interrupted snapshot import; import with force to finish it "
          "(or abandon it)");
    }
    if (!force_ && (now.locks + now.shares + now.waiters + now.monitors) > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the store holds ", now.locks, " locks, ", now.shares, " shares, ", now.waiters,
          " waiters and ", now.monitors, " monitors; import with force to replace them"));
    }
    const std::string gateway_prefix = core::codec::kGatewayPrefix;
    bool have_counters = false;
    for (auto& [key, value] : entries_) {
      if (key == core::codec::kCountersKey) {
        LW_ASSIGN_OR_RETURN(value, RaiseCounters(value, now));
        have_counters = true;
      } else if (key.compare(0, gateway_prefix.size(), gateway_prefix) == 0) {
        const std::string name = key.substr(gateway_prefix.size());
        snapshot_states_[name] = GatewayStateOf(value);
        auto cur = current.find(name);
        if (!state_is_current_ && cur != current.end()) {
          LW_ASSIGN_OR_RETURN(value, WithGatewayState(value, Later(GatewayStateOf(value),
                                                                    cur->second)));
        }
      }
    }
    if (!have_counters && !entries_.empty()) {
      return absl::DataLossError("snapshot has records but no m/counters");
    }
    const bool empty_snapshot = entries_.empty();
    if (!state_is_current_) {
      // Identities only the replaced store knew keep their numbers (then
      // go up with the reset like every other).
      for (const auto& [name, state] : current) {
        if (snapshot_states_.count(name)) continue;
        entries_.emplace_back(gateway_prefix + name, FreshGatewayRecord(state));
        snapshot_states_[name] = 0;
      }
    }
    if (empty_snapshot && !entries_.empty()) {
      // An empty snapshot (or an abandon) over known identities: their
      // records need counters, the current ones.
      core::codec::Writer w;
      w.U64(now.next_fencing_token);
      w.U64(now.next_event_sequence);
      w.U64(now.next_id);
      w.U64(now.events_dropped);
      entries_.emplace_back(std::string(core::codec::kCountersKey), std::move(w).Finish());
    }
    absl::StatusOr<core::LockCore> core = core::LockCore::Rebuild(options, entries_);
    if (!core.ok()) {
      return absl::DataLossError(
          absl::StrCat("snapshot does not decode: ", core.status().message()));
    }
    LW_RETURN_IF_ERROR(core->CheckInvariants());
    for (const auto& [name, state] : snapshot_states_) resets_.push_back(name);
    return core;
  }

  // After the swap: one ResetGateway per identity, in name order.
  void ResetNext(size_t i) {
    if (state_is_current_ || i == resets_.size()) {
      service_->LoadDrainFlags();  // The new state's, for the metrics.
      response_->set_keys_imported(keys_);
      response_->set_fencing_token(service_->store_->FencingToken());
      End(absl::OkStatus());
      return;
    }
    core::ResetGatewayCmd cmd;
    cmd.request_id = request_id_.empty() ? "" : absl::StrCat(request_id_, "/reset/", i);
    cmd.gateway = resets_[i];
    service_->runner_->Submit(cmd, [this, i](absl::StatusOr<core::Reply> r) {
      if (!r.ok()) {
        End(r.status());
        return;
      }
      v1::GatewayStateChange* change = response_->add_state_changes();
      change->set_gateway_id(resets_[i]);
      change->set_snapshot_state(snapshot_states_[resets_[i]]);
      change->set_new_state(r->nsm_state);
      ResetNext(i + 1);
    });
  }

  void End(const absl::Status& s) {
    // The next import may start as soon as this one has answered.
    ended_ = true;
    service_->import_running_.store(false);
    Audit("ImportSnapshot", caller_, reason_,
          absl::StrCat(abandon_ ? "abandon, " : "", entries_.size() + keys_,
                       " keys, force=", force_ ? "true" : "false",
                       ", state_is_current=", state_is_current_ ? "true" : "false"),
          s);
    Finish(ToGrpcStatus(s));
  }

  AdminServiceImpl* const service_;
  v1::ImportSnapshotResponse* const response_;
  const std::string caller_;
  const absl::Status authorized_;
  v1::ImportSnapshotRequest message_;
  bool have_header_ = false;
  bool ended_ = false;
  std::string reason_;
  std::string request_id_;
  bool force_ = false;
  bool state_is_current_ = false;
  bool abandon_ = false;
  v1::SnapshotHeader header_;
  std::vector<std::pair<std::string, std::string>> entries_;
  size_t bytes_ = 0;
  size_t keys_ = 0;
  SnapshotChecksum checksum_;
  std::map<std::string, int32_t> snapshot_states_;  // 0: not in the snapshot.
  std::vector<std::string> resets_;
};

namespace {

class RefusedImport final : public grpc::ServerReadReactor<v1::ImportSnapshotRequest> {
 public:
  explicit RefusedImport(const grpc::Status& s) { Finish(s); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerReadReactor<v1::ImportSnapshotRequest>* AdminServiceImpl::ImportSnapshot(
    grpc::CallbackServerContext* ctx, v1::ImportSnapshotResponse* response) {
  if (import_running_.exchange(true)) {
    return new RefusedImport(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                          "another snapshot import is running"));
  }
  return new ImportReactor(this, ctx, response);
}

}  // namespace lockwarden::service
