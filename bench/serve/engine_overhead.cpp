#include "bench/serve/engine_overhead.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include "bench/serve/load_client.h"
#include "bench/serve/random_dataset.h"
#include "bench/serve/server_process.h"
#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/option_table.h"

namespace k2::bench {
namespace {

constexpr double kGoalFixedUs = 10.0;
constexpr double kGoalFraction = 0.05;

struct OverheadOptions {
  std::string k2serve;
  std::string base_config;
  std::string tokenizer;
  std::string batch_sizes = "1,64";
  int64_t input_len = 32;
  int64_t output_len = 256;
  int64_t rounds = 2;
  int64_t seed = 0;
  bool help = false;
};

using O = OverheadOptions;

const OptionTable<O>& overhead_table() {
  static const auto table = [] {
    OptionTable<O> t;
    t.add("--k2serve", &O::k2serve, "the k2serve binary to start (default: next to this one)")
        .add("--base-config", &O::base_config, "a model config.json to shrink (vocabulary and architecture are kept)")
        .add("--tokenizer", &O::tokenizer, "tokenizer directory for the server")
        .add("--batch-sizes", &O::batch_sizes, "comma list of concurrent streams per phase")
        .add("--input-len", &O::input_len, "prompt tokens per request")
        .add("--output-len", &O::output_len, "generated tokens per request (ignore_eos)")
        .add("--rounds", &O::rounds, "times each phase is run")
        .add("--seed", &O::seed, "seed of the prompts")
        .add("--help,-h", &O::help, "show this help");
    return t;
  }();
  return table;
}

double field(const std::smatch& m, size_t i) { return std::stod(m[i].str()); }

// "1,64" -> {1, 64}; empty on anything else.
std::vector<int64_t> parse_batch_sizes(const std::string& list) {
  std::vector<int64_t> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v <= 0 || v > 1000000) return {};
    out.push_back(v);
  }
  return out;
}

