// `k2serve bench accuracy`: drives any OpenAI-compatible /v1/chat/completions endpoint with a
// JSONL dataset of chat conversations (see accuracy_dataset.h) and scores exact match of the
// final answer and of tool calls (name + JSON-equal arguments), CONCURRENCY requests in
// flight, with a progress bar, a summary table per category and --save-result.
#pragma once

#include <string>
#include <vector>

namespace k2 {

// `args` excludes "k2serve bench accuracy". Exit code: 0 when every item got a reply,
// 1 when some requests failed, 2 on a usage error.
int bench_accuracy_command(const std::vector<std::string>& args);

}  // namespace k2
