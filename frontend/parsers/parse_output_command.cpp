#include "frontend/parsers/parse_output_command.h"

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "frontend/parsers/kimi_k2_markers.h"
#include "frontend/parsers/output_parser.h"

namespace k2::parsers {

namespace {

using Json = nlohmann::json;

// The `content` of every added token the tokenizer declares.
Result<std::set<std::string>> load_added_tokens(const std::string& dir) {
  std::string path = dir + "/tokenizer_config.json";
  std::ifstream file(path);
  if (!file) return io_error("cannot open " + path);
  Json config = Json::parse(file, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) return corrupt(path + " is not a JSON object");
  std::set<std::string> tokens;
  auto decoder = config.find("added_tokens_decoder");
  if (decoder != config.end() && decoder->is_object()) {
    for (const auto& [id, token] : decoder->items()) {
      auto content = token.find("content");
      if (token.is_object() && content != token.end() && content->is_string()) {
        tokens.insert(content->get<std::string>());
      }
    }
  }
  return tokens;
}

Status check_markers(const OutputParserConfig& config, const std::set<std::string>* vocab) {
  if (vocab == nullptr) return Status::ok_status();
  auto require = [&](std::string_view marker, const char* parser) -> Status {
    if (vocab->count(std::string(marker)) != 0) return Status::ok_status();
    return not_found(std::string("the tokenizer has no ") + std::string(marker) +
                     " token, which the kimi_k2 " + parser + " needs");
  };
  if (config.parse_tools) {
    for (std::string_view m : {kToolSectionBegin, kToolSectionEnd, kToolCallBegin, kToolCallEnd}) {
      K2_RETURN_IF_ERROR(require(m, "tool parser"));
    }
  }
  if (config.parse_reasoning) {
    for (std::string_view m : {kThinkBegin, kThinkEnd}) K2_RETURN_IF_ERROR(require(m, "reasoning parser"));
  }
  return Status::ok_status();
}

Result<Json> answer_line(const std::string& line, const std::set<std::string>* vocab) {
  Json record = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (record.is_discarded()) return invalid_argument("the line is not valid JSON");
  if (!record.is_object()) return invalid_argument("the line is not a JSON object");
  auto output = record.find("model_output");
  if (output == record.end() || !output->is_string()) {
    return invalid_argument("model_output must be a string");
  }
  auto request = record.find("request");
  Json empty_request = Json::object();
  K2_ASSIGN_OR_RETURN(OutputParserConfig config,
                      output_config_from_request(request == record.end() ? empty_request : *request));
  K2_RETURN_IF_ERROR(check_markers(config, vocab));

  ParsedOutput parsed = parse_output(output->get_ref<const std::string&>(), config);
  Json calls = Json::array();
  for (const ToolCall& call : parsed.tool_calls) {
    calls.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}});
  }
  Json answer = Json::object();
  answer["reasoning"] = parsed.reasoning ? Json(*parsed.reasoning) : Json(nullptr);
  answer["content"] = parsed.content ? Json(*parsed.content) : Json(nullptr);
  answer["tools_called"] = parsed.tools_called;
  answer["tool_calls"] = std::move(calls);
  return answer;
}

}  // namespace

int parse_output_command(const std::string& tokenizer_dir, std::istream& in, std::ostream& out) {
  std::set<std::string> vocab;
  if (!tokenizer_dir.empty()) {
    Result<std::set<std::string>> loaded = load_added_tokens(tokenizer_dir);
    if (!loaded.ok()) {
      std::cerr << "parse-output: " << loaded.status().to_string() << "\n";
      return 1;
    }
    vocab = std::move(loaded).value();
  }
  std::string line;
  while (std::getline(in, line)) {
    Result<Json> answer = answer_line(line, tokenizer_dir.empty() ? nullptr : &vocab);
    Json reply = answer.ok() ? std::move(answer).value() : Json{{"error", answer.status().message()}};
    // Model text is not guaranteed to be valid UTF-8; replace rather than throw.
    out << reply.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  out.flush();
  return 0;
}

}  // namespace k2::parsers
