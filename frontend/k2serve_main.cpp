// k2serve: the command users run. It owns the API-server process kind; commands that
// belong to another process kind (golden-check, generate run a worker's model) are
// forwarded by exec to the sibling binary of that kind, so each binary links only the
// modules its process may depend on.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "frontend/commands.h"

namespace {

std::filesystem::path self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(".") : p.parent_path();
}

// Replaces this process with `<dir>/<binary> args...`; returns only on failure.
int exec_sibling(const std::string& binary, const std::vector<std::string>& args) {
  std::filesystem::path path = self_dir() / binary;
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(path.c_str(), argv.data());
  std::fprintf(stderr, "k2serve: cannot run %s: %s\n", path.c_str(), std::strerror(errno));
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << k2::top_level_help();
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  const k2::Command* cmd = k2::find_command(command);
  if (cmd == nullptr) {
    std::cerr << "k2serve: unknown command '" << command << "'" << k2::closest_command_hint(command)
              << "\nRun 'k2serve --help' for the list of commands.\n";
    return 2;
  }
  if (!cmd->forward_to.empty()) return exec_sibling(cmd->forward_to, args);
  if (command == "bench" && args.size() > 1) {
    for (const char* kind : k2::kWorkerBenchKinds)
      if (args[1] == kind) return exec_sibling("k2serve-worker", args);
  }
  return cmd->run(std::vector<std::string>(args.begin() + 1, args.end()));
}
