// Structured logging: one line per event that matters, as text for people or
// JSON for log pipelines (--log-format=json). Built on spdlog (Debian).
//
//   LogEvent(LogLevel::kInfo, "recovery_done", {{"objects", n}, {"ms", ms}});
// text: 2026-11-26T13:40:01.123Z INFO recovery_done objects=12 ms=40
// json: {"ts":"2026-11-26T13:40:01.123Z","level":"info","event":"recovery_done","objects":12,"ms":40}
//
// Thread-safety: InitLogging once at start-up (before other threads);
// LogEvent from any thread.
#ifndef LOCKWARDEN_COMMON_LOGGING_H_
#define LOCKWARDEN_COMMON_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <variant>

#include "absl/status/status.h"

namespace lockwarden {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kText, kJson };

struct LogOptions {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
  std::string component;  // e.g. "server", "gateway"; added to every line.
};

absl::Status ParseLogLevel(absl::string_view text, LogLevel* out);
absl::Status ParseLogFormat(absl::string_view text, LogFormat* out);

void InitLogging(const LogOptions& options);

class LogValue {
 public:
  LogValue(int v) : v_(static_cast<int64_t>(v)) {}                 // NOLINT
  LogValue(unsigned v) : v_(static_cast<int64_t>(v)) {}            // NOLINT
  LogValue(long v) : v_(static_cast<int64_t>(v)) {}                // NOLINT
  LogValue(long long v) : v_(static_cast<int64_t>(v)) {}           // NOLINT
  LogValue(unsigned long v) : v_(static_cast<uint64_t>(v)) {}      // NOLINT
  LogValue(unsigned long long v) : v_(static_cast<uint64_t>(v)) {} // NOLINT
  LogValue(double v) : v_(v) {}                                    // NOLINT
  LogValue(bool v) : v_(v) {}                                      // NOLINT
  LogValue(const char* v) : v_(std::string(v)) {}                  // NOLINT
  LogValue(absl::string_view v) : v_(std::string(v)) {}            // NOLINT
  LogValue(const std::string& v) : v_(v) {}                        // NOLINT
  LogValue(const absl::Status& s) : v_(s.ToString()) {}            // NOLINT

  const std::variant<int64_t, uint64_t, double, bool, std::string>& value()
      const {
    return v_;
  }

 private:
  std::variant<int64_t, uint64_t, double, bool, std::string> v_;
};

using LogField = std::pair<absl::string_view, LogValue>;

void LogEvent(LogLevel level, absl::string_view event,
              std::initializer_list<LogField> fields = {});

// True when a LogEvent at `level` would be written. Hot paths check it
// before building fields that copy strings (a LogValue owns its string), so
// a disabled debug line costs one comparison, not an allocation per field.
bool LogEnabled(LogLevel level);

// Renders one line without writing it (for tests).
std::string FormatLogLineForTesting(LogFormat format, LogLevel level,
                                    absl::string_view event,
                                    std::initializer_list<LogField> fields);

}  // namespace lockwarden

#endif  // LOCKWARDEN_COMMON_LOGGING_H_
