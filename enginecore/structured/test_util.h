// Helpers shared by the structured-output tests: vocabularies, a byte-level matcher and a
// validator for the JSON-schema subset the compiler supports. Test-only.
#pragma once

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "enginecore/structured/grammar_matcher.h"

namespace k2::structured::testing {

using Json = nlohmann::ordered_json;

// One token per byte value plus an end token (id 256, no bytes).
inline std::shared_ptr<const TokenVocabulary> byte_vocab() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  tokens.emplace_back();
  auto v = TokenVocabulary::create(tokens, {256});
  return v.ok() ? *v : nullptr;
}

inline std::string base64_decode(const std::string& in) {
  std::string out;
  int bits = 0;
  uint32_t acc = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z' ? c - 'A'
          : c >= 'a' && c <= 'z' ? c - 'a' + 26
          : c >= '0' && c <= '9' ? c - '0' + 52
          : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// Each rank's bytes of a tiktoken.model file (base64 token and rank per line).
inline std::vector<std::string> read_tiktoken_tokens(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string b64;
    size_t rank = 0;
    if (!(ss >> b64 >> rank)) continue;
    if (tokens.size() <= rank) tokens.resize(rank + 1);
    tokens[rank] = base64_decode(b64);
  }
  return tokens;
}

// The tiny Kimi-format test tokenizer, its single bytes added (the file lacks some), a special
// token with no bytes and an end token.
inline std::shared_ptr<const TokenVocabulary> test_vocab(int32_t* end_id = nullptr) {
  std::vector<std::string> tokens = read_tiktoken_tokens(std::string(K2_TEST_DATA_DIR) + "/text/tok-1024/tiktoken.model");
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  // Tokens that cross value and rule boundaries, which a small BPE vocabulary lacks.
  for (const char* t : {"1}", "0,", "2]", "5e3}", "\"}", "\"]", "]}", "}]", "}}", "]]", "\", \"", ", \"",
                        "\": ", "\":", "\"}]", "e}", "true}", "null]", "7, 8", "\xE4\xBD\xA0\"}"}) {
    tokens.emplace_back(t);
  }
  tokens.emplace_back();  // special token: never allowed
  int32_t end = static_cast<int32_t>(tokens.size());
  tokens.emplace_back("<|im_end|>");
  if (end_id) *end_id = end;
  auto v = TokenVocabulary::create(tokens, {end});
  return v.ok() ? *v : nullptr;
}

inline size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Validates `v` against the supported subset with the compiler's strict defaults
// (additionalProperties false unless given) and checks properties come in schema order.
inline bool validate(const Json& v, const Json& s, const Json& root, std::string* why, int depth = 0) {
  auto fail = [&](const std::string& m) {
    if (why) *why = m + " at " + v.dump();
    return false;
  };
  if (depth > 200) return fail("too deep");
  if (s.is_boolean()) return s.get<bool>() || fail("false schema");
  if (s.contains("$ref")) {
    std::string ref = s["$ref"];
    return validate(v, root.at(Json::json_pointer(ref.substr(1))), root, why, depth + 1);
  }
  for (const char* k : {"anyOf", "oneOf"}) {
    if (!s.contains(k)) continue;
    Json base = s;
    base.erase(k);
    for (const Json& b : s[k]) {
      Json merged = base;
      if (b.is_object()) {
        for (auto it = b.begin(); it != b.end(); ++it) {
          if (it.key() == "properties" && merged.contains("properties")) {
            for (auto p = it->begin(); p != it->end(); ++p) merged["properties"][p.key()] = p.value();
          } else {
            merged[it.key()] = it.value();
          }
        }
      } else if (!b.get<bool>()) {
        continue;
      }
      if (validate(v, merged, root, nullptr, depth + 1)) return true;
    }
    return fail(std::string("no ") + k + " branch matches");
  }
  if (s.contains("allOf")) {
    for (const Json& b : s["allOf"]) {
      if (!validate(v, b, root, why, depth + 1)) return false;
    }
  }
  if (s.contains("const") && v != s["const"]) return fail("const");
  if (s.contains("enum")) {
    bool found = false;
    for (const Json& e : s["enum"]) found = found || e == v;
    if (!found) return fail("enum");
  }
  if (s.contains("type")) {
    std::vector<std::string> types;
    if (s["type"].is_string()) types.push_back(s["type"]);
    else for (const Json& t : s["type"]) types.push_back(t);
    bool ok = false;
    for (const std::string& t : types) {
      ok = ok || (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
           (t == "string" && v.is_string()) || (t == "integer" && v.is_number_integer()) ||
           (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null());
    }
    if (!ok) return fail("type");
  }
  if (v.is_string()) {
    size_t n = utf8_length(v.get<std::string>());
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return fail("minLength");
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return fail("maxLength");
  }
  bool typed_object = s.contains("properties") || s.contains("required") || s.contains("additionalProperties");
  if (v.is_object() && typed_object) {
    Json props = s.value("properties", Json::object());
    for (const Json& r : s.value("required", Json::array())) {
      if (!v.contains(r.get<std::string>())) return fail("required " + r.dump());
    }
    size_t last_index = 0;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (props.contains(it.key())) {
        size_t index = static_cast<size_t>(std::distance(props.begin(), props.find(it.key())));
        if (index < last_index) return fail("property order");
        last_index = index;
        if (!validate(it.value(), props[it.key()], root, why, depth + 1)) return false;
      } else {
        Json extra = s.value("additionalProperties", Json(false));
        if (!validate(it.value(), extra, root, why, depth + 1)) return fail("additional property " + it.key());
      }
    }
  }
  if (v.is_array()) {
    size_t k = 0;
    if (s.contains("prefixItems")) {
      k = s["prefixItems"].size();
      for (size_t i = 0; i < std::min(k, v.size()); ++i) {
        if (!validate(v[i], s["prefixItems"][i], root, why, depth + 1)) return false;
      }
    }
    Json items = s.contains("items") ? s["items"] : Json(!s.contains("prefixItems"));
    for (size_t i = k; i < v.size(); ++i) {
      if (!validate(v[i], items, root, why, depth + 1)) return fail("items");
    }
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return fail("minItems");
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return fail("maxItems");
  }
  return true;
}

}  // namespace k2::structured::testing
