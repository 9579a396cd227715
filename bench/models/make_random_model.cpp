#include "bench/models/make_random_model.h"

#include <sched.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/models/random_tensors.h"
#include "bench/models/safetensors_writer.h"
#include "bench/models/tokenizer_files.h"
#include "enginecore/protocol/option_table.h"

#ifndef K2_DEFAULT_TOKENIZER_DIR
#define K2_DEFAULT_TOKENIZER_DIR ""
#endif

namespace k2::bench {
namespace {

using O = RandomModelOptions;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kUsage = "k2serve make-random-model --preset NAME --weights bf16|fp8|int4 [options] OUT_DIR";

std::string preset_list() {
  std::string s;
  for (const ModelPreset& p : model_presets()) s += (s.empty() ? "" : ", ") + p.name;
  return s;
}

const OptionTable<O>& table() {
  static const auto t = [] {
    OptionTable<O> t;
    t.add("--preset", &O::preset, "model shape: " + preset_list() + " (--help lists them)")
        .add("--weights", &O::weights, "bf16 | fp8 (128x128 blocks) | int4 (routed experts, pack-quantized, group 32)")
        .add("--seed", &O::seed, "random seed; the same options give the same bytes")
        .add("--tokenizer", &O::tokenizer, "Kimi tokenizer directory to copy (default: the bundled demo tokenizer)")
        .add("--max-shard-mb", &O::max_shard_mb, "largest shard in MiB")
        .add("--threads", &O::threads, "generator threads (0: all CPUs)")
        .add("--vocab-size", &O::vocab_size, "vocabulary rows (0: the preset's); at least the tokenizer's ids")
        .add("--dry-run", &O::dry_run, "print the sizes of what would be written and write nothing")
        .add("--overwrite", &O::overwrite, "write into a non-empty OUT_DIR, removing its old shards")
        .add("--help,-h", &O::help, "show this help");
    return t;
  }();
  return t;
}

int cpu_count() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

struct Shard {
  std::string file;
  std::vector<size_t> tensors;
};

std::vector<Shard> plan_shards(const std::vector<TensorSpec>& specs, uint64_t max_bytes) {
  std::vector<Shard> shards(1);
  uint64_t bytes = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!shards.back().tensors.empty() && bytes + specs[i].bytes() > max_bytes) {
      shards.emplace_back();
      bytes = 0;
    }
    shards.back().tensors.push_back(i);
    bytes += specs[i].bytes();
  }
  const std::string n = std::to_string(shards.size());
  for (size_t k = 0; k < shards.size(); ++k) shards[k].file = "model-" + std::to_string(k + 1) + "-of-" + n + ".safetensors";
  return shards;
}

// Splits one chunk over the generator threads (element-aligned pieces).
void fill_parallel(const TensorSpec& spec, uint64_t seed, uint64_t offset, std::span<uint8_t> out, int threads) {
  const size_t esize = dtype_size(spec.dtype);
  const uint64_t n = out.size() / esize;
  const uint64_t first = offset / esize;
  if (threads <= 1 || n < 65536) {
    fill_tensor(spec, seed, first, out);
    return;
  }
  std::vector<std::thread> pool;
  const uint64_t per = (n + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const uint64_t b = std::min(n, per * t), e = std::min(n, per * (t + 1));
    if (b < e) pool.emplace_back([&, b, e] { fill_tensor(spec, seed, first + b, out.subspan(b * esize, (e - b) * esize)); });
  }
  fill_tensor(spec, seed, first, out.subspan(0, std::min(n, per) * esize));
  for (std::thread& th : pool) th.join();
}

Status prepare_dir(const fs::path& dir, bool overwrite) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
    if (!overwrite) return invalid_argument(dir.string() + " is not empty (pass --overwrite to write into it)");
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("model-", 0) == 0 && e.path().extension() == ".safetensors") fs::remove(e.path(), ec);
    }
  }
  fs::create_directories(dir, ec);
  if (ec) return io_error("cannot create " + dir.string() + ": " + ec.message());
  return Status::ok_status();
}

