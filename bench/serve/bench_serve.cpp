#include "bench/serve/bench_serve.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/serve/load_client.h"
#include "bench/serve/random_dataset.h"
#include "enginecore/protocol/option_table.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2::bench {
namespace {

using O = BenchServeOptions;

const OptionTable<O>& bench_serve_table() {
  static const auto table = [] {
    OptionTable<O> t;
    t.add("--backend", &O::backend, "label of the server kind (result file and name only)")
        .add("--base-url", &O::base_url, "server URL, e.g. http://127.0.0.1:8000 (overrides --host/--port)")
        .add("--host", &O::host, "server host")
        .add("--port", &O::port, "server port")
        .add("--endpoint", &O::endpoint, "API path (a completions endpoint: prompts are token ids)")
        .add("--model", &O::model, "model name sent in requests; a local directory also gives the vocabulary size")
        .add("--served-model-name", &O::served_model_name, "name sent in requests (default: --model)")
        .add("--dataset-name", &O::dataset_name, "only 'random' is implemented")
        .add("--random-input-len", &O::random_input_len, "prompt tokens per request")
        .add("--random-output-len", &O::random_output_len, "max_tokens per request")
        .add("--random-range-ratio", &O::random_range_ratio, "lengths vary uniformly by this ratio, [0, 1)")
        .add("--random-prefix-len", &O::random_prefix_len, "random ids shared by every prompt, before it")
        .add("--random-vocab-size", &O::random_vocab_size, "ids are drawn below this (default: --model's config.json)")
        .add("--num-prompts", &O::num_prompts, "number of requests")
        .add("--request-rate", &O::request_rate, "requests per second (inf: all at once; else Poisson arrivals)")
        .add("--burstiness", &O::burstiness, "gamma shape of the arrival gaps (1: Poisson)")
        .add("--max-concurrency", &O::max_concurrency, "cap on requests in flight (0: none)")
        .add("--seed", &O::seed, "seed of the prompts and arrivals")
        .add("--ignore-eos", &O::ignore_eos, "send ignore_eos so every request generates its full output length")
        .add("--temperature", &O::temperature, "sampling temperature sent in requests")
        .add("--percentile-metrics", &O::percentile_metrics, "comma list of ttft,tpot,itl,e2el to report")
        .add("--metric-percentiles", &O::metric_percentiles, "comma list of percentiles, e.g. 50,90,99")
        .add("--save-result", &O::save_result, "write the results as JSON")
        .add("--result-dir", &O::result_dir, "folder of the result file (default: current)")
        .add("--result-filename", &O::result_filename, "result file name (default: vLLM's pattern)")
        .add("--disable-test-run", &O::disable_test_run, "skip the single-prompt check before the run")
        .add("--help,-h", &O::help, "show this help");
    return t;
  }();
  return table;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

Status validate(const O& o) {
  if (o.dataset_name != "random")
    return unimplemented("--dataset-name " + o.dataset_name + ": only 'random' is implemented");
  if (o.model.empty() && o.served_model_name.empty()) return invalid_argument("--model is required");
  if (o.max_concurrency < 0) return invalid_argument("--max-concurrency must be >= 0");
  if (!(o.request_rate > 0)) return invalid_argument("--request-rate must be positive (inf for all at once)");
  if (!(o.burstiness > 0)) return invalid_argument("--burstiness must be positive");
  for (const auto& m : split_list(o.percentile_metrics))
    if (m != "ttft" && m != "tpot" && m != "itl" && m != "e2el")
      return invalid_argument("--percentile-metrics: unknown metric '" + m + "' (ttft, tpot, itl, e2el)");
  if (parse_percentiles(o.metric_percentiles).empty())
    return invalid_argument("--metric-percentiles: expected numbers in [0, 100], got '" + o.metric_percentiles + "'");
  return Status::ok_status();
}

// Ids are drawn below the tokenizer's regular vocabulary, as vLLM's RandomDataset draws below
// tokenizer.vocab_size: the server refuses ids its tokenizer does not know, and a random model's
// config.json may declare more rows than its tokenizer has (make-random-model's small
// tokenizer). Without a tokenizer in MODEL, config.json's vocab_size.
Result<int64_t> vocab_size_of(const O& o) {
  if (o.random_vocab_size > 0) return o.random_vocab_size;
  const std::filesystem::path config = std::filesystem::path(o.model) / "config.json";
  std::ifstream in(config);
  if (!in) return invalid_argument("--random-vocab-size is needed (no " + config.string() + " to read vocab_size from)");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("vocab_size") || !j["vocab_size"].is_number_integer())
    return invalid_argument(config.string() + " has no integer vocab_size; pass --random-vocab-size");
  const auto model_vocab = j["vocab_size"].get<int64_t>();
  if (!std::filesystem::exists(std::filesystem::path(o.model) / "tiktoken.model")) return model_vocab;
  K2_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::load(o.model));
  return std::min<int64_t>(model_vocab, tokenizer->num_base_tokens());
}

