#include "bench/accuracy/bench_accuracy.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>

#include "bench/accuracy/accuracy_run.h"
#include "enginecore/protocol/option_table.h"

namespace k2 {
namespace {

using bench::AccuracyOptions;

constexpr const char* kUsage = "k2serve bench accuracy --dataset FILE.jsonl [--base-url URL] [options]";

const OptionTable<AccuracyOptions>& accuracy_table() {
  using O = AccuracyOptions;
  static const OptionTable<O> table = [] {
    OptionTable<O> t;
    t.add("--base-url", &O::base_url, "OpenAI-compatible base URL (http only); requests go to BASE/chat/completions");
    t.add("--dataset", &O::dataset,
          "JSONL, one conversation a line: messages, tools, and expected_answer or expected_tool_calls "
          "(eval.jsonl's `expected` also works)");
    t.add("--model", &O::model, "model name to request (default: the first of GET BASE/models)");
    t.add("--api-key", &O::api_key, "bearer token (default: $OPENAI_API_KEY)");
    t.add("--concurrency", &O::concurrency, "requests in flight at once");
    t.add("--max-tokens", &O::max_tokens, "max_tokens of every request");
    t.add("--temperature", &O::temperature, "sampling temperature of every request");
    t.add("--timeout", &O::timeout_s, "seconds one request may take");
    t.add("--num-prompts", &O::num_prompts, "score only the first N items (default: all)");
    t.add("--extra-body", &O::extra_body, "JSON object merged into every request body, e.g. '{\"seed\": 0}'");
    t.add("--save-result", &O::save_result, "write the options, summary and per-item results to FILE (JSON)");
    t.add("--progress", &O::progress, "show a progress bar on stderr when it is a terminal");
    t.add("--help,-h", &O::help, "show this help");
    return t;
  }();
  return table;
}

const char* kFormatHelp = R"(
Dataset lines (JSONL):
  {"id": "q1", "category": "tools", "messages": [...], "tools": [...],
   "expected_tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
  {"id": "q2", "category": "chat", "messages": [...], "expected_answer": "Hello!"}
A tool-call item is right when the reply has the same calls in order (name equal,
arguments JSON-equal); an answer item when the reply's content equals the answer.
)";

Status save_result(const AccuracyOptions& o, const bench::AccuracyReport& report) {
  std::ofstream out(*o.save_result);
  out << bench::report_to_json(o, report).dump(2) << "\n";
  if (!out) return io_error("writing " + *o.save_result);
  return {};
}

}  // namespace

int bench_accuracy_command(const std::vector<std::string>& args) {
  AccuracyOptions o;
  if (const char* key = std::getenv("OPENAI_API_KEY")) o.api_key = key;
  std::vector<std::string> positionals;
  Status s = accuracy_table().parse(args, o, &positionals);
  if (s.ok() && !positionals.empty()) {
    if (o.dataset.empty() && positionals.size() == 1) o.dataset = positionals[0];
    else s = invalid_argument("unexpected argument " + positionals.back());
  }
  if (!s.ok()) {
    std::cerr << "k2serve bench accuracy: " << s.message() << "\n";
    return 2;
  }
  if (o.help) {
    std::cout << accuracy_table().help(AccuracyOptions{}, kUsage) << kFormatHelp;
    return 0;
  }
  if (o.dataset.empty()) {
    std::cerr << "k2serve bench accuracy: --dataset FILE is required\n";
    return 2;
  }
  auto items = bench::load_accuracy_dataset(o.dataset);
  if (!items.ok()) {
    std::cerr << "k2serve bench accuracy: " << items.status().message() << "\n";
    return 2;
  }
  auto report = bench::run_accuracy(o, *items, isatty(STDERR_FILENO) ? stderr : nullptr);
  if (!report.ok()) {
    std::cerr << "k2serve bench accuracy: " << report.status().message() << "\n";
    return report.status().code() == Code::kInvalidArgument ? 2 : 1;
  }
  std::cout << bench::format_summary(*report);
  if (o.save_result) {
    if (Status w = save_result(o, *report); !w.ok()) {
      std::cerr << "k2serve bench accuracy: " << w.message() << "\n";
      return 1;
    }
  }
  int failed = report->categories.back().failed;
  for (const auto& r : report->items) {
    if (!r.ok) std::cerr << r.item->id << ": " << r.error << "\n";
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace k2
