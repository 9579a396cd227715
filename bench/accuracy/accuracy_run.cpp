#include "bench/accuracy/accuracy_run.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "bench/accuracy/http_client.h"

namespace k2::bench {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A one-line bar redrawn in place; safe to call from every worker.
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, size_t total) : out_(out), total_(total), start_(Clock::now()) {}

  void advance(bool correct) {
    std::lock_guard<std::mutex> lock(mu_);
    ++done_;
    correct_ += correct;
    if (!out_) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done_ / std::max<size_t>(total_, 1));
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    std::fprintf(out_, "\r[%s%s] %zu/%zu  correct %zu  %.1f s", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, '.').c_str(), done_, total_, correct_, secs);
    if (done_ == total_) std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  size_t total_;
  Clock::time_point start_;
  std::mutex mu_;
  size_t done_ = 0;
  size_t correct_ = 0;
};

json request_body(const AccuracyOptions& o, const std::string& model, const json& extra, const AccuracyItem& item) {
  json body = {{"model", model}, {"messages", item.messages}, {"max_tokens", o.max_tokens},
               {"temperature", o.temperature}, {"stream", false}};
  if (!item.tools.is_null()) body["tools"] = item.tools;
  for (const auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

ItemResult run_item(HttpClient& client, const std::string& body, const AccuracyItem& item) {
  ItemResult r;
  r.item = &item;
  const auto start = Clock::now();
  auto reply = client.post_json("/chat/completions", body);
  r.latency_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!reply.ok()) {
    r.error = reply.status().message();
    return r;
  }
  if (reply->status != 200) {
    r.error = "HTTP " + std::to_string(reply->status) + ": " + reply->body.substr(0, 300);
    return r;
  }
  auto parsed = parse_chat_reply(reply->body);
  if (!parsed.ok()) {
    r.error = parsed.status().message();
    return r;
  }
  r.ok = true;
  r.reply = std::move(*parsed);
  r.correct = score_reply(item, r.reply);
  return r;
}

Result<std::string> first_model(HttpClient& client) {
  K2_ASSIGN_OR_RETURN(HttpReply reply, client.get("/models"));
  if (reply.status != 200) return unavailable("GET /models: HTTP " + std::to_string(reply.status));
  json j = json::parse(reply.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() ||
      !j["data"][0].is_object() || !j["data"][0].contains("id") || !j["data"][0]["id"].is_string()) {
    return corrupt("GET /models: no model listed; pass --model");
  }
  return j["data"][0]["id"].get<std::string>();
}

std::vector<CategoryScore> tally(const std::vector<ItemResult>& items) {
  std::map<std::string, CategoryScore> by_name;
  CategoryScore all{"all", 0, 0, 0};
  for (const auto& r : items) {
    for (CategoryScore* s : {&by_name[r.item->category], &all}) {
      ++s->n;
      s->correct += r.correct;
      s->failed += !r.ok;
    }
  }
  std::vector<CategoryScore> out;
  for (auto& [name, s] : by_name) {
    if (name.empty()) continue;  // items without a category count in "all" only
    s.category = name;
    out.push_back(s);
  }
  out.push_back(all);
  return out;
}

}  // namespace

Result<AccuracyReport> run_accuracy(const AccuracyOptions& o, const std::vector<AccuracyItem>& items,
                                    std::FILE* progress_out) {
  K2_ASSIGN_OR_RETURN(BaseUrl base, parse_base_url(o.base_url));
  json extra = o.extra_body.empty() ? json::object() : json::parse(o.extra_body, nullptr, false);
  if (extra.is_discarded() || !extra.is_object()) return invalid_argument("--extra-body must be a JSON object");
  if (o.concurrency < 1) return invalid_argument("--concurrency must be at least 1");
  const auto timeout = std::chrono::seconds(std::max(o.timeout_s, 1));
  AccuracyReport report;
  report.model = o.model;
  if (report.model.empty()) {
    HttpClient client(base, o.api_key, timeout);
    K2_ASSIGN_OR_RETURN(report.model, first_model(client));
  }
  const size_t n = o.num_prompts < 0 ? items.size() : std::min<size_t>(items.size(), o.num_prompts);
  report.items.resize(n);
  ProgressBar bar(o.progress ? progress_out : nullptr, n);
  std::atomic<size_t> next{0};
  const auto start = Clock::now();
  auto worker = [&] {
    HttpClient client(base, o.api_key, timeout);
    for (size_t i = next++; i < n; i = next++) {
      report.items[i] = run_item(client, request_body(o, report.model, extra, items[i]).dump(), items[i]);
      bar.advance(report.items[i].correct);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min<int>(o.concurrency, static_cast<int>(std::max<size_t>(n, 1))); ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) t.join();
  report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.categories = tally(report.items);
  return report;
}

std::string format_summary(const AccuracyReport& report) {
  size_t width = 8;
  for (const auto& s : report.categories) width = std::max(width, s.category.size());
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-*s %6s %8s %9s %7s\n", static_cast<int>(width), "category", "n", "correct",
                "accuracy", "failed");
  out += line;
  out += std::string(width + 35, '-') + "\n";
  for (const auto& s : report.categories) {
    if (s.category == "all") out += std::string(width + 35, '-') + "\n";
    std::snprintf(line, sizeof line, "%-*s %6d %8d %8.2f%% %7d\n", static_cast<int>(width), s.category.c_str(), s.n,
                  s.correct, s.n ? 100.0 * s.correct / s.n : 0.0, s.failed);
    out += line;
  }
  std::snprintf(line, sizeof line, "model %s: %zu items in %.1f s\n", report.model.c_str(), report.items.size(),
                report.seconds);
  out += line;
  return out;
}

json report_to_json(const AccuracyOptions& o, const AccuracyReport& report) {
  json summary = json::object();
  for (const auto& s : report.categories) {
    summary[s.category] = {{"n", s.n}, {"correct", s.correct}, {"failed", s.failed},
                           {"accuracy", s.n ? static_cast<double>(s.correct) / s.n : 0.0}};
  }
  json items = json::array();
  for (const auto& r : report.items) {
    json calls = json::array();
    for (const auto& c : r.reply.tool_calls) calls.push_back({{"name", c.name}, {"arguments", c.arguments}});
    json expected_calls = json::array();
    for (const auto& c : r.item->tool_calls) expected_calls.push_back({{"name", c.name}, {"arguments", c.arguments}});
    json item = {{"id", r.item->id}, {"category", r.item->category}, {"correct", r.correct}, {"ok", r.ok},
                 {"latency_s", r.latency_s}, {"content", r.reply.content}, {"reasoning", r.reply.reasoning},
                 {"tool_calls", calls}, {"finish_reason", r.reply.finish_reason}};
    if (r.item->expects_tool_calls()) item["expected_tool_calls"] = expected_calls;
    else item["expected_answer"] = r.item->answer.value_or("");
    if (!r.ok) item["error"] = r.error;
    items.push_back(std::move(item));
  }
  return {{"base_url", o.base_url}, {"dataset", o.dataset}, {"model", report.model},
          {"concurrency", o.concurrency}, {"max_tokens", o.max_tokens}, {"temperature", o.temperature},
          {"seconds", report.seconds}, {"summary", summary}, {"items", items}};
}

}  // namespace k2::bench
