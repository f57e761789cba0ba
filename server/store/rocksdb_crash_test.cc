// Kill -9 test: a child process (rocksdb_crash_writer) commits numbered
// batches to a RocksDbStore as fast as it can and reports every
// acknowledged batch through a pipe; we SIGKILL it at a random moment,
// reopen the store, and check that every acknowledged batch is there and no
// batch is half-applied. Several rounds run on the same directory, so each
// round also recovers from the previous crash. Seeded: LW_SEED=<n> replays
// the kill timings.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "server/store/crash_batches.h"
#include "server/store/rocksdb_store.h"
#include "server/store/store_test_util.h"

namespace lockwarden::store {
namespace {

constexpr int kRounds = 6;
constexpr absl::Duration kFirstAckTimeout = absl::Seconds(30);

std::string WriterPath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/",
                      workspace ? workspace : "lockwarden",
                      "/server/store/rocksdb_crash_writer");
}

// Reads whole acks from `fd` until `deadline` (or EOF if deadline is
// InfiniteFuture). Returns false on EOF.
bool ReadAcks(int fd, absl::Time deadline, uint64_t* last_ack,
              uint64_t* count) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    pollfd p{fd, POLLIN, 0};
    const int timeout_ms = deadline == absl::InfiniteFuture()
                               ? -1
                               : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    const int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0;
    uint64_t n = 0;
    // Acks are 8-byte writes, atomic on a pipe, so a read never splits one.
    const ssize_t got = read(fd, &n, sizeof(n));
    if (got == 0) return false;
    if (got != sizeof(n)) {
      ADD_FAILURE() << "short ack read: " << got;
      return false;
    }
    EXPECT_GT(n, *last_ack) << "acks out of order";
    *last_ack = n;
    ++*count;
  }
}

TEST(RocksDbCrashTest, AcknowledgedBatchesSurviveSigkill) {
  std::mt19937_64 rng(testing::TestSeed());
  const std::string dir = testing::MakeTempDir("crash");
  const std::string writer = WriterPath();
  ASSERT_EQ(access(writer.c_str(), X_OK), 0) << writer;

  uint64_t last_ack = 0;
  uint64_t total_acks = 0;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    // The child's end must survive exec.
    ASSERT_EQ(fcntl(fds[1], F_SETFD, 0), 0);
    const std::string fd_arg = absl::StrCat(fds[1]);
    char* const argv[] = {const_cast<char*>(writer.c_str()),
                          const_cast<char*>(dir.c_str()),
                          const_cast<char*>(fd_arg.c_str()), nullptr};
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      execv(argv[0], argv);
      _exit(127);
    }
    close(fds[1]);

    const uint64_t acked_before = last_ack;
    uint64_t round_acks = 0;
    // Wait for the first ack (the child is up), then kill at a random time.
    bool open = ReadAcks(fds[0], absl::Now() + absl::Milliseconds(1), &last_ack,
                         &round_acks);
    const absl::Time first_deadline = absl::Now() + kFirstAckTimeout;
    while (open && round_acks == 0 && absl::Now() < first_deadline) {
      open = ReadAcks(fds[0], absl::Now() + absl::Milliseconds(10), &last_ack,
                      &round_acks);
    }
    const absl::Duration run_for =
        absl::Milliseconds(std::uniform_int_distribution<int>(0, 300)(rng));
    if (open) {
      open = ReadAcks(fds[0], absl::Now() + run_for, &last_ack, &round_acks);
    }
    kill(pid, SIGKILL);
    // Acks written before the kill are still in the pipe: all count.
    if (open) ReadAcks(fds[0], absl::InfiniteFuture(), &last_ack, &round_acks);
    close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "writer exited on its own, status " << wstatus
        << " (see its stderr above)";
    ASSERT_GT(round_acks, 0u) << "writer never acknowledged a batch";
    total_acks += round_acks;

    absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
        RocksDbStore::Open(dir);
    ASSERT_THAT(store, lockwarden::testing::IsOk());
    absl::StatusOr<uint64_t> recovered = CheckCrashBatches(**store);
    ASSERT_THAT(recovered, lockwarden::testing::IsOk());
    std::printf("round %d: killed after %s, acked %llu..%llu, recovered %llu\n",
                round, absl::FormatDuration(run_for).c_str(),
                static_cast<unsigned long long>(acked_before + 1),
                static_cast<unsigned long long>(last_ack),
                static_cast<unsigned long long>(*recovered));
    // Every acknowledged batch survived; at most one more (committed, killed
    // before its ack) may be there too.
    EXPECT_GE(*recovered, last_ack);
    EXPECT_LE(*recovered, last_ack + 1);
    // The next round continues from what is on disk.
    last_ack = *recovered;
  }
  std::printf("%d rounds, %llu acknowledged batches\n", kRounds,
              static_cast<unsigned long long>(total_acks));
}

}  // namespace
}  // namespace lockwarden::store
