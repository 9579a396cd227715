#include "bench/serve/bench_command.h"

#include <iostream>

#include "bench/serve/bench_serve.h"
#include "bench/serve/engine_overhead.h"

namespace k2::bench {

int bench_command(const std::vector<std::string>& args) {
  constexpr const char* kUsage =
      "usage: k2serve bench <subcommand> [options]\n\n"
      "  serve      load-test an OpenAI-compatible server (vLLM's `vllm bench serve` flags and table)\n"
      "  overhead   enginecore per-step overhead at batch 1 and 64 on a tiny dummy-weights model\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "serve") return bench_serve_command(rest);
  if (args[0] == "overhead") return bench_overhead_command(rest);
  std::cerr << "k2serve bench: unknown subcommand '" << args[0] << "'\n" << kUsage;
  return 2;
}

}  // namespace k2::bench
