#include "common/logging.h"

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace lockwarden {
namespace {

// Set once by InitLogging before other threads start; read-only afterwards.
struct LogConfig {
  LogOptions options;
  std::shared_ptr<spdlog::logger> logger;
};

LogConfig& Config() {
  static LogConfig* config = [] {
    auto* c = new LogConfig;
    c->logger = spdlog::stderr_logger_mt("lockwarden");
    c->logger->set_pattern("%v");
    return c;
  }();
  return *config;
}

absl::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarn: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
  }
  return spdlog::level::info;
}

// Text values are quoted only when they contain spaces, quotes or '='.
std::string TextValue(const LogValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (x.empty() || x.find_first_of(" \"=\t\n") != std::string::npos) {
            return nlohmann::json(x).dump(-1, ' ', false,
                                          nlohmann::json::error_handler_t::replace);
          }
          return x;
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else {
          return absl::StrCat(x);
        }
      },
      v.value());
}

nlohmann::json JsonValue(const LogValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v.value());
}

std::string Render(const LogOptions& options, LogLevel level,
                   absl::string_view event,
                   std::initializer_list<LogField> fields) {
  const std::string ts =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  if (options.format == LogFormat::kJson) {
    nlohmann::json line = nlohmann::json::object();
    line["ts"] = ts;
    line["level"] = LevelName(level);
    if (!options.component.empty()) line["component"] = options.component;
    line["event"] = event;
    for (const auto& [key, value] : fields) line[std::string(key)] = JsonValue(value);
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = absl::StrCat(ts, " ", absl::AsciiStrToUpper(LevelName(level)));
  if (!options.component.empty()) absl::StrAppend(&out, " [", options.component, "]");
  absl::StrAppend(&out, " ", event);
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&out, " ", key, "=", TextValue(value));
  }
  return out;
}

}  // namespace

absl::Status ParseLogLevel(absl::string_view text, LogLevel* out) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "debug") *out = LogLevel::kDebug;
  else if (t == "info") *out = LogLevel::kInfo;
  else if (t == "warn" || t == "warning") *out = LogLevel::kWarn;
  else if (t == "error") *out = LogLevel::kError;
  else return absl::InvalidArgumentError(absl::StrCat("unknown log level '", text, "' (debug|info|warn|error)"));
  return absl::OkStatus();
}

absl::Status ParseLogFormat(absl::string_view text, LogFormat* out) {
  const std::string t = absl::AsciiStrToLower(text);
  if (t == "text") *out = LogFormat::kText;
  else if (t == "json") *out = LogFormat::kJson;
  else return absl::InvalidArgumentError(absl::StrCat("unknown log format '", text, "' (text|json)"));
  return absl::OkStatus();
}

void InitLogging(const LogOptions& options) {
  LogConfig& config = Config();
  config.options = options;
  config.logger->set_level(ToSpdlog(options.level));
  config.logger->flush_on(spdlog::level::debug);
}

bool LogEnabled(LogLevel level) {
  return Config().logger->should_log(ToSpdlog(level));
}

void LogEvent(LogLevel level, absl::string_view event,
              std::initializer_list<LogField> fields) {
  LogConfig& config = Config();
  if (!config.logger->should_log(ToSpdlog(level))) return;
  config.logger->log(ToSpdlog(level), "{}", Render(config.options, level, event, fields));
}

std::string FormatLogLineForTesting(LogFormat format, LogLevel level,
                                    absl::string_view event,
                                    std::initializer_list<LogField> fields) {
  LogOptions options;
  options.format = format;
  options.component = "test";
  return Render(options, level, event, fields);
}

}  // namespace lockwarden
