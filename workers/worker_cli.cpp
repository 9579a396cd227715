// k2serve-worker: the worker process kind. Its single-process commands (golden-check,
// generate) are reached through `k2serve <command>`, which execs this binary; `worker` is
// the serving worker an enginecore spawns (worker_process.h).
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "bench/latency/bench_latency.h"
#include "bench/models/make_random_model.h"
#include "enginecore/protocol/log.h"
#include "enginecore/protocol/option_table.h"
#include "workers/generate.h"
#include "workers/golden_check.h"
#include "workers/parallel/local_group.h"
#include "workers/worker_process.h"

// jemalloc's options, read at start-up (MALLOC_CONF in the environment still overrides them).
// One arena: the worker's threads are few and fixed and reuse their buffers, but a prefill's
// large transient buffers are freed by one thread and wanted by another, and with an arena per
// thread each keeps its own dirty pages: bench-ds3 at batch 32 peaked ~20 MB higher (1.11x
// against 1.097x of weights + KV cache).
extern "C" const char* malloc_conf = "narenas:1";

namespace {

struct GoldenCheckArgs {
  int64_t block_size = 16;
  bool fast = false;
  std::string dtype = "float32";
  std::string quantization;
  int64_t tensor_parallel_size = 1;
  bool enable_expert_parallel = false;
  int64_t data_parallel_size = 1;
  std::string mm_encoder_tp_mode = "weights";
  std::string tp_communicator = "threads";
  bool help = false;
};

struct GenerateArgs {
  std::string prompt_ids;
  int64_t max_tokens = 16;
  bool ignore_eos = false;
  int64_t block_size = 16;
  bool help = false;
};

const k2::OptionTable<GoldenCheckArgs>& golden_table() {
  static const auto table = [] {
    k2::OptionTable<GoldenCheckArgs> t;
    t.add("--block-size", &GoldenCheckArgs::block_size, "KV cache block size, a power of two")
        .add("--fast", &GoldenCheckArgs::fast,
             "check the CPU fast path (bf16 weights; --quantization for the experts) against the float32 path")
        .add("--dtype", &GoldenCheckArgs::dtype, "as k2serve serve --dtype: float32 checks the exact path")
        .add("--quantization,-q", &GoldenCheckArgs::quantization, "as k2serve serve --quantization: int8")
        .add("--tensor-parallel-size,-tp", &GoldenCheckArgs::tensor_parallel_size,
             "check the model sharded over this many ranks (threads of this process)")
        .add("--enable-expert-parallel", &GoldenCheckArgs::enable_expert_parallel,
             "split the routed experts whole over the ranks instead of slicing each")
        .add("--data-parallel-size,-dp", &GoldenCheckArgs::data_parallel_size,
             "with --enable-expert-parallel: data-parallel ranks (each -tp threads, each running every case) "
             "sharing the routed experts, EP = TP x DP")
        .add("--mm-encoder-tp-mode", &GoldenCheckArgs::mm_encoder_tp_mode,
             "vision sets with -tp > 1: weights (shard the vision tower) or data (split the media items)")
        .add("--tp-communicator", &GoldenCheckArgs::tp_communicator,
             "with -tp > 1: threads (shared memory) or gloo (Gloo over TCP on 127.0.0.1, the cross-node path)")
        .add("--help,-h", &GoldenCheckArgs::help, "show this help");
    return t;
  }();
  return table;
}

const k2::OptionTable<GenerateArgs>& generate_table() {
  static const auto table = [] {
    k2::OptionTable<GenerateArgs> t;
    t.add("--prompt-ids", &GenerateArgs::prompt_ids, "comma-separated prompt token ids (required)")
        .add("--max-tokens", &GenerateArgs::max_tokens, "tokens to generate")
        .add("--ignore-eos", &GenerateArgs::ignore_eos, "do not stop at an eos token of the config")
        .add("--block-size", &GenerateArgs::block_size, "KV cache block size, a power of two")
        .add("--help,-h", &GenerateArgs::help, "show this help");
    return t;
  }();
  return table;
}

constexpr const char* kGoldenUsage = "k2serve golden-check DIR [options]";
constexpr const char* kGenerateUsage = "k2serve generate MODEL_DIR --prompt-ids 1,2,3 [options]";

int fail(const std::string& command, const k2::Status& status) {
  std::fprintf(stderr, "k2serve %s: %s\n", command.c_str(), status.to_string().c_str());
  return status.code() == k2::Code::kInvalidArgument ? 2 : 1;
}

k2::Status check_block_size(int64_t b) {
  if (b <= 0 || (b & (b - 1)) != 0) return k2::invalid_argument("--block-size must be a power of two");
  return {};
}

k2::Result<std::vector<int32_t>> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    int64_t v = 0;
    k2::Status s = k2::parse_option_value(text.substr(start, comma - start), &v);
    if (!s.ok() || v < 0 || v > INT32_MAX) return k2::invalid_argument("bad --prompt-ids entry in '" + text + "'");
    ids.push_back(static_cast<int32_t>(v));
    start = comma + 1;
  }
  if (ids.empty()) return k2::invalid_argument("--prompt-ids is required");
  return ids;
}

