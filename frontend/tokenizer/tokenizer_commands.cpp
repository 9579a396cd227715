#include "frontend/tokenizer/tokenizer_commands.h"

#include <functional>
#include <istream>
#include <ostream>

#include <nlohmann/json.hpp>

#include "frontend/tokenizer/tokenizer.h"

namespace k2 {

using nlohmann::json;

namespace {

void write_line(std::ostream& out, const json& j) {
  // Decoded text is always valid UTF-8 (U+FFFD replaces bad bytes); replace anyway so a
  // bug can never throw here.
  out << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

// Runs `handle` on every input line; a line whose handler fails gets an error object.
int run_lines(const std::string& dir, std::istream& in, std::ostream& out,
              const std::function<Result<json>(const Tokenizer&, const json&)>& handle) {
  auto tokenizer = Tokenizer::load(dir);
  if (!tokenizer.ok()) {
    write_line(out, json{{"error", tokenizer.status().to_string()}});
    out.flush();
    return 2;
  }
  int rc = 0;
  std::string line;
  while (std::getline(in, line)) {
    Result<json> reply = invalid_argument("empty line");
    try {
      const json request = json::parse(line);
      if (!request.is_object()) {
        reply = invalid_argument("expected a JSON object");
      } else {
        reply = handle(**tokenizer, request);
      }
    } catch (const json::exception& e) {
      reply = invalid_argument(std::string("bad JSON: ") + e.what());
    }
    if (reply.ok()) {
      write_line(out, *reply);
    } else {
      write_line(out, json{{"error", reply.status().message()}});
      rc = 1;
    }
    out.flush();
  }
  return rc;
}

Result<json> tokenize_one(const Tokenizer& t, const json& request) {
  const auto it = request.find("text");
  if (it == request.end() || !it->is_string()) return invalid_argument("expected {\"text\": string}");
  bool allow_special = true;
  if (const auto a = request.find("allow_special_tokens"); a != request.end()) {
    if (!a->is_boolean()) return invalid_argument("allow_special_tokens must be a boolean");
    allow_special = a->get<bool>();
  }
  return json{{"ids", t.encode(it->get_ref<const std::string&>(), allow_special)}};
}

Result<json> detokenize_one(const Tokenizer& t, bool skip, const json& request) {
  const auto it = request.find("ids");
  if (it == request.end() || !it->is_array()) return invalid_argument("expected {\"ids\": [int, ...]}");
  std::vector<int32_t> ids;
  ids.reserve(it->size());
  for (const json& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= t.vocab_size()) {
      return invalid_argument("ids[" + std::to_string(ids.size()) + "] = " + v.dump() +
                              " is not a token id below " + std::to_string(t.vocab_size()));
    }
    ids.push_back(v.get<int32_t>());
  }
  K2_ASSIGN_OR_RETURN(std::string text, t.decode(ids, skip));
  return json{{"text", std::move(text)}};
}

}  // namespace

int tokenize_command(const std::string& tokenizer_dir, std::istream& in, std::ostream& out) {
  return run_lines(tokenizer_dir, in, out, tokenize_one);
}

int detokenize_command(const std::string& tokenizer_dir, bool skip_special_tokens, std::istream& in,
                       std::ostream& out) {
  return run_lines(tokenizer_dir, in, out, [skip_special_tokens](const Tokenizer& t, const json& r) {
    return detokenize_one(t, skip_special_tokens, r);
  });
}

}  // namespace k2
