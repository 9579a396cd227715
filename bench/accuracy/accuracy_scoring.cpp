#include "bench/accuracy/accuracy_scoring.h"

namespace k2::bench {
namespace {

using nlohmann::json;

std::string string_or_empty(const json& obj, const char* key) {
  return obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : std::string();
}

}  // namespace

Result<ModelReply> parse_chat_reply(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return corrupt("the reply is not a JSON object");
  if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty() || !j["choices"][0].is_object()) {
    return corrupt("the reply has no choices");
  }
  const json& choice = j["choices"][0];
  if (!choice.contains("message") || !choice["message"].is_object()) return corrupt("choices[0] has no message");
  const json& m = choice["message"];
  ModelReply r;
  r.content = string_or_empty(m, "content");
  r.reasoning = string_or_empty(m, "reasoning_content");
  if (r.reasoning.empty()) r.reasoning = string_or_empty(m, "reasoning");
  r.finish_reason = string_or_empty(choice, "finish_reason");
  if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
    for (const auto& c : m["tool_calls"]) {
      if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
        return corrupt("a tool call without a function object");
      }
      const json& f = c["function"];
      ReceivedToolCall call;
      call.name = string_or_empty(f, "name");
      // Some servers send arguments as an object rather than a JSON string.
      call.arguments = f.contains("arguments") && !f["arguments"].is_string() ? f["arguments"].dump()
                                                                               : string_or_empty(f, "arguments");
      r.tool_calls.push_back(std::move(call));
    }
  }
  return r;
}

bool score_reply(const AccuracyItem& item, const ModelReply& reply) {
  if (!item.expects_tool_calls()) return reply.content == item.answer.value_or("");
  if (reply.tool_calls.size() != item.tool_calls.size()) return false;
  for (size_t i = 0; i < reply.tool_calls.size(); ++i) {
    if (reply.tool_calls[i].name != item.tool_calls[i].name) return false;
    if (parse_arguments(reply.tool_calls[i].arguments) != item.tool_calls[i].arguments) return false;
  }
  return true;
}

}  // namespace k2::bench
