// Starting test daemons (lockwarden-server, etcd members) as child
// processes: one implementation of fork/exec with the output appended to a
// log file, stdin from /dev/null, and the child killed (SIGKILL) when the
// test process dies, so a crashed test leaves no daemon behind.
//
// Thread safety: SpawnLogged may be called from any thread; the child runs
// only async-signal-safe calls between fork and exec.
#ifndef LOCKWARDEN_TESTS_COMMON_SPAWN_H_
#define LOCKWARDEN_TESTS_COMMON_SPAWN_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lockwarden::testing {

// Where tests put their daemons' directories: $TEST_TMPDIR (Bazel), else
// $TMPDIR, else /tmp.
std::string TestTempRoot();

// INTERNAL with `what` and strerror(errno).
absl::Status ErrnoError(absl::string_view what);

// A TCP port the kernel considers free right now on 127.0.0.1 (bound and
// released: another process may take it before the caller binds it, so
// callers that start daemons on it retry on "address in use").
absl::StatusOr<int> ProbeFreeLoopbackPort();

// Starts args[0] with `args` (argv[0] included), stdout and stderr appended
// to `log_path` after `banner` (written first when not empty, so a reader
// can find where this start's output begins). Returns the child's pid; the
// caller reaps it. Errors: INVALID_ARGUMENT for empty args, INTERNAL when
// the log cannot be opened or fork fails. An exec failure shows as the
// child exiting with status 127.
absl::StatusOr<pid_t> SpawnLogged(std::vector<std::string> args,
                                  const std::string& log_path,
                                  absl::string_view banner = {});

}  // namespace lockwarden::testing

#endif  // LOCKWARDEN_TESTS_COMMON_SPAWN_H_
