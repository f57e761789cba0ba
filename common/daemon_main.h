// Start-up and shutdown shared by the lockwarden daemons (lockwarden-server,
// lockwarden-gateway): the logging flags, logging set up from them, the
// shutdown signals, and the exit of a start-up that failed.
//
//   int Run(Flags& f) {
//     const sigset_t signals =
//         StartDaemon("server", f.log_level, f.log_format);
//     ... start serving; on error: return FailStartup("lockwarden-server", s);
//     WaitForShutdownSignal(signals);
//     ... shut down ...
//   }
//
// Thread-safety: StartDaemon blocks SIGTERM and SIGINT in the calling thread,
// and threads inherit that mask, so it must run before the process starts
// any thread (gRPC, the store, ...); otherwise a signal could be delivered
// to, and kill the process in, a thread that does not wait for it.
// WaitForShutdownSignal is then called by one thread.
#ifndef LOCKWARDEN_COMMON_DAEMON_MAIN_H_
#define LOCKWARDEN_COMMON_DAEMON_MAIN_H_

#include <signal.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace CLI {
class App;
}  // namespace CLI

namespace lockwarden {

// Adds --log-level (debug|info|warn|error) and --log-format (text|json) to
// `app`, stored in `*level` and `*format` (whose values are the defaults).
void AddLogFlags(CLI::App& app, std::string* level, std::string* format);

// Sets up logging for `component` ("server", "gateway") from the values of
// AddLogFlags, and blocks the shutdown signals (SIGTERM, SIGINT) in this
// and every later thread. Returns them, for WaitForShutdownSignal.
sigset_t StartDaemon(absl::string_view component, const std::string& log_level,
                     const std::string& log_format);

// Waits until one of `signals` arrives, logs it (event "signal") and
// returns its number.
int WaitForShutdownSignal(const sigset_t& signals);

// Logs "startup_failed" and prints "<program>: <status>" on stderr; returns
// the daemon's exit code for it (1).
int FailStartup(absl::string_view program, const absl::Status& status);

}  // namespace lockwarden

#endif  // LOCKWARDEN_COMMON_DAEMON_MAIN_H_