Status write_json(const fs::path& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.close();
  if (!out) return io_error("cannot write " + path.string());
  return Status::ok_status();
}

// The fraction of a tensor that one token reads.
double active_share(const TensorSpec& s, const ModelPreset& p) {
  if (s.name == "model.embed_tokens.weight") return 1.0 / static_cast<double>(p.vocab_size);
  if (s.name.find(".mlp.experts.") != std::string::npos) {
    return static_cast<double>(p.num_experts_per_tok) / static_cast<double>(p.n_routed_experts);
  }
  return 1.0;
}

std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(n) / 1e6);
  return buf;
}

}  // namespace

Result<RandomModelOptions> parse_make_random_model_options(const std::vector<std::string>& args) {
  O o;
  std::vector<std::string> positionals;
  K2_RETURN_IF_ERROR(table().parse(args, o, &positionals));
  if (o.help) return o;
  if (positionals.size() != 1) return invalid_argument("expected exactly one OUT_DIR (usage: " + std::string(kUsage) + ")");
  o.out_dir = positionals[0];
  if (o.preset.empty()) return invalid_argument("--preset is required (one of: " + preset_list() + ")");
  K2_RETURN_IF_ERROR(find_model_preset(o.preset).status());
  if (!parse_random_weights(o.weights)) return invalid_argument("--weights must be bf16, fp8 or int4, not '" + o.weights + "'");
  if (o.seed < 0) return invalid_argument("--seed must be >= 0");
  if (o.max_shard_mb < 1) return invalid_argument("--max-shard-mb must be >= 1");
  if (o.threads < 0) return invalid_argument("--threads must be >= 0");
  if (o.vocab_size < 0 || o.vocab_size > (int64_t{1} << 31) - 1) return invalid_argument("--vocab-size out of range");
  return o;
}

