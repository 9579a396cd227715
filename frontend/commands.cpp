#include "frontend/commands.h"

#include <iostream>
#include <optional>
#include <sstream>

#include "bench/accuracy/bench_accuracy.h"
#include "bench/roofline/bench_roofline.h"
#include "bench/serve/bench_serve.h"
#include "bench/serve/engine_overhead.h"
#include "enginecore/protocol/option_table.h"
#include "frontend/chat_template/render_chat_command.h"
#include "frontend/keygen_command.h"
#include "frontend/proxy/launch_dp.h"
#include "frontend/proxy/proxy_server.h"
#include "frontend/parsers/parse_output_command.h"
#include "frontend/serve_command.h"
#include "frontend/tokenizer/tokenizer_commands.h"

namespace k2 {
namespace {

// Options shared by the JSON-lines text commands.
struct TextToolOptions {
  std::string tokenizer;
  bool skip_special_tokens = false;
  std::optional<std::string> chat_template;
  bool help = false;
};

OptionTable<TextToolOptions> text_tool_table(bool with_skip, bool with_template) {
  using O = TextToolOptions;
  OptionTable<O> t;
  t.add("--tokenizer", &O::tokenizer, "Kimi tokenizer directory (tiktoken.model + tokenizer_config.json)");
  if (with_skip) t.add("--skip-special-tokens", &O::skip_special_tokens, "drop special tokens from the text");
  if (with_template) t.add("--chat-template", &O::chat_template, "template file (default: the tokenizer's)");
  t.add("--help,-h", &O::help, "show this help");
  return t;
}

// Parses the options of a text command; prints help or an error and returns an exit code
// when the command should not run.
std::optional<int> parse_text_options(const std::string& usage, const OptionTable<TextToolOptions>& table,
                                      const std::vector<std::string>& args, TextToolOptions& opts) {
  Status s = table.parse(args, opts, nullptr);
  if (!s.ok()) {
    std::cerr << "k2serve: " << s.message() << "\n";
    return 2;
  }
  if (opts.help) {
    std::cout << table.help(TextToolOptions{}, usage)
              << "\nReads one JSON object per line on stdin and writes one per line on stdout.\n";
    return 0;
  }
  if (opts.tokenizer.empty()) {
    std::cerr << "k2serve: --tokenizer DIR is required\n";
    return 2;
  }
  return std::nullopt;
}

int run_tokenize(const std::vector<std::string>& args) {
  TextToolOptions o;
  if (auto rc = parse_text_options("k2serve tokenize --tokenizer DIR", text_tool_table(false, false), args, o))
    return *rc;
  return tokenize_command(o.tokenizer, std::cin, std::cout);
}

int run_detokenize(const std::vector<std::string>& args) {
  TextToolOptions o;
  if (auto rc = parse_text_options("k2serve detokenize --tokenizer DIR [--skip-special-tokens]",
                                   text_tool_table(true, false), args, o))
    return *rc;
  return detokenize_command(o.tokenizer, o.skip_special_tokens, std::cin, std::cout);
}

int run_render_chat(const std::vector<std::string>& args) {
  TextToolOptions o;
  if (auto rc = parse_text_options("k2serve render-chat --tokenizer DIR [--chat-template FILE]",
                                   text_tool_table(false, true), args, o))
    return *rc;
  return render_chat_command(o.tokenizer, o.chat_template, std::cin, std::cout);
}

int run_parse_output(const std::vector<std::string>& args) {
  TextToolOptions o;
  if (auto rc = parse_text_options("k2serve parse-output --tokenizer DIR", text_tool_table(false, false), args, o))
    return *rc;
  return parsers::parse_output_command(o.tokenizer, std::cin, std::cout);
}

// `k2serve bench <kind>`: the benchmarks and evaluators that drive a running server.
int run_bench(const std::vector<std::string>& args) {
  static const std::vector<std::pair<std::string, std::function<int(const std::vector<std::string>&)>>> kinds = {
      {"serve", bench::bench_serve_command},
      {"overhead", bench::bench_overhead_command},
      {"accuracy", bench_accuracy_command},
      {"roofline", bench::bench_roofline_command},
  };
  const std::string kind = args.empty() ? "" : args[0];
  for (const auto& [name, run] : kinds)
    if (name == kind) return run(std::vector<std::string>(args.begin() + 1, args.end()));
  std::ostream& out = (kind == "--help" || kind == "-h") ? std::cout : std::cerr;
  out << "usage: k2serve bench <kind> [options]\n\nkinds:\n";
  for (const auto& [name, run] : kinds) out << "  " << name << "\n";
  for (const char* name : kWorkerBenchKinds) out << "  " << name << "  (runs the model in k2serve-worker)\n";
  out << "\nRun 'k2serve bench <kind> --help' for its options.\n";
  return &out == &std::cout ? 0 : 2;
}

}  // namespace

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"serve", "serve a model with the OpenAI-compatible API (vLLM's flags)", serve_command, ""},
      {"proxy", "balance OpenAI-compatible servers (external data-parallel ranks)", proxy::proxy_command, ""},
      {"keygen", "write a new control-plane key file (--control-plane-key-file) for a deployment", keygen_command,
       ""},
      {"launch-dp", "start this node's external data-parallel ranks, one API server each", proxy::launch_dp_command,
       ""},
      {"golden-check", "check a checkpoint's float32 forward pass against golden logits", nullptr, "k2serve-worker"},
      {"generate", "greedy token ids for a prompt of ids", nullptr, "k2serve-worker"},
      {"make-random-model", "write a random Kimi-format checkpoint (bench-ds3, k2-layer, tiny presets)", nullptr,
       "k2serve-worker"},
      {"tokenize", "JSON lines {\"text\"} -> {\"ids\"}", run_tokenize, ""},
      {"detokenize", "JSON lines {\"ids\"} -> {\"text\"}", run_detokenize, ""},
      {"render-chat", "JSON lines {messages, tools, kwargs} -> {\"rendered\", \"ids\"}", run_render_chat, ""},
      {"parse-output", "JSON lines {model_output, request} -> reasoning, content, tool calls", run_parse_output, ""},
      {"bench", "benchmarks: serve, overhead, accuracy, roofline; latency and throughput (in the worker)", run_bench,
       ""},
  };
  return table;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

std::string closest_command_hint(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& c : commands()) names.push_back(c.name);
  std::string best = closest_match(name, names);
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string top_level_help() {
  std::ostringstream out;
  out << "usage: k2serve <command> [options]\n\n"
         "k2serve serves Kimi-K2 / DeepSeek-V3-architecture models with vLLM's flags and API.\n\n"
         "commands:\n";
  for (const auto& c : commands()) {
    out << "  " << c.name;
    for (size_t i = c.name.size(); i < 14; ++i) out << ' ';
    out << c.summary << "\n";
  }
  out << "\nRun 'k2serve <command> --help' for the options of a command.\n";
  return out.str();
}

}  // namespace k2
