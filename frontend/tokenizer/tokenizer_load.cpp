// Reading a Kimi tokenizer directory into a Tokenizer.
#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frontend/tokenizer/bpe.h"
#include "frontend/tokenizer/pretokenizer.h"
#include "frontend/tokenizer/special_matcher.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {

using nlohmann::json;

namespace {

constexpr const char* kModelFile = "tiktoken.model";
constexpr const char* kConfigFile = "tokenizer_config.json";
constexpr const char* kGenerationFile = "generation_config.json";
constexpr const char* kTemplateFile = "chat_template.jinja";

// Kimi's default when tokenizer_config.json has no additional_special_tokens.
const char* const kDefaultAdditional[] = {"<|im_end|>",        "<|im_user|>",     "<|im_assistant|>",
                                          "<|start_header_id|>", "<|end_header_id|>", "[EOT]",
                                          "<|im_system|>",     "<|im_middle|>"};

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict standard base64 with padding (what Python's b64decode accepts, minus its
// silent skipping of stray characters).
bool base64_decode(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad > 0) return false;
        v[k] = base64_value(c);
        if (v[k] < 0) return false;
      }
    }
    const uint32_t word = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(word >> 16));
    if (pad < 2) out.push_back(static_cast<char>((word >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(word & 0xFF));
  }
  return true;
}

std::string line_error(const std::string& file, size_t line, const std::string& what) {
  return file + " line " + std::to_string(line) + ": " + what;
}

struct ModelLine {
  uint32_t offset;  // into the decoded-bytes buffer
  uint32_t length;
  uint32_t line;
};

// Parses tiktoken.model into `table` (base tokens in rank order).
Status parse_tiktoken_model(std::string_view text, const std::string& file, tok::TokenTable& table) {
  if (text.size() > (1u << 31)) return invalid_argument(file + ": file too large");
  std::string decoded;
  std::vector<ModelLine> by_rank;
  std::vector<std::pair<uint32_t, ModelLine>> entries;  // (rank, bytes) in file order
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // as load_tiktoken_bpe: blank lines are skipped
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) return invalid_argument(line_error(file, line_no, "expected `base64 rank`"));
    const std::string_view b64 = line.substr(0, space);
    const std::string_view rank_text = line.substr(space + 1);
    uint32_t rank = 0;
    const auto [end, ec] = std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || end != rank_text.data() + rank_text.size() || rank_text.empty()) {
      return invalid_argument(line_error(file, line_no, "bad rank '" + std::string(rank_text.substr(0, 32)) + "'"));
    }
    const size_t before = decoded.size();
    if (!base64_decode(b64, decoded)) return invalid_argument(line_error(file, line_no, "bad base64 token"));
    entries.push_back({rank, ModelLine{static_cast<uint32_t>(before),
                                       static_cast<uint32_t>(decoded.size() - before),
                                       static_cast<uint32_t>(line_no)}});
  }
  const size_t n = entries.size();
  if (n == 0) return invalid_argument(file + ": no tokens");
  if (n > static_cast<size_t>(INT32_MAX) - Tokenizer::kNumSpecialSlots) return invalid_argument(file + ": too many tokens");
  by_rank.assign(n, ModelLine{0, 0, 0});
  for (const auto& [rank, ml] : entries) {
    // Ranks must be exactly 0..n-1: the special slots start at n, so a gap or a repeat
    // would make ids collide or vanish.
    if (rank >= n) return invalid_argument(line_error(file, ml.line, "rank " + std::to_string(rank) + " is not below the number of tokens " + std::to_string(n)));
    if (by_rank[rank].line != 0) {
      return invalid_argument(line_error(file, ml.line, "rank " + std::to_string(rank) + " repeats line " + std::to_string(by_rank[rank].line)));
    }
    by_rank[rank] = ml;
  }
  for (const ModelLine& ml : by_rank) table.add_token(std::string_view(decoded).substr(ml.offset, ml.length));
  table.build_index(static_cast<int32_t>(n));
  for (uint32_t id = 0; id < n; ++id) {
    const int32_t found = table.find(table.bytes(static_cast<int32_t>(id)));
    if (found != static_cast<int32_t>(id)) {
      return invalid_argument(line_error(file, by_rank[id].line, "token repeats the bytes of line " + std::to_string(by_rank[found].line)));
    }
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    if (table.find(&c, 1) < 0) {
      return invalid_argument(file + ": no token for the single byte " + std::to_string(b) + " (byte-level BPE needs all 256)");
    }
  }
  return Status();
}

