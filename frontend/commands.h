// The table of k2serve commands: name, one-line summary, and either a handler run in this
// process or the sibling binary the command is forwarded to. Immutable; thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace k2 {

struct Command {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>& args)> run;  // args after the command name
  std::string forward_to;  // non-empty: exec this sibling binary with the full argument list
};

// `bench` kinds that run a model in-process: forwarded to k2serve-worker.
inline constexpr const char* kWorkerBenchKinds[] = {"latency", "throughput"};

const std::vector<Command>& commands();
const Command* find_command(const std::string& name);
std::string closest_command_hint(const std::string& name);
std::string top_level_help();

}  // namespace k2
