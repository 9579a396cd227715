#include "enginecore/stop_ids.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace k2::engine {
namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() || !j.is_object() ? nlohmann::json(nullptr) : j;
}

void add(std::vector<int32_t>& ids, int64_t id) {
  if (id < 0 || id > INT32_MAX) return;
  if (std::find(ids.begin(), ids.end(), static_cast<int32_t>(id)) == ids.end()) ids.push_back(static_cast<int32_t>(id));
}

// An int or a list of ints (generation_config's eos_token_id takes both forms).
void add_all(std::vector<int32_t>& ids, const nlohmann::json& v) {
  if (v.is_number_integer()) add(ids, v.get<int64_t>());
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_number_integer()) add(ids, e.get<int64_t>());
}

// The id of an added token by its content (tokenizer_config.json's added_tokens_decoder).
std::optional<int64_t> added_token_id(const nlohmann::json& tokenizer_config, const std::string& content) {
  if (!tokenizer_config.is_object() || !tokenizer_config.contains("added_tokens_decoder")) return std::nullopt;
  const auto& decoder = tokenizer_config["added_tokens_decoder"];
  if (!decoder.is_object()) return std::nullopt;
  for (const auto& [key, value] : decoder.items()) {
    if (!value.is_object() || !value.contains("content") || value["content"] != content) continue;
    try {
      return std::stoll(key);
    } catch (...) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

std::optional<std::string> token_content(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

std::vector<int32_t> model_stop_ids(const std::filesystem::path& model_dir, const std::filesystem::path& tokenizer_dir,
                                    const std::vector<int64_t>& config_eos_ids) {
  std::vector<int32_t> ids;
  const nlohmann::json tok = read_json(tokenizer_dir / "tokenizer_config.json");
  if (tok.is_object() && tok.contains("eos_token"))
    if (auto content = token_content(tok["eos_token"]))
      if (auto id = added_token_id(tok, *content)) add(ids, *id);
  for (int64_t id : config_eos_ids) add(ids, id);
  const nlohmann::json gen = read_json(model_dir / "generation_config.json");
  if (gen.is_object() && gen.contains("eos_token_id")) add_all(ids, gen["eos_token_id"]);
  if (auto id = added_token_id(tok, "<|im_end|>")) add(ids, *id);
  return ids;
}

}  // namespace k2::engine
