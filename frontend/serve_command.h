// `k2serve serve MODEL [vLLM flags]`: the API server process. It spawns the enginecore
// (which spawns the workers), serves the OpenAI-compatible API once the engine is READY,
// drains on SIGTERM/SIGINT and exits non-zero when the engine dies.
#pragma once

#include <string>
#include <vector>

namespace k2 {

int serve_command(const std::vector<std::string>& args);

}  // namespace k2
