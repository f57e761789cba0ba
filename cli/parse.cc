#include "cli/parse.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace lockwarden::cli {
namespace {

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

absl::StatusOr<std::string> ParseHexBytes(absl::string_view text,
                                          absl::string_view what) {
  absl::string_view digits = absl::StripAsciiWhitespace(text);
  if (!absl::ConsumePrefix(&digits, "0x")) absl::ConsumePrefix(&digits, "0X");
  if (digits.size() % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": odd number of hex digits (", digits.size(), ")"));
  }
  if (digits.size() / 2 > kHexBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": ", digits.size() / 2, " bytes, limit ", kHexBytesMax));
  }
  std::string bytes;
  bytes.reserve(digits.size() / 2);
  for (size_t i = 0; i < digits.size(); i += 2) {
    const int high = HexDigitValue(digits[i]);
    const int low = HexDigitValue(digits[i + 1]);
    if (high < 0 || low < 0) {
      const size_t bad = high < 0 ? i : i + 1;
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": not a hex digit '", digits.substr(bad, 1), "' at position ",
          bad));
    }
    bytes.push_back(static_cast<char>((high << 4) | low));
  }
  return bytes;
}

absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text,
                                                 absl::string_view what) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  absl::Duration duration;
  double seconds = 0;
  if (absl::SimpleAtod(trimmed, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(std::string(trimmed), &duration)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", text, "' is not a duration (e.g. 5s, 250ms, 1m)"));
  }
  if (duration <= absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": must be positive and finite, got '", text, "'"));
  }
  return duration;
}

absl::StatusOr<std::vector<std::string>> ParseServerList(
    const std::vector<std::string>& items) {
  std::vector<std::string> addresses;
  for (const std::string& item : items) {
    for (absl::string_view part : absl::StrSplit(item, ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (part.empty()) continue;
      const size_t colon = part.rfind(':');
      uint32_t port = 0;
      if (colon == absl::string_view::npos || colon == 0 ||
          !absl::SimpleAtoi(part.substr(colon + 1), &port) || port == 0 ||
          port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--server: '", part, "' is not HOST:PORT (e.g. 127.0.0.1:7420)"));
      }
      if (addresses.size() == kServerAddressesMax) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--server: more than ", kServerAddressesMax, " addresses"));
      }
      addresses.emplace_back(part);
    }
  }
  if (addresses.empty()) {
    return absl::InvalidArgumentError("--server: no address given");
  }
  return addresses;
}

std::string NewRequestId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "unknown");
  }
  absl::BitGen random;
  const std::string tail = absl::StrFormat(
      "-%d-%016x", static_cast<int>(getpid()),
      absl::Uniform<uint64_t>(random));
  const std::string prefix = "ctl-";
  std::string hostname(host);
  const size_t room = kRequestIdBytesMax - prefix.size() - tail.size();
  if (hostname.size() > room) hostname.resize(room);
  return absl::StrCat(prefix, hostname, tail);
}

}  // namespace lockwarden::cli
