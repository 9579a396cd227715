#include "bench/serve/sse_stream.h"

#include <nlohmann/json.hpp>

namespace k2::bench {
namespace {

constexpr size_t kMaxPendingBytes = size_t{64} << 20;  // one event larger than this is garbage

std::optional<int64_t> integer_field(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

}  // namespace

std::vector<std::string> SseSplitter::feed(std::string_view bytes) {
  std::vector<std::string> payloads;
  pending_.append(bytes);
  size_t start = 0;
  while (true) {
    const size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.starts_with("data:")) {
      line.remove_prefix(5);
      if (line.starts_with(' ')) line.remove_prefix(1);
      payloads.emplace_back(line);
    }
    start = nl + 1;
  }
  pending_.erase(0, start);
  if (pending_.size() > kMaxPendingBytes) pending_.clear();
  return payloads;
}

Result<StreamChunk> parse_stream_chunk(std::string_view payload) {
  StreamChunk chunk;
  if (payload == "[DONE]") {
    chunk.done = true;
    return chunk;
  }
  nlohmann::json j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("a stream event that is not a JSON object");
  if (auto err = j.find("error"); err != j.end() && !err->is_null()) {
    std::string message = "server error";
    if (err->is_object() && err->contains("message") && (*err)["message"].is_string())
      message = (*err)["message"].get<std::string>();
    else if (err->is_string())
      message = err->get<std::string>();
    return unavailable(message);
  }
  if (auto choices = j.find("choices"); choices != j.end() && choices->is_array() && !choices->empty()) {
    const nlohmann::json& c = (*choices)[0];
    if (c.is_object()) {
      chunk.has_choice = true;
      if (auto t = c.find("text"); t != c.end() && t->is_string()) chunk.text = t->get<std::string>();
      if (auto d = c.find("delta"); d != c.end() && d->is_object())
        if (auto t = d->find("content"); t != d->end() && t->is_string()) chunk.text = t->get<std::string>();
    }
  }
  if (auto usage = j.find("usage"); usage != j.end() && usage->is_object()) {
    chunk.completion_tokens = integer_field(*usage, "completion_tokens");
    chunk.prompt_tokens = integer_field(*usage, "prompt_tokens");
  }
  return chunk;
}

}  // namespace k2::bench