Result<std::filesystem::path> make_temp_dir() {
  std::string templ = (std::filesystem::temp_directory_path() / "k2-bench-overhead-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) return io_error("mkdtemp failed under " + templ);
  return std::filesystem::path(templ);
}

Result<std::filesystem::path> write_tiny_model(const O& o, const std::filesystem::path& dir) {
  std::ifstream in(o.base_config);
  if (!in) return invalid_argument("cannot read --base-config " + o.base_config);
  nlohmann::json base = nlohmann::json::parse(in, nullptr, false);
  if (base.is_discarded() || !base.is_object()) return invalid_argument(o.base_config + " is not a JSON object");
  const std::filesystem::path model = dir / "tiny-model";
  std::filesystem::create_directories(model);
  std::ofstream out(model / "config.json");
  out << shrink_config(std::move(base)).dump(2) << "\n";
  if (!out) return io_error("cannot write " + (model / "config.json").string());
  return model;
}

// B requests at once, each input_len ids and output_len tokens with ignore_eos.
Result<LoadPlan> phase_plan(const O& o, int64_t batch, int64_t vocab, int64_t round) {
  RandomDatasetOptions d;
  d.num_prompts = batch;
  d.input_len = o.input_len;
  d.output_len = o.output_len;
  d.vocab_size = vocab;
  d.seed = static_cast<uint64_t>(o.seed + round);
  K2_ASSIGN_OR_RETURN(std::vector<SampleRequest> samples, make_random_requests(d));
  LoadPlan plan;
  for (const auto& s : samples) {
    nlohmann::json body = {{"model", "tiny-model"},     {"prompt", s.prompt_ids}, {"max_tokens", s.expected_output_len},
                           {"temperature", 0.0},        {"ignore_eos", true},     {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    plan.bodies.push_back(body.dump());
    plan.prompt_lens.push_back(static_cast<int64_t>(s.prompt_ids.size()));
  }
  return plan;
}

// The step-timing lines the server logged after byte `offset` of its log; waits a little
// for them, since the engine logs them only once it is idle again.
std::vector<StepTimingRow> await_rows(const ServerProcess& server, size_t offset) {
  for (int i = 0; i < 50; ++i) {
    const std::string log = server.log_text();
    if (log.size() > offset) {
      auto rows = parse_step_timing(log.substr(offset));
      if (!rows.empty()) return rows;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

const char* verdict(double overhead, double step) {
  return overhead <= kGoalFixedUs + kGoalFraction * step ? "met" : "MISSED";
}

void print_tables(const std::vector<StepTimingRow>& rows) {
  std::printf("Means per step (us): overhead = input + schedule + write + update; wait = workers' forward + "
              "sampling + plan/result IPC\n");
  std::printf("%6s %7s %9s %11s %9s %10s %12s %9s %9s %9s %9s  %s\n", "batch", "steps", "input_us", "schedule_us",
              "write_us", "update_us", "overhead_us", "wait_us", "step_us", "ovh/step", "goal_us", "goal");
  for (const auto& r : rows)
    std::printf("%6lld %7lld %9.2f %11.2f %9.2f %10.2f %12.2f %9.2f %9.2f %8.2f%% %9.2f  %s\n",
                static_cast<long long>(r.batch), static_cast<long long>(r.steps), r.input_us, r.schedule_us,
                r.write_us, r.update_us, r.overhead_us(), r.wait_us, r.step_us(),
                100.0 * r.overhead_us() / r.step_us(), kGoalFixedUs + kGoalFraction * r.step_us(),
                verdict(r.overhead_us(), r.step_us()));
  std::printf("Medians per step (us)\n%6s %12s %9s %9s %9s  %s\n", "batch", "overhead_us", "step_us", "ovh/step",
              "goal_us", "goal");
  for (const auto& r : rows)
    if (r.step_p50_us > 0)
      std::printf("%6lld %12.2f %9.2f %8.2f%% %9.2f  %s\n", static_cast<long long>(r.batch), r.overhead_p50_us,
                  r.step_p50_us, 100.0 * r.overhead_p50_us / r.step_p50_us,
                  kGoalFixedUs + kGoalFraction * r.step_p50_us, verdict(r.overhead_p50_us, r.step_p50_us));
}

Status run_overhead(const O& o) {
  const std::vector<int64_t> batches = parse_batch_sizes(o.batch_sizes);
  if (batches.empty()) return invalid_argument("--batch-sizes: expected positive integers, got '" + o.batch_sizes + "'");
  if (o.base_config.empty() || o.tokenizer.empty()) return invalid_argument("--base-config and --tokenizer are required");
  K2_ASSIGN_OR_RETURN(std::filesystem::path dir, make_temp_dir());
  K2_ASSIGN_OR_RETURN(std::filesystem::path model, write_tiny_model(o, dir));
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(model / "config.json"), nullptr, false);
  const int64_t vocab = config.is_object() ? config.value("vocab_size", int64_t{0}) : 0;
  if (vocab <= 0) return invalid_argument("the base config has no vocab_size");
  ::setenv("K2_STEP_TIMING", "1", 1);
  const std::filesystem::path binary = o.k2serve.empty() ? self_exe_dir() / "k2serve" : std::filesystem::path(o.k2serve);
  K2_ASSIGN_OR_RETURN(ServerProcess server,
                      ServerProcess::start(binary,
                                           {"serve", model.string(), "--tokenizer", o.tokenizer, "--load-format", "dummy",
                                            "--host", "127.0.0.1", "--port", "0", "--served-model-name", "tiny-model"},
                                           dir / "server.log", std::chrono::seconds(300)));
  HttpTarget target;
  target.port = static_cast<uint16_t>(server.port());
  std::cout << "tiny model: " << model.string() << " (hidden " << config.value("hidden_size", 0) << ", "
            << config.value("num_hidden_layers", 0) << " layers), server log " << server.log_path().string() << "\n";
  K2_ASSIGN_OR_RETURN(LoadPlan warm_plan, phase_plan(o, 1, vocab, -1));
  K2_ASSIGN_OR_RETURN(LoadResult warm, run_load(target, warm_plan));
  if (!warm.outputs[0].success) return unavailable("warm-up request failed: " + warm.outputs[0].error);
  (void)await_rows(server, 0);
  std::vector<StepTimingRow> results;
  for (int64_t batch : batches) {
    std::vector<StepTimingRow> rows;
    for (int64_t round = 0; round < o.rounds; ++round) {
      const size_t offset = server.log_text().size();
      K2_ASSIGN_OR_RETURN(LoadPlan plan, phase_plan(o, batch, vocab, round));
      K2_ASSIGN_OR_RETURN(LoadResult load, run_load(target, plan));
      for (const auto& out : load.outputs)
        if (!out.success) return unavailable("a request of the batch-" + std::to_string(batch) + " phase failed: " + out.error);
      auto got = await_rows(server, offset);
      rows.insert(rows.end(), got.begin(), got.end());
    }
    if (auto row = merge_rows(rows, batch)) results.push_back(*row);
    else std::cout << "batch " << batch << ": the engine logged no step at exactly this batch size\n";
  }
  print_tables(results);
  std::cout << "goal: overhead <= " << kGoalFixedUs << " us + " << kGoalFraction * 100 << "% of step time at batch 64\n";
  server.stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return Status::ok_status();
}

}  // namespace

std::vector<StepTimingRow> parse_step_timing(const std::string& log) {
  // Numbers as the engine prints them ("%.2f"), followed by a space or the line's end.
  static const std::regex kLine(
      R"(step timing: batch=(\d{1,9}) steps=(\d{1,18}) input_us=(\d{1,15}\.\d{2}) schedule_us=(\d{1,15}\.\d{2}) )"
      R"(write_us=(\d{1,15}\.\d{2}) wait_us=(\d{1,15}\.\d{2}) update_us=(\d{1,15}\.\d{2}))"
      R"((?: overhead_p50_us=(\d{1,15}\.\d{2}) step_p50_us=(\d{1,15}\.\d{2}))?(\s|$))");
  std::vector<StepTimingRow> rows;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, kLine)) continue;
    try {
      StepTimingRow r;
      r.batch = std::stoll(m[1].str());
      r.steps = std::stoll(m[2].str());
      r.input_us = field(m, 3);
      r.schedule_us = field(m, 4);
      r.write_us = field(m, 5);
      r.wait_us = field(m, 6);
      r.update_us = field(m, 7);
      if (m[8].matched) {
        r.overhead_p50_us = field(m, 8);
        r.step_p50_us = field(m, 9);
      }
      rows.push_back(r);
    } catch (const std::exception&) {
      continue;  // "1.2.3" matches the pattern but is no number
    }
  }
  return rows;
}

std::optional<StepTimingRow> merge_rows(const std::vector<StepTimingRow>& rows, int64_t batch) {
  StepTimingRow total;
  total.batch = batch;
  for (const auto& r : rows) {
    if (r.batch != batch || r.steps <= 0) continue;
    const double n = static_cast<double>(r.steps);
    total.steps += r.steps;
    total.input_us += r.input_us * n;
    total.schedule_us += r.schedule_us * n;
    total.write_us += r.write_us * n;
    total.wait_us += r.wait_us * n;
    total.update_us += r.update_us * n;
    total.overhead_p50_us += r.overhead_p50_us * n;
    total.step_p50_us += r.step_p50_us * n;
  }
  if (total.steps == 0) return std::nullopt;
  const double n = static_cast<double>(total.steps);
  for (double* v : {&total.input_us, &total.schedule_us, &total.write_us, &total.wait_us, &total.update_us,
                    &total.overhead_p50_us, &total.step_p50_us})
    *v /= n;
  return total;
}

nlohmann::json shrink_config(nlohmann::json c) {
  // Small enough that a forward pass costs little next to the engine's per-step work,
  // while every architectural feature (MLA, MoE, the dense first layer) stays in.
  const std::pair<const char*, int> kTiny[] = {
      {"hidden_size", 64},        {"intermediate_size", 128},  {"moe_intermediate_size", 32},
      {"num_hidden_layers", 2},   {"first_k_dense_replace", 1}, {"n_routed_experts", 4},
      {"num_experts_per_tok", 2}, {"n_shared_experts", 1},     {"n_group", 1},
      {"topk_group", 1},          {"num_attention_heads", 2},  {"num_key_value_heads", 2},
      {"q_lora_rank", 32},        {"kv_lora_rank", 32},        {"qk_nope_head_dim", 16},
      {"qk_rope_head_dim", 16},   {"v_head_dim", 16},          {"num_nextn_predict_layers", 0},
  };
  for (const auto& [key, value] : kTiny) c[key] = value;
  return c;
}

int bench_overhead_command(const std::vector<std::string>& args) {
  O o;
  Status s = overhead_table().parse(args, o, nullptr);
  if (s.ok() && o.help) {
    std::cout << overhead_table().help(O{}, "k2serve bench overhead --base-config CONFIG.json --tokenizer DIR");
    return 0;
  }
  if (s.ok()) s = run_overhead(o);
  if (!s.ok()) {
    std::cerr << "k2serve bench overhead: " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace k2::bench