std::string request_body(const O& o, const SampleRequest& r) {
  nlohmann::json body = {
      {"model", o.served_model_name.empty() ? o.model : o.served_model_name},
      {"prompt", r.prompt_ids},
      {"max_tokens", r.expected_output_len},
      {"temperature", o.temperature},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
  };
  if (o.ignore_eos) body["ignore_eos"] = true;
  return body.dump();
}

std::string base_model_id(const O& o) {
  const std::string name = o.served_model_name.empty() ? o.model : o.served_model_name;
  std::string id = std::filesystem::path(name).filename().string();
  if (id.empty()) id = std::filesystem::path(name).parent_path().filename().string();
  return id.empty() ? "model" : id;
}

std::string timestamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), format, &tm);
  return buf;
}

std::string rate_text(double rate) {
  if (std::isinf(rate)) return "inf";
  std::ostringstream out;
  out << rate;
  return out.str();
}

// vLLM's file name: {backend}-{rate}qps[-concurrency{N}]-{model}-{YYYYmmdd-HHMMSS}.json.
std::string default_result_filename(const O& o) {
  std::string name = o.backend + "-" + rate_text(o.request_rate) + "qps";
  if (o.max_concurrency > 0) name += "-concurrency" + std::to_string(o.max_concurrency);
  return name + "-" + base_model_id(o) + "-" + timestamp("%Y%m%d-%H%M%S") + ".json";
}

Result<std::string> save_result(const O& o, const nlohmann::json& result) {
  std::filesystem::path dir = o.result_dir.empty() ? std::filesystem::current_path() : std::filesystem::path(o.result_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return io_error("cannot create " + dir.string() + ": " + ec.message());
  const std::filesystem::path path = dir / (o.result_filename.empty() ? default_result_filename(o) : o.result_filename);
  std::ofstream out(path);
  out << result.dump(2) << "\n";
  out.close();
  if (!out) return io_error("cannot write " + path.string());
  return path.string();
}

nlohmann::json run_metadata(const O& o) {
  nlohmann::json j;
  j["date"] = timestamp("%Y%m%d-%H%M%S");
  j["backend"] = o.backend;
  j["model_id"] = o.model;
  j["tokenizer_id"] = nullptr;
  j["num_prompts"] = o.num_prompts;
  j["request_rate"] = std::isinf(o.request_rate) ? nlohmann::json("inf") : nlohmann::json(o.request_rate);
  j["burstiness"] = o.burstiness;
  j["max_concurrency"] = o.max_concurrency > 0 ? nlohmann::json(o.max_concurrency) : nlohmann::json(nullptr);
  return j;
}

}  // namespace

Result<BenchServeOptions> parse_bench_serve_options(const std::vector<std::string>& args) {
  O o;
  K2_RETURN_IF_ERROR(bench_serve_table().parse(args, o, nullptr));
  if (!o.help) K2_RETURN_IF_ERROR(validate(o));
  return o;
}

