// `k2serve bench <serve|overhead> ...`: the benchmark commands. `serve` is vLLM's
// `vllm bench serve` (bench_serve.h); `overhead` measures the enginecore's per-step cost
// (engine_overhead.h). Stateless.
#pragma once

#include <string>
#include <vector>

namespace k2::bench {

// args: after "bench"; returns the process exit code.
int bench_command(const std::vector<std::string>& args);

}  // namespace k2::bench