Result<RandomModelReport> write_random_model(const O& o, ProgressStyle progress_style) {
  const auto start = std::chrono::steady_clock::now();
  RandomModelReport r;
  r.dir = o.out_dir;
  K2_ASSIGN_OR_RETURN(r.preset, find_model_preset(o.preset));
  const std::optional<RandomWeights> weights = parse_random_weights(o.weights);
  if (!weights) return invalid_argument("--weights must be bf16, fp8 or int4");
  r.weights = *weights;
  const fs::path tokenizer = o.tokenizer.empty() ? fs::path(K2_DEFAULT_TOKENIZER_DIR) : fs::path(o.tokenizer);
  if (tokenizer.empty()) return invalid_argument("--tokenizer DIR is required (this build bundles none)");
  K2_ASSIGN_OR_RETURN(TokenizerInfo tok, read_tokenizer_dir(tokenizer));
  // The embedding must cover every id the tokenizer can produce; larger vocabularies are
  // padding, as in the real checkpoints (163840 rows for 163601 used ids).
  if (o.vocab_size > 0) r.preset.vocab_size = o.vocab_size;
  if (r.preset.vocab_size < tok.num_ids && o.vocab_size > 0) {
    return invalid_argument("--vocab-size " + std::to_string(o.vocab_size) + " is below the tokenizer's " +
                            std::to_string(tok.num_ids) + " ids");
  }
  r.preset.vocab_size = std::max(r.preset.vocab_size, tok.num_ids);

  const std::vector<TensorSpec> specs = plan_tensors(r.preset, r.weights);
  const std::vector<Shard> shards = plan_shards(specs, static_cast<uint64_t>(o.max_shard_mb) << 20);
  r.num_tensors = static_cast<int64_t>(specs.size());
  r.num_shards = static_cast<int64_t>(shards.size());
  for (const TensorSpec& s : specs) {
    r.tensor_bytes += s.bytes();
    r.active_bytes += active_share(s, r.preset) * static_cast<double>(s.bytes());
  }
  if (o.dry_run) return r;
  K2_RETURN_IF_ERROR(prepare_dir(r.dir, o.overwrite));

  const int threads = o.threads > 0 ? static_cast<int>(o.threads) : cpu_count();
  const uint64_t seed = static_cast<uint64_t>(o.seed);
  json weight_map = json::object();
  {
    ProgressReporter progress("writing " + r.dir.string(), r.tensor_bytes, progress_style);
    for (const Shard& shard : shards) {
      std::vector<TensorLayout> layout;
      for (size_t i : shard.tensors) {
        layout.push_back({specs[i].name, specs[i].dtype, specs[i].shape});
        weight_map[specs[i].name] = shard.file;
      }
      auto produce = [&](size_t k, uint64_t offset, std::span<uint8_t> out) {
        fill_parallel(specs[shard.tensors[k]], seed, offset, out, threads);
      };
      K2_RETURN_IF_ERROR(write_safetensors(r.dir / shard.file, layout, {{"format", "pt"}}, produce,
                                           [&](uint64_t n) { progress.advance(n); }));
    }
    progress.finish();
  }
  K2_RETURN_IF_ERROR(write_json(r.dir / "model.safetensors.index.json",
                                {{"metadata", {{"total_size", r.tensor_bytes}}}, {"weight_map", weight_map}}));
  K2_RETURN_IF_ERROR(copy_tokenizer_files(tokenizer, r.dir));
  K2_RETURN_IF_ERROR(write_json(r.dir / "config.json",
                                make_config_json(r.preset, r.weights, ConfigTokenIds{tok.bos, tok.eos})));
  K2_RETURN_IF_ERROR(write_json(r.dir / "random_model.json",
                                {{"generator", "k2serve make-random-model"},
                                 {"preset", r.preset.name},
                                 {"weights", random_weights_name(r.weights)},
                                 {"seed", o.seed},
                                 {"total_params", r.preset.total_params()},
                                 {"active_params", r.preset.active_params()},
                                 {"tensor_bytes", r.tensor_bytes},
                                 {"active_bytes_per_token", static_cast<uint64_t>(r.active_bytes)}}));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

int make_random_model_command(const std::vector<std::string>& args) {
  Result<O> o = parse_make_random_model_options(args);
  if (!o.ok()) {
    std::cerr << "k2serve make-random-model: " << o.status().message() << "\n";
    return 2;
  }
  if (o->help) {
    std::cout << table().help(O{}, kUsage) << "\npresets:\n";
    for (const ModelPreset& p : model_presets()) {
      std::cout << "  " << p.name << ": " << p.description << " (" << millions(p.total_params()) << " params, "
                << millions(p.active_params()) << " active per token)\n";
    }
    return 0;
  }
  Result<RandomModelReport> r = write_random_model(*o);
  if (!r.ok()) {
    std::cerr << "k2serve make-random-model: " << r.status().to_string() << "\n";
    return r.status().code() == Code::kInvalidArgument ? 2 : 1;
  }
  std::printf("%s %s: preset %s, %s weights, %s params (%s active), vocab %lld, %lld tensors in %lld shard(s), "
              "%.1f MB (%.1f MB read per token)",
              o->dry_run ? "would write" : "wrote", r->dir.c_str(), r->preset.name.c_str(),
              random_weights_name(r->weights), millions(r->preset.total_params()).c_str(),
              millions(r->preset.active_params()).c_str(), static_cast<long long>(r->preset.vocab_size),
              static_cast<long long>(r->num_tensors), static_cast<long long>(r->num_shards),
              static_cast<double>(r->tensor_bytes) / 1e6, r->active_bytes / 1e6);
  if (!o->dry_run) std::printf(" in %.1f s", r->seconds);
  std::printf("\n");
  return 0;
}

}  // namespace k2::bench
