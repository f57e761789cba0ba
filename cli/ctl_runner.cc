#include "cli/ctl_runner.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace lockwarden::cli::testing {
namespace {

// A CLI run may take at most this long (the longest waits 1 s for a grant).
constexpr absl::Duration kRunTimeout = absl::Seconds(60);

std::string CtlBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string runfiles =
      srcdir != nullptr ? absl::StrCat(srcdir, "/lockwarden/cli/lockwardenctl")
                        : "";
  if (!runfiles.empty() && access(runfiles.c_str(), X_OK) == 0) return runfiles;
  return "cli/lockwardenctl";
}

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, ".", getpid());
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

CtlResult RunCtl(const std::vector<std::string>& args,
                 const std::vector<std::string>& extra_env) {
  const std::string binary = CtlBinary();
  const std::string out_path = TempPath("ctl_out");
  const std::string err_path = TempPath("ctl_err");
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_storage) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = {"PATH=/usr/bin:/bin", "USER=tester"};
  env_storage.insert(env_storage.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp;
  for (std::string& item : env_storage) envp.push_back(item.data());
  envp.push_back(nullptr);

  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, 1);
    dup2(err, 2);
    execve(binary.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  CtlResult result;
  const absl::Time deadline = absl::Now() + kRunTimeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "lockwardenctl did not finish in time";
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  return result;
}

int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

nlohmann::json ParseSingleJsonObject(const std::string& text) {
  nlohmann::json document = nlohmann::json::parse(text);  // throws on junk
  EXPECT_TRUE(document.is_object()) << text;
  return document;
}

}  // namespace lockwarden::cli::testing
