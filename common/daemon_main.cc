#include "common/daemon_main.h"

#include <pthread.h>

#include <cstdio>

#include "CLI/CLI.hpp"
#include "common/logging.h"

namespace lockwarden {

void AddLogFlags(CLI::App& app, std::string* level, std::string* format) {
  app.add_option("--log-level", *level, "debug|info|warn|error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--log-format", *format, "text|json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
}

sigset_t StartDaemon(absl::string_view component, const std::string& log_level,
                     const std::string& log_format) {
  LogOptions log;
  log.component = std::string(component);
  // The flags were checked by AddLogFlags; a bad value keeps the default.
  (void)ParseLogLevel(log_level, &log.level);
  (void)ParseLogFormat(log_format, &log.format);
  InitLogging(log);

  // Block the shutdown signals in every thread; one waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForShutdownSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  LogEvent(LogLevel::kInfo, "signal",
           {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  return sig;
}

int FailStartup(absl::string_view program, const absl::Status& status) {
  LogEvent(LogLevel::kError, "startup_failed", {{"error", status}});
  std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()),
               program.data(), status.ToString().c_str());
  return 1;
}

}  // namespace lockwarden
