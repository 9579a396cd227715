#include "bench/models/tokenizer_files.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace k2::bench {
namespace {

using nlohmann::json;

constexpr int64_t kMaxId = (int64_t{1} << 31) - 1;
constexpr const char* kRequired[] = {"tiktoken.model", "tokenizer_config.json"};
constexpr const char* kOptional[] = {"generation_config.json", "chat_template.jinja", "special_tokens.json",
                                     "tokenization_kimi.py"};

bool parse_id(std::string_view text, int64_t* out) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0 || v > kMaxId) return false;
  *out = v;
  return true;
}

// The highest rank in a tiktoken file ("<base64 token> <rank>" per line).
Result<int64_t> max_rank(const std::string& model) {
  int64_t best = -1;
  size_t line_no = 0;
  for (size_t start = 0; start < model.size();) {
    size_t end = model.find('\n', start);
    if (end == std::string::npos) end = model.size();
    std::string_view line(model.data() + start, end - start);
    ++line_no;
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t space = line.rfind(' ');
    int64_t rank = 0;
    if (space == std::string_view::npos || space == 0 || !parse_id(line.substr(space + 1), &rank)) {
      return corrupt("tiktoken.model line " + std::to_string(line_no) + ": expected '<base64> <rank>'");
    }
    best = std::max(best, rank);
  }
  if (best < 0) return corrupt("tiktoken.model has no tokens");
  return best;
}

// A token given as "text" or {"content": "text"}; nullopt when absent or null.
Result<std::optional<std::string>> token_text(const json& config, const char* key) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c != it->end() && c->is_string()) return std::optional<std::string>(c->get<std::string>());
  }
  return corrupt(std::string("tokenizer_config.json: '") + key + "' is neither a string nor {\"content\": ...}");
}

Result<std::vector<int64_t>> eos_from_generation_config(const std::string& text) {
  std::vector<int64_t> ids;
  if (text.empty()) return ids;
  const json g = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (g.is_discarded() || !g.is_object()) return corrupt("generation_config.json is not a JSON object");
  const auto it = g.find("eos_token_id");
  if (it == g.end() || it->is_null()) return ids;
  const json list = it->is_array() ? *it : json::array({*it});
  for (const json& v : list) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxId) {
      return corrupt("generation_config.json: eos_token_id must be a non-negative integer or a list of them");
    }
    ids.push_back(v.get<int64_t>());
  }
  return ids;
}

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Result<TokenizerInfo> parse_tokenizer_info(const std::string& tokenizer_config, const std::string& generation_config,
                                           const std::string& tiktoken_model) {
  TokenizerInfo info;
  K2_ASSIGN_OR_RETURN(int64_t top, max_rank(tiktoken_model));
  const json config = json::parse(tokenizer_config, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return corrupt("tokenizer_config.json is not a JSON object");
  std::vector<std::pair<std::string, int64_t>> added;  // content, id
  if (const auto it = config.find("added_tokens_decoder"); it != config.end()) {
    if (!it->is_object()) return corrupt("tokenizer_config.json: 'added_tokens_decoder' is not an object");
    for (const auto& [key, value] : it->items()) {
      int64_t id = 0;
      if (!parse_id(key, &id)) return corrupt("tokenizer_config.json: added token id '" + key + "' is not an id");
      const auto c = value.is_object() ? value.find("content") : value.end();
      if (c == value.end() || !c->is_string()) {
        return corrupt("tokenizer_config.json: added token " + key + " has no string 'content'");
      }
      added.emplace_back(c->get<std::string>(), id);
      top = std::max(top, id);
    }
  }
  info.num_ids = top + 1;
  auto id_of = [&](const std::optional<std::string>& text) -> std::optional<int64_t> {
    if (!text) return std::nullopt;
    for (const auto& [content, id] : added) {
      if (content == *text) return id;
    }
    return std::nullopt;
  };
  K2_ASSIGN_OR_RETURN(std::optional<std::string> bos_text, token_text(config, "bos_token"));
  K2_ASSIGN_OR_RETURN(std::optional<std::string> eos_text, token_text(config, "eos_token"));
  info.bos = id_of(bos_text);
  K2_ASSIGN_OR_RETURN(info.eos, eos_from_generation_config(generation_config));
  if (info.eos.empty()) {
    if (const std::optional<int64_t> eos = id_of(eos_text)) info.eos.push_back(*eos);
  }
  return info;
}

Result<TokenizerInfo> read_tokenizer_dir(const std::filesystem::path& dir) {
  K2_ASSIGN_OR_RETURN(std::string config, read_file(dir / "tokenizer_config.json"));
  K2_ASSIGN_OR_RETURN(std::string model, read_file(dir / "tiktoken.model"));
  std::string generation;
  if (std::filesystem::exists(dir / "generation_config.json")) {
    K2_ASSIGN_OR_RETURN(generation, read_file(dir / "generation_config.json"));
  }
  Result<TokenizerInfo> info = parse_tokenizer_info(config, generation, model);
  if (!info.ok()) return info.status().with_context(dir.string());
  return info;
}

Status copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::error_code ec;
  auto copy = [&](const char* name) -> Status {
    std::filesystem::copy_file(from / name, to / name, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) return io_error("copying " + (from / name).string() + " to " + to.string() + ": " + ec.message());
    return Status::ok_status();
  };
  for (const char* name : kRequired) K2_RETURN_IF_ERROR(copy(name));
  for (const char* name : kOptional) {
    if (std::filesystem::exists(from / name)) K2_RETURN_IF_ERROR(copy(name));
  }
  return Status::ok_status();
}

}  // namespace k2::bench
