#include "bench/serve/bench_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

namespace k2::bench {
namespace {

constexpr int kTableWidth = 50;

std::string centered(const std::string& title, char fill) {
  const int pad = std::max(0, kTableWidth - static_cast<int>(title.size()));
  return std::string(static_cast<size_t>(pad / 2), fill) + title + std::string(static_cast<size_t>(pad - pad / 2), fill);
}

// Python's "{:<40} {:<10}" / "{:<40} {:<10.2f}".
std::string row(const std::string& label, const std::string& value) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "%-40s %-10s", label.c_str(), value.c_str());
  return buf;
}

std::string fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

struct MetricNames {
  const char* key;
  const char* header;
  const char* short_name;
};

constexpr MetricNames kMetricNames[] = {
    {"ttft", "Time to First Token", "TTFT"},
    {"tpot", "Time per Output Token (excl. 1st token)", "TPOT"},
    {"itl", "Inter-token Latency", "ITL"},
    {"e2el", "End-to-end Latency", "E2EL"},
};

const MetricStats& stats_of(const BenchmarkMetrics& m, const std::string& key) {
  if (key == "ttft") return m.ttft;
  if (key == "tpot") return m.tpot;
  if (key == "itl") return m.itl;
  return m.e2el;
}

}  // namespace

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (rank - static_cast<double>(lo));
}

MetricStats summarize(const std::vector<double>& seconds, const std::vector<double>& percentiles) {
  MetricStats s;
  std::vector<double> ms(seconds.size());
  std::transform(seconds.begin(), seconds.end(), ms.begin(), [](double x) { return x * 1000.0; });
  if (!ms.empty()) {
    s.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
    double sq = 0;
    for (double x : ms) sq += (x - s.mean_ms) * (x - s.mean_ms);
    s.std_ms = std::sqrt(sq / static_cast<double>(ms.size()));
    s.median_ms = percentile(ms, 50);
  }
  for (double p : percentiles) s.percentiles_ms.emplace_back(p, percentile(ms, p));
  return s;
}

BenchmarkMetrics calculate_metrics(const std::vector<RequestOutput>& outputs, double duration_s,
                                   const std::vector<double>& percentiles) {
  BenchmarkMetrics m;
  std::vector<double> ttfts, tpots, itls, e2els;
  for (const auto& o : outputs) {
    if (!o.success) {
      ++m.failed;
      continue;
    }
    ++m.completed;
    m.total_input += o.prompt_len;
    m.total_output += o.output_tokens;
    ttfts.push_back(o.ttft);
    e2els.push_back(o.latency);
    itls.insert(itls.end(), o.itl.begin(), o.itl.end());
    if (o.output_tokens > 1) tpots.push_back((o.latency - o.ttft) / static_cast<double>(o.output_tokens - 1));
  }
  m.duration_s = duration_s;
  if (duration_s > 0) {
    m.request_throughput = static_cast<double>(m.completed) / duration_s;
    m.output_throughput = static_cast<double>(m.total_output) / duration_s;
    m.total_token_throughput = static_cast<double>(m.total_input + m.total_output) / duration_s;
  }
  m.ttft = summarize(ttfts, percentiles);
  m.tpot = summarize(tpots, percentiles);
  m.itl = summarize(itls, percentiles);
  m.e2el = summarize(e2els, percentiles);
  return m;
}

std::string percentile_label(double p) {
  std::ostringstream out;
  if (p == std::floor(p)) out << static_cast<int64_t>(p);
  else out << p;
  std::string label = "p";
  label += out.str();  // not "p" + str(): g++ 12 misreports -Wrestrict on that
  return label;
}

std::string format_table(const BenchmarkMetrics& m, const TableOptions& options) {
  std::ostringstream out;
  out << centered(" Serving Benchmark Result ", '=') << "\n";
  out << row("Successful requests:", std::to_string(m.completed)) << "\n";
  out << row("Failed requests:", std::to_string(m.failed)) << "\n";
  if (options.max_concurrency > 0)
    out << row("Maximum request concurrency:", std::to_string(options.max_concurrency)) << "\n";
  out << row("Benchmark duration (s):", fixed2(m.duration_s)) << "\n";
  out << row("Total input tokens:", std::to_string(m.total_input)) << "\n";
  out << row("Total generated tokens:", std::to_string(m.total_output)) << "\n";
  out << row("Request throughput (req/s):", fixed2(m.request_throughput)) << "\n";
  out << row("Output token throughput (tok/s):", fixed2(m.output_throughput)) << "\n";
  out << row("Total Token throughput (tok/s):", fixed2(m.total_token_throughput)) << "\n";
  for (const auto& names : kMetricNames) {
    const auto& sel = options.percentile_metrics;
    if (std::find(sel.begin(), sel.end(), names.key) == sel.end()) continue;
    const MetricStats& s = stats_of(m, names.key);
    out << centered(names.header, '-') << "\n";
    out << row(std::string("Mean ") + names.short_name + " (ms):", fixed2(s.mean_ms)) << "\n";
    out << row(std::string("Median ") + names.short_name + " (ms):", fixed2(s.median_ms)) << "\n";
    for (const auto& [p, v] : s.percentiles_ms) {
      std::string label = percentile_label(p);
      label[0] = 'P';
      out << row(label + " " + names.short_name + " (ms):", fixed2(v)) << "\n";
    }
  }
  out << std::string(kTableWidth, '=') << "\n";
  return out.str();
}

nlohmann::json result_json(const BenchmarkMetrics& m, const std::vector<RequestOutput>& outputs,
                           const std::vector<std::string>& percentile_metrics) {
  nlohmann::json j;
  j["duration"] = m.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["total_input_tokens"] = m.total_input;
  j["total_output_tokens"] = m.total_output;
  j["request_throughput"] = m.request_throughput;
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  nlohmann::json input_lens = nlohmann::json::array(), output_lens = nlohmann::json::array(),
                 ttfts = nlohmann::json::array(), itls = nlohmann::json::array(),
                 texts = nlohmann::json::array(), errors = nlohmann::json::array();
  for (const auto& o : outputs) {
    input_lens.push_back(o.prompt_len);
    output_lens.push_back(o.success ? o.output_tokens : 0);
    ttfts.push_back(o.ttft);
    itls.push_back(o.itl);
    texts.push_back(o.generated_text);
    errors.push_back(o.error);
  }
  j["input_lens"] = input_lens;
  j["output_lens"] = output_lens;
  j["ttfts"] = ttfts;
  j["itls"] = itls;
  j["generated_texts"] = texts;
  j["errors"] = errors;
  for (const auto& key : percentile_metrics) {
    const MetricStats& s = stats_of(m, key);
    j["mean_" + key + "_ms"] = s.mean_ms;
    j["median_" + key + "_ms"] = s.median_ms;
    j["std_" + key + "_ms"] = s.std_ms;
    for (const auto& [p, v] : s.percentiles_ms) j[percentile_label(p) + "_" + key + "_ms"] = v;
  }
  return j;
}

std::vector<double> parse_percentiles(const std::string& list) {
  std::vector<double> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (...) {
      return {};
    }
    if (used != item.size() || !(v >= 0 && v <= 100)) return {};
    out.push_back(v);
  }
  return out;
}

}  // namespace k2::bench
