// Helpers for tests that run the real lockwardenctl binary: run it with
// arguments and environment, capture stdout, stderr and the exit code; find a
// closed loopback port; parse the single JSON document it prints.
//
// Thread safety: RunCtl forks and may be called from one thread at a time.
#ifndef LOCKWARDEN_CLI_CTL_RUNNER_H_
#define LOCKWARDEN_CLI_CTL_RUNNER_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace lockwarden::cli::testing {

// What one run of lockwardenctl did.
struct CtlResult {
  int exit_code = -1;  // -1 when killed or not exited normally
  std::string out;
  std::string err;
};

// Runs lockwardenctl (from the test's runfiles) with `args` and only
// PATH, USER=tester and `extra_env` ("NAME=value") in its environment.
// Killed (and a test failure added) after 60 s.
CtlResult RunCtl(const std::vector<std::string>& args,
                 const std::vector<std::string>& extra_env = {});

// A port on 127.0.0.1 nothing listens on (bound, then closed).
int ClosedPort();

// Parses `text` as one JSON document and expects an object (a test failure
// otherwise); throws on malformed JSON, failing the test.
nlohmann::json ParseSingleJsonObject(const std::string& text);

}  // namespace lockwarden::cli::testing

#endif  // LOCKWARDEN_CLI_CTL_RUNNER_H_
