// The evaluation loop behind `k2serve bench accuracy`, separate from flag parsing so tests
// can run it directly. run_accuracy() owns its worker threads and joins them before it
// returns; the results are plain values.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/accuracy/accuracy_dataset.h"
#include "bench/accuracy/accuracy_scoring.h"

namespace k2::bench {

struct AccuracyOptions {
  std::string base_url = "http://127.0.0.1:8000/v1";
  std::string dataset;
  std::string model;  // "" = the first of GET /models
  std::string api_key;
  int concurrency = 16;
  int max_tokens = 160;
  double temperature = 0.0;
  int timeout_s = 600;
  int64_t num_prompts = -1;  // < 0: every item
  std::optional<std::string> save_result;
  std::string extra_body;  // a JSON object merged into every request (e.g. {"seed": 0})
  bool progress = true;
  bool help = false;
};

struct ItemResult {
  const AccuracyItem* item = nullptr;
  bool ok = false;       // a reply was received and parsed
  bool correct = false;  // scored right
  std::string error;     // why !ok
  ModelReply reply;
  double latency_s = 0;
};

struct CategoryScore {
  std::string category;
  int n = 0;
  int correct = 0;
  int failed = 0;
};

struct AccuracyReport {
  std::string model;
  std::vector<ItemResult> items;         // dataset order
  std::vector<CategoryScore> categories;  // sorted by name, then "all"
  double seconds = 0;
};

// Resolves the model (GET /models when options.model is empty) and runs every item.
// Progress goes to `progress_out` (nullptr: none).
Result<AccuracyReport> run_accuracy(const AccuracyOptions& options, const std::vector<AccuracyItem>& items,
                                    std::FILE* progress_out);

// The summary table, one row per category plus "all".
std::string format_summary(const AccuracyReport& report);

// Everything --save-result writes: options, summary and one object per item.
nlohmann::json report_to_json(const AccuracyOptions& options, const AccuracyReport& report);

}  // namespace k2::bench