int golden_check_main(const std::vector<std::string>& args) {
  GoldenCheckArgs a;
  std::vector<std::string> dirs;
  k2::Status s = golden_table().parse(args, a, &dirs);
  if (a.help) {
    std::cout << golden_table().help(GoldenCheckArgs{}, kGoldenUsage)
              << "\nDIR holds a checkpoint plus golden.json and golden.safetensors. Prints one line per check\n"
                 "and a last line 'N passed, M failed'; exits 0 only when all pass.\n";
    return 0;
  }
  if (s.ok()) s = check_block_size(a.block_size);
  if (s.ok() && dirs.size() != 1) s = k2::invalid_argument("golden-check needs exactly one directory");
  if (s.ok() && (a.tensor_parallel_size < 1 || a.tensor_parallel_size > 64)) {
    s = k2::invalid_argument("--tensor-parallel-size must be in [1, 64]");
  }
  if (s.ok() && (a.data_parallel_size < 1 || a.data_parallel_size * a.tensor_parallel_size > 64)) {
    s = k2::invalid_argument("--data-parallel-size must be at least 1, with at most 64 ranks in all");
  }
  if (s.ok() && a.data_parallel_size > 1 && !a.enable_expert_parallel) {
    s = k2::invalid_argument("--data-parallel-size > 1 needs --enable-expert-parallel (DP ranks only share experts)");
  }
  if (s.ok()) s = k2::check_local_group_kind(a.tp_communicator);
  if (!s.ok()) return fail("golden-check", s);
  k2::GoldenCheckOptions options;
  options.block_size = a.block_size;
  options.tensor_parallel_size = static_cast<int>(a.tensor_parallel_size);
  options.expert_parallel = a.enable_expert_parallel;
  options.data_parallel_size = static_cast<int>(a.data_parallel_size);
  options.mm_encoder_tp_mode = a.mm_encoder_tp_mode;
  options.tp_communicator = a.tp_communicator;
  auto layouts = k2::weight_layouts_for(a.fast ? "bfloat16" : a.dtype, a.quantization);
  if (!layouts.ok()) return fail("golden-check", layouts.status());
  options.layouts = *layouts;
  k2::Result<bool> ok = k2::run_golden_check(dirs[0], std::cout, options);
  if (!ok.ok()) return fail("golden-check", ok.status());
  return *ok ? 0 : 1;
}

int generate_main(const std::vector<std::string>& args) {
  GenerateArgs a;
  std::vector<std::string> dirs;
  k2::Status s = generate_table().parse(args, a, &dirs);
  if (a.help) {
    std::cout << generate_table().help(GenerateArgs{}, kGenerateUsage)
              << "\nPrints the generated ids on one line, separated by spaces.\n";
    return 0;
  }
  if (s.ok()) s = check_block_size(a.block_size);
  if (s.ok() && dirs.size() != 1) s = k2::invalid_argument("generate needs exactly one model directory");
  if (s.ok() && a.max_tokens < 0) s = k2::invalid_argument("--max-tokens must be >= 0");
  if (!s.ok()) return fail("generate", s);
  auto prompt = parse_ids(a.prompt_ids);
  if (!prompt.ok()) return fail("generate", prompt.status());
  auto model = k2::load_model(dirs[0]);
  if (!model.ok()) return fail("generate", model.status());
  k2::GenerateOptions options;
  options.max_tokens = a.max_tokens;
  options.stop_at_eos = !a.ignore_eos;
  options.block_size = a.block_size;
  auto ids = k2::generate_greedy(**model, *prompt, options);
  if (!ids.ok()) return fail("generate", ids.status());
  for (size_t i = 0; i < ids->size(); ++i) std::cout << (i ? " " : "") << (*ids)[i];
  std::cout << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  k2::init_logging("worker");  // logs go to stderr: stdout carries the command's results
  const std::vector<std::string> args(argc > 1 ? argv + 2 : argv + argc, argv + argc);
  const std::string command = argc > 1 ? argv[1] : "";
  if (command == "golden-check") return golden_check_main(args);
  if (command == "generate") return generate_main(args);
  if (command == "worker") return k2::worker_main(args);
  if (command == "make-random-model") return k2::bench::make_random_model_command(args);
  if (command == "bench" && !args.empty() && args[0] == "latency")
    return k2::bench::bench_latency_command({args.begin() + 1, args.end()});
  if (command == "bench" && !args.empty() && args[0] == "throughput")
    return k2::bench::bench_throughput_command({args.begin() + 1, args.end()});
  std::fprintf(stderr,
               "usage: k2serve-worker <golden-check|generate|worker|make-random-model|bench latency|bench throughput> "
               "[options]\n"
               "This is the worker process of k2serve; run 'k2serve --help'.\n");
  return command == "--help" || command == "-h" ? 0 : 2;
}