Result<json> parse_json(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    const size_t at = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    const size_t line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
    return invalid_argument(line_error(file, line, e.what()));
  } catch (const json::exception& e) {  // e.g. out_of_range 406: a number too large for any type
    return invalid_argument(file + ": " + e.what());
  }
}

// A token given as "name", {"content": "name", ...} or null.
Result<std::optional<std::string>> token_name(const json& v, const std::string& where) {
  if (v.is_null()) return std::optional<std::string>();
  if (v.is_string()) return std::optional<std::string>(v.get<std::string>());
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return std::optional<std::string>(v["content"].get<std::string>());
  }
  return invalid_argument(where + ": expected a token string or {\"content\": ...}");
}

}  // namespace

// Friend of Tokenizer: fills its private fields from parsed files.
class TokenizerBuilder {
 public:
  static Status read_config(Tokenizer& t, std::string_view text, const std::string& file);
  static Status read_generation_config(Tokenizer& t, std::string_view text, const std::string& file);
  static Status name_special(Tokenizer& t, const json& decoder, const std::string& file);
};

Status TokenizerBuilder::name_special(Tokenizer& t, const json& decoder, const std::string& file) {
  const int32_t first = t.table_->num_base();
  // Unnamed slots count as special (skipped by skip_special_tokens), as the tokenizer
  // directories' special_tokens.json lists them.
  for (int32_t k = 0; k < Tokenizer::kNumSpecialSlots; ++k) {
    t.specials_.push_back(SpecialToken{first + k, "<|reserved_token_" + std::to_string(first + k) + "|>", false, true});
  }
  if (decoder.is_null()) return Status();
  if (!decoder.is_object()) return invalid_argument(file + ": added_tokens_decoder is not an object");
  for (const auto& [key, value] : decoder.items()) {
    int64_t id = -1;
    const auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), id);
    const std::string where = file + ": added_tokens_decoder[\"" + key + "\"]";
    if (ec != std::errc() || end != key.data() + key.size()) return invalid_argument(where + ": key is not an id");
    if (id < first || id >= first + Tokenizer::kNumSpecialSlots) {
      return invalid_argument(where + ": id outside the special slots [" + std::to_string(first) + ", " +
                              std::to_string(first + Tokenizer::kNumSpecialSlots) + ")");
    }
    if (!value.is_object() || !value.contains("content") || !value["content"].is_string() ||
        value["content"].get<std::string>().empty()) {
      return invalid_argument(where + ": needs a non-empty string \"content\"");
    }
    const json special = value.value("special", json(false));
    if (!special.is_boolean()) return invalid_argument(where + ": \"special\" is not a boolean");
    SpecialToken& s = t.specials_[static_cast<size_t>(id - first)];
    s.content = value["content"].get<std::string>();
    s.named = true;
    s.special = special.get<bool>();
  }
  return Status();
}

Status TokenizerBuilder::read_config(Tokenizer& t, std::string_view text, const std::string& file) {
  K2_ASSIGN_OR_RETURN(const json config, parse_json(text, file));
  if (!config.is_object()) return invalid_argument(file + ": not a JSON object");
  K2_RETURN_IF_ERROR(name_special(t, config.value("added_tokens_decoder", json()), file));
  for (const SpecialToken& s : t.specials_) {
    const auto [it, inserted] = t.special_ids_.emplace(s.content, s.id);
    if (!inserted) return invalid_argument(file + ": special token '" + s.content + "' is used by ids " + std::to_string(it->second) + " and " + std::to_string(s.id));
  }
  t.skip_.assign(t.specials_.size(), 0);
  for (const SpecialToken& s : t.specials_) t.skip_[static_cast<size_t>(s.id - t.table_->num_base())] = s.special;
  auto lookup = [&](const std::string& name, const std::string& key) -> Result<int32_t> {
    const auto it = t.special_ids_.find(name);
    if (it == t.special_ids_.end()) return invalid_argument(file + ": " + key + " '" + name + "' is not a special token");
    t.skip_[static_cast<size_t>(it->second - t.table_->num_base())] = 1;
    return it->second;
  };
  struct Named {
    const char* key;
    std::optional<int32_t>* id;
    std::string* text;
  };
  const Named named[] = {{"bos_token", &t.bos_id_, &t.special_tokens_map_.bos_token},
                         {"eos_token", &t.eos_id_, &t.special_tokens_map_.eos_token},
                         {"unk_token", &t.unk_id_, &t.special_tokens_map_.unk_token},
                         {"pad_token", &t.pad_id_, &t.special_tokens_map_.pad_token}};
  for (const Named& n : named) {
    if (!config.contains(n.key)) continue;
    K2_ASSIGN_OR_RETURN(const std::optional<std::string> name, token_name(config[n.key], file + ": " + n.key));
    if (!name) continue;
    K2_ASSIGN_OR_RETURN(*n.id, lookup(*name, n.key));
    *n.text = *name;
  }
  if (config.contains("additional_special_tokens")) {
    const json& list = config["additional_special_tokens"];
    if (!list.is_array()) return invalid_argument(file + ": additional_special_tokens is not a list");
    for (const json& v : list) {
      K2_ASSIGN_OR_RETURN(const std::optional<std::string> name, token_name(v, file + ": additional_special_tokens"));
      if (!name) continue;
      K2_ASSIGN_OR_RETURN(const int32_t id, lookup(*name, "additional_special_tokens entry"));
      (void)id;
      t.special_tokens_map_.additional_special_tokens.push_back(*name);
    }
  } else {
    for (const char* name : kDefaultAdditional) {
      if (t.special_ids_.count(name) == 0) continue;
      (void)lookup(name, "additional_special_tokens entry");
      t.special_tokens_map_.additional_special_tokens.push_back(name);
    }
  }
  if (!t.chat_template_ && config.contains("chat_template") && config["chat_template"].is_string()) {
    t.chat_template_ = config["chat_template"].get<std::string>();
  }
  return Status();
}

