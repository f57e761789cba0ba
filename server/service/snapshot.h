// Snapshot stream format helpers (proto/lockwarden/v1/snapshot.proto,
// format_version 1): chunking of the store's key/value pairs and the
// SHA-256 checksum over (4-byte big-endian key length, key, 4-byte
// big-endian value length, value) for every entry in key order.
//
// Thread-safety: SnapshotChecksum is a plain value; one per thread.
#ifndef LOCKWARDEN_SERVER_SERVICE_SNAPSHOT_H_
#define LOCKWARDEN_SERVER_SERVICE_SNAPSHOT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "lockwarden/v1/snapshot.pb.h"

namespace lockwarden::service {

inline constexpr uint32_t kSnapshotFormatVersion = 1;
// Key and value bytes per entries chunk (proto contract: at most 1 MiB).
inline constexpr size_t kSnapshotChunkBytesMax = 1 << 20;

// Incremental SHA-256 of snapshot entries.
class SnapshotChecksum {
 public:
  SnapshotChecksum();
  ~SnapshotChecksum();
  SnapshotChecksum(const SnapshotChecksum&) = delete;
  SnapshotChecksum& operator=(const SnapshotChecksum&) = delete;

  void Add(absl::string_view key, absl::string_view value);
  // The 32-byte digest; call once.
  std::string Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Header for `entries` (key count, byte count, checksum).
v1::SnapshotHeader MakeSnapshotHeader(const std::map<std::string, std::string>& entries);

// Fills `out` with entries from `*it` on, up to kSnapshotChunkBytesMax bytes
// (at least one entry); advances `*it`.
void NextSnapshotChunk(const std::map<std::string, std::string>& entries,
                       std::map<std::string, std::string>::const_iterator* it,
                       v1::SnapshotChunk* out);

}  // namespace lockwarden::service

#endif  // LOCKWARDEN_SERVER_SERVICE_SNAPSHOT_H_
