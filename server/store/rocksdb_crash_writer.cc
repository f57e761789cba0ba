// rocksdb_crash_writer <dir> <ack_fd>: opens a RocksDbStore in <dir>, checks
// what a previous run left, and then commits crash batches (crash_batches.h)
// one after another as fast as it can, writing each acknowledged batch
// number to <ack_fd> as a native-endian uint64 after Commit() returns OK.
// It runs until killed (rocksdb_crash_test sends SIGKILL) or until
// kMaxBatchesPerRun. Exit codes: 0 done, 2 usage, 3 open/check, 4 commit,
// 5 pipe.
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "server/store/crash_batches.h"
#include "server/store/rocksdb_store.h"

namespace {

constexpr uint64_t kMaxBatchesPerRun = 1000000;

bool WriteAck(int fd, uint64_t n) {
  const char* p = reinterpret_cast<const char*>(&n);
  size_t left = sizeof(n);
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    left -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int fd = -1;
  if (argc != 3 || !absl::SimpleAtoi(argv[2], &fd)) {
    std::fprintf(stderr, "usage: %s <dir> <ack_fd>\n", argv[0]);
    return 2;
  }
  auto store = lockwarden::store::RocksDbStore::Open(argv[1]);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 3;
  }
  absl::StatusOr<uint64_t> last = lockwarden::store::CheckCrashBatches(**store);
  if (!last.ok()) {
    std::fprintf(stderr, "%s\n", last.status().ToString().c_str());
    return 3;
  }
  for (uint64_t n = *last + 1; n <= *last + kMaxBatchesPerRun; ++n) {
    absl::Status s = (*store)->Commit(lockwarden::store::MakeCrashBatch(n));
    if (!s.ok()) {
      std::fprintf(stderr, "commit %llu: %s\n",
                   static_cast<unsigned long long>(n), s.ToString().c_str());
      return 4;
    }
    if (!WriteAck(fd, n)) return 5;
  }
  return 0;
}
