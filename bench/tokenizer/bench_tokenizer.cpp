// Tokenizer throughput: k2serve's Kimi tokenizer against npm tiktoken (OpenAI's Rust core
// compiled to WASM, run by node in the same invocation), single-threaded, on the same
// corpus with the same full-size table (cl100k_base's 100,256 ranks in a Kimi-format
// directory, Kimi's regex and special tokens). Prints MB/s of both and the ratio.
//
// usage: bench_tokenizer [--tokenizer DIR] [--corpus FILE] [--tiktoken NODE_PKG_DIR]
//                        [--repeat N] [--trials N] [--no-node]
// Defaults use the build tree: the directory and npm package the tokenizer_cl100k test
// fixture makes (made here first if missing).
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/tokenizer/tokenizer.h"

namespace {

using nlohmann::json;

struct Options {
  std::string tokenizer = K2_BENCH_BUILD_DIR "/tokenizer_cl100k";
  std::string corpus = K2_SOURCE_DIR "/frontend/tokenizer/testdata/corpus.jsonl";
  std::string tiktoken = K2_BENCH_BUILD_DIR "/npm/node_modules/tiktoken";
  int repeat = 100;
  int trials = 5;
  bool node = true;
};

bool parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "--no-node") {
      o.node = false;
    } else if ((a == "--tokenizer" || a == "--corpus" || a == "--tiktoken" || a == "--repeat" ||
                a == "--trials") && (v = next()) != nullptr) {
      if (a == "--tokenizer") o.tokenizer = v;
      if (a == "--corpus") o.corpus = v;
      if (a == "--tiktoken") o.tiktoken = v;
      if (a == "--repeat") o.repeat = std::max(1, std::atoi(v));
      if (a == "--trials") o.trials = std::max(1, std::atoi(v));
    } else {
      std::fprintf(stderr, "unknown or incomplete argument: %s\n", a.c_str());
      return false;
    }
  }
  return true;
}

int run(const std::string& cmd) {
  std::fprintf(stderr, "+ %s\n", cmd.c_str());
  return std::system(cmd.c_str());
}

// Makes the npm package and the full-size directory when they are missing.
bool prepare(const Options& o) {
  const std::string npm_root = o.tiktoken.substr(0, o.tiktoken.rfind("/node_modules/"));
  if (!std::ifstream(o.tiktoken + "/package.json") &&
      run("mkdir -p '" + npm_root + "' && npm install --prefix '" + npm_root +
          "' --no-audit --no-fund --no-save tiktoken@1") != 0) {
    return false;
  }
  if (!std::ifstream(o.tokenizer + "/tiktoken.model") &&
      run("node '" K2_SOURCE_DIR "/frontend/tokenizer/testdata/make_cl100k.mjs' '" + o.tiktoken + "' '" K2_SOURCE_DIR
          "/tests/data/text/tok-1024' '" + o.corpus + "' '" + o.tokenizer + "'") != 0) {
    return false;
  }
  return true;
}

struct Measure {
  double mbps = 0;
  size_t tokens = 0;
};

// Process CPU time, not wall time: on a shared machine the wall clock also counts the time
// other processes hold the core. bench_tiktoken.mjs measures node the same way.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

template <class Fn>
Measure best_of(int trials, size_t bytes, Fn&& fn) {
  Measure m;
  double best = 1e30;
  for (int t = 0; t < trials; ++t) {
    const double start = cpu_seconds();
    m.tokens = fn();
    best = std::min(best, cpu_seconds() - start);
  }
  m.mbps = static_cast<double>(bytes) / 1e6 / best;
  return m;
}

std::map<std::string, Measure> measure_k2(const k2::Tokenizer& t, const std::vector<std::string>& docs, const Options& o) {
  size_t doc_bytes = 0;
  std::string big;
  for (const auto& d : docs) {
    doc_bytes += d.size();
    big += d;
    big += '\n';
  }
  big.pop_back();
  std::string one_text;
  for (int r = 0; r < o.repeat; ++r) one_text += big;
  doc_bytes *= static_cast<size_t>(o.repeat);
  auto per_doc = [&](bool ordinary) {
    return [&, ordinary] {
      size_t n = 0;
      for (int r = 0; r < o.repeat; ++r) {
        for (const auto& d : docs) n += ordinary ? t.encode_ordinary(d).size() : t.encode(d).size();
      }
      return n;
    };
  };
  best_of(1, doc_bytes, per_doc(true));  // warm-up
  std::map<std::string, Measure> out;
  out["ordinary_docs"] = best_of(o.trials, doc_bytes, per_doc(true));
  out["ordinary_one_text"] = best_of(o.trials, one_text.size(), [&] { return t.encode_ordinary(one_text).size(); });
  out["kimi_docs"] = best_of(o.trials, doc_bytes, per_doc(false));
  return out;
}

std::map<std::string, Measure> measure_tiktoken(const Options& o) {
  const std::string cmd = "node '" K2_SOURCE_DIR "/bench/tokenizer/bench_tiktoken.mjs' '" + o.tiktoken + "' '" +
                          o.tokenizer + "' '" + o.corpus + "' " + std::to_string(o.repeat) + " " +
                          std::to_string(o.trials);
  std::fprintf(stderr, "+ %s\n", cmd.c_str());
  std::map<std::string, Measure> out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  std::string text;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) text.append(buf, n);
  if (pclose(p) != 0) return out;
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [mode, v] : j.items()) out[mode] = Measure{v["mbps"].get<double>(), v["tokens"].get<size_t>()};
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return 2;
  if (!prepare(o)) {
    std::fprintf(stderr, "could not prepare the tokenizer directory / npm tiktoken\n");
    return 1;
  }
  const double load_start = cpu_seconds();
  auto loaded = k2::Tokenizer::load(o.tokenizer);
  const double load_ms = (cpu_seconds() - load_start) * 1000.0;
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", loaded.status().to_string().c_str());
    return 1;
  }
  std::vector<std::string> docs;
  std::ifstream in(o.corpus);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) docs.push_back(json::parse(line).get<std::string>());
  }
  size_t corpus_bytes = 0;
  for (const auto& d : docs) corpus_bytes += d.size();
  std::printf("tokenizer %s: %d ids, loaded in %.1f ms CPU\n", o.tokenizer.c_str(), (*loaded)->vocab_size(), load_ms);
  std::printf("corpus %s: %zu documents, %zu bytes, x%d per trial, best of %d trials, 1 thread, CPU time\n",
              o.corpus.c_str(), docs.size(), corpus_bytes, o.repeat, o.trials);
  const auto k2 = measure_k2(**loaded, docs, o);
  const auto tt = o.node ? measure_tiktoken(o) : std::map<std::string, Measure>{};
  std::printf("%-20s %14s %15s %8s %s\n", "mode", "k2serve MB/s", "tiktoken MB/s", "ratio", "tokens");
  int rc = 0;
  for (const auto& [mode, m] : k2) {
    const auto it = tt.find(mode);
    if (it == tt.end()) {
      std::printf("%-20s %14.2f %15s %8s %zu\n", mode.c_str(), m.mbps, "-", "-", m.tokens);
      continue;
    }
    const bool same = it->second.tokens == m.tokens;
    if (!same) rc = 1;
    std::printf("%-20s %14.2f %15.2f %7.2fx %zu%s\n", mode.c_str(), m.mbps, it->second.mbps, m.mbps / it->second.mbps,
                m.tokens, same ? " (same count)" : " (COUNT DIFFERS from tiktoken)");
  }
  if (o.node && tt.empty()) {
    std::fprintf(stderr, "tiktoken measurement failed\n");
    return 1;
  }
  return rc;
}