Status TokenizerBuilder::read_generation_config(Tokenizer& t, std::string_view text, const std::string& file) {
  K2_ASSIGN_OR_RETURN(const json config, parse_json(text, file));
  if (!config.is_object()) return invalid_argument(file + ": not a JSON object");
  if (!config.contains("eos_token_id") || config["eos_token_id"].is_null()) return Status();
  const json& v = config["eos_token_id"];
  const json list = v.is_array() ? v : json::array({v});
  for (const json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= t.vocab_size()) {
      return invalid_argument(file + ": eos_token_id " + id.dump() + " is not a token id below " + std::to_string(t.vocab_size()));
    }
    t.generation_eos_ids_.push_back(id.get<int32_t>());
  }
  return Status();
}

Result<std::shared_ptr<const Tokenizer>> Tokenizer::from_contents(std::string_view tiktoken_model,
                                                                  std::string_view tokenizer_config,
                                                                  std::string_view generation_config,
                                                                  std::string chat_template,
                                                                  const std::string& origin) {
  std::shared_ptr<Tokenizer> t(new Tokenizer());
  t->directory_ = origin;
  const std::string prefix = origin.empty() ? "" : origin + "/";
  K2_RETURN_IF_ERROR(parse_tiktoken_model(tiktoken_model, prefix + kModelFile, *t->table_));
  if (!chat_template.empty()) t->chat_template_ = std::move(chat_template);
  K2_RETURN_IF_ERROR(TokenizerBuilder::read_config(*t, tokenizer_config, prefix + kConfigFile));
  for (const SpecialToken& s : t->specials_) t->table_->add_token(s.content);
  if (!generation_config.empty()) {
    K2_RETURN_IF_ERROR(TokenizerBuilder::read_generation_config(*t, generation_config, prefix + kGenerationFile));
  }
  std::vector<std::pair<std::string_view, int32_t>> names;
  for (const SpecialToken& s : t->specials_) names.emplace_back(s.content, s.id);
  t->special_matcher_ = std::make_unique<tok::SpecialMatcher>(names);
  K2_ASSIGN_OR_RETURN(t->pretokenizer_, tok::PreTokenizer::create());
  return std::shared_ptr<const Tokenizer>(std::move(t));
}

namespace {

// Reads a whole file; absent optional files give an empty optional.
Result<std::optional<std::string>> read_file(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return std::optional<std::string>();
    return not_found(path + ": cannot open");
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return io_error(path + ": read failed");
  return std::optional<std::string>(std::move(buf).str());
}

}  // namespace

Result<std::shared_ptr<const Tokenizer>> Tokenizer::load(const std::string& dir) {
  K2_ASSIGN_OR_RETURN(const auto model, read_file(dir + "/" + kModelFile, true));
  K2_ASSIGN_OR_RETURN(const auto config, read_file(dir + "/" + kConfigFile, true));
  K2_ASSIGN_OR_RETURN(const auto generation, read_file(dir + "/" + kGenerationFile, false));
  K2_ASSIGN_OR_RETURN(auto chat_template, read_file(dir + "/" + kTemplateFile, false));
  return from_contents(*model, *config, generation.value_or(""), chat_template.value_or(""), dir);
}

}  // namespace k2
