// LockCore and the staged snapshot import: the interrupted-import core that
// Rebuild() gives for a store holding the import marker, and how a replica
// follows an import commit by commit (see lock_core.h).
//
// While the marker is present the records are a mix of the old and the new
// state: references between them (a lock naming a gateway, a grant naming
// its event) may be broken, so nothing but the counters and the gateway
// identities (records that reference nothing) is decoded. Those two are
// what an import needs from the store it replaces: counters must never go
// backwards and NSM state numbers must only go up.
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/core/codec.h"
#include "server/core/lock_core.h"

namespace lockwarden::core {

absl::StatusOr<LockCore> LockCore::FromInterruptedImport(
    CoreOptions options, std::map<std::string, std::string> records) {
  LockCore core(std::move(options));
  auto marker = records.find(std::string(codec::kImportMarkerKey));
  ImportMarker m;
  if (marker == records.end() || !codec::DecodeImportMarker(marker->second, &m)) {
    return absl::DataLossError(absl::StrCat("persisted record '",
                                            codec::kImportMarkerKey,
                                            "': malformed import marker"));
  }
  const std::string gateway_prefix = codec::kGatewayPrefix;
  for (const auto& [key, value] : records) {
    if (key == codec::kCountersKey ||
        key.compare(0, gateway_prefix.size(), gateway_prefix) == 0) {
      LW_RETURN_IF_ERROR(core.RebuildRecord(key, value));
    }
  }
  core.import_marker_ = std::move(m);
  core.import_records_ = std::move(records);
  return core;
}

std::optional<absl::Status> LockCore::ApplyImportRecords(
    const std::vector<RecordChange>& changes) {
  bool marker = false;
  for (const RecordChange& c : changes) marker |= c.key == codec::kImportMarkerKey;
  if (!marker && !import_marker_.has_value()) return std::nullopt;
  // The verbatim records after this commit, then the core they make: an
  // interrupted one while the marker stays, the imported state once the
  // commit deletes it.
  std::map<std::string, std::string> records =
      import_marker_.has_value() ? std::move(import_records_) : Snapshot();
  for (const RecordChange& c : changes) {
    if (c.value.has_value()) {
      records[c.key] = *c.value;
    } else {
      records.erase(c.key);
    }
  }
  absl::StatusOr<LockCore> next =
      records.count(std::string(codec::kImportMarkerKey)) != 0
          ? FromInterruptedImport(options_, std::move(records))
          : Rebuild(options_, std::vector<std::pair<std::string, std::string>>(
                                  records.begin(), records.end()));
  if (!next.ok()) {
    return absl::DataLossError(absl::StrCat(
        "replicated snapshot import: ", next.status().message()));
  }
  *this = *std::move(next);
  return absl::OkStatus();
}

}  // namespace lockwarden::core