Result<BenchServeReport> run_bench_serve(const O& o) {
  HttpTarget target;
  if (!o.base_url.empty()) {
    K2_ASSIGN_OR_RETURN(target, parse_base_url(o.base_url, o.endpoint));
  } else {
    if (o.port <= 0 || o.port > 65535) return invalid_argument("--port out of range");
    target.host = o.host;
    target.port = static_cast<uint16_t>(o.port);
    target.path = o.endpoint;
  }
  RandomDatasetOptions d;
  d.num_prompts = o.num_prompts;
  d.input_len = o.random_input_len;
  d.output_len = o.random_output_len;
  d.range_ratio = o.random_range_ratio;
  d.prefix_len = o.random_prefix_len;
  d.seed = static_cast<uint64_t>(o.seed);
  K2_ASSIGN_OR_RETURN(d.vocab_size, vocab_size_of(o));
  K2_ASSIGN_OR_RETURN(std::vector<SampleRequest> samples, make_random_requests(d));

  if (!o.disable_test_run) {
    std::cout << "Starting initial single prompt test run..." << std::endl;
    LoadPlan probe;
    probe.bodies = {request_body(o, samples[0])};
    probe.prompt_lens = {static_cast<int64_t>(samples[0].prompt_ids.size())};
    K2_ASSIGN_OR_RETURN(LoadResult r, run_load(target, probe));
    if (!r.outputs[0].success)
      return unavailable("initial test run failed: " + r.outputs[0].error +
                         " (check the server at http://" + target.host + ":" + std::to_string(target.port) + target.path + ")");
    std::cout << "Initial test run completed. Starting main benchmark run..." << std::endl;
  }
  LoadPlan plan;
  for (const auto& s : samples) {
    plan.bodies.push_back(request_body(o, s));
    plan.prompt_lens.push_back(static_cast<int64_t>(s.prompt_ids.size()));
  }
  plan.request_rate = o.request_rate;
  plan.burstiness = o.burstiness;
  plan.max_concurrency = o.max_concurrency;
  plan.seed = static_cast<uint64_t>(o.seed);
  std::cout << "Traffic request rate: " << rate_text(o.request_rate) << "\n"
            << "Burstiness factor: " << o.burstiness << (o.burstiness == 1.0 ? " (Poisson process)" : "") << "\n"
            << "Maximum request concurrency: " << (o.max_concurrency > 0 ? std::to_string(o.max_concurrency) : "None")
            << std::endl;
  K2_ASSIGN_OR_RETURN(LoadResult load, run_load(target, plan));

  const std::vector<std::string> metrics = split_list(o.percentile_metrics);
  BenchServeReport report;
  report.metrics = calculate_metrics(load.outputs, load.duration_s, parse_percentiles(o.metric_percentiles));
  TableOptions table;
  table.percentile_metrics = metrics;
  table.max_concurrency = o.max_concurrency;
  report.table = format_table(report.metrics, table);
  report.result = run_metadata(o);
  report.result.update(result_json(report.metrics, load.outputs, metrics));
  if (o.save_result) {
    K2_ASSIGN_OR_RETURN(report.saved_path, save_result(o, report.result));
  }
  return report;
}

int bench_serve_command(const std::vector<std::string>& args) {
  Result<O> options = parse_bench_serve_options(args);
  if (!options.ok()) {
    std::cerr << "k2serve bench serve: " << options.status().message() << "\n";
    return 2;
  }
  if (options->help) {
    std::cout << bench_serve_table().help(O{}, "k2serve bench serve --model MODEL [--base-url URL] [options]");
    return 0;
  }
  Result<BenchServeReport> report = run_bench_serve(*options);
  if (!report.ok()) {
    std::cerr << "k2serve bench serve: " << report.status().message() << "\n";
    return 1;
  }
  std::cout << report->table << std::flush;
  if (report->saved_path) std::cout << "Saved results to " << *report->saved_path << "\n";
  return report->metrics.failed == 0 ? 0 : 1;
}

}  // namespace k2::bench
