// Parsing helpers for lockwardenctl's flag values: hexadecimal byte strings
// (file handles, owner handles), durations, server address lists, and the
// request ids the CLI mints for mutations.
//
// Thread safety: all functions are pure (NewRequestId reads the host name
// and process id and draws from a local random generator) and may be called
// from any thread.
#ifndef LOCKWARDEN_CLI_PARSE_H_
#define LOCKWARDEN_CLI_PARSE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace lockwarden::cli {

// Longest byte string accepted from a hex flag. The API's largest opaque
// field is 1024 bytes (oh, cookie); the server enforces the exact per-field
// limits (file_handle 64) and names the field in its error.
inline constexpr size_t kHexBytesMax = 1024;

// Decodes "0a1B..." (an optional "0x" prefix, even number of hex digits,
// upper or lower case) into bytes. The empty string decodes to no bytes.
// Errors: InvalidArgument naming `what` (e.g. "--fh") and the problem.
absl::StatusOr<std::string> ParseHexBytes(absl::string_view text,
                                          absl::string_view what);

// Parses a duration flag: "5s", "250ms", "1m30s", or a bare number of
// seconds ("5", "0.5"). Must be positive.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view text,
                                                 absl::string_view what);

// Splits a comma-separated list of HOST:PORT addresses, dropping empty items
// and surrounding spaces. Each item needs a port ("host:1", "[::1]:7420").
// At most kServerAddressesMax addresses.
inline constexpr size_t kServerAddressesMax = 16;
absl::StatusOr<std::vector<std::string>> ParseServerList(
    const std::vector<std::string>& items);

// A byte range as given by --offset/--length; `length` 0 means to EOF.
// Checks nothing beyond what flags can get wrong: the server clamps ranges
// past 2^64 - 1 as the API documents.
struct RangeFlags {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// A request id unique per invocation and operation:
// "ctl-<hostname>-<pid>-<16 hex digits of randomness>", cut to the API's
// 128-byte limit (the host name is shortened, never the random part).
std::string NewRequestId();

// Longest request id the API accepts.
inline constexpr size_t kRequestIdBytesMax = 128;

}  // namespace lockwarden::cli

#endif  // LOCKWARDEN_CLI_PARSE_H_
