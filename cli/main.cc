// lockwardenctl: the operator CLI of lockwarden. Everything lives in
// RunLockwardenctl (cli/app.cc) so tests can run the CLI in process.
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return lockwarden::cli::RunLockwardenctl(args, std::cout, std::cerr);
}
