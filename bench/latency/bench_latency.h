// `k2serve bench latency` and `k2serve bench throughput`: vLLM's offline benchmarks, run on
// the worker's model in this process. Random prompts of --input-len tokens are prefilled as
// one batch, then decoded greedily for --output-len steps; the figures are printed as
// tokens/s and as fractions of the machine's roofline measured in the same run:
//   decode:  (weight bytes the step read + KV bytes it read) / step time / DRAM read BW
//   prefill: FLOP / prefill time / the AMX-BF16 peak (the AVX512-BF16 peak where AMX is
//            absent; the label says which)
// Free functions; they own everything they create.
#pragma once

#include <string>
#include <vector>

namespace k2::bench {

// args: everything after "bench latency" / "bench throughput".
int bench_latency_command(const std::vector<std::string>& args);
int bench_throughput_command(const std::vector<std::string>& args);

}  // namespace k2::bench
