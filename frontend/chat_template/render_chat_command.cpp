#include "frontend/chat_template/render_chat_command.h"

#include <fstream>
#include <istream>
#include <memory>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frontend/chat_template/chat.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {
namespace {

using json = nlohmann::ordered_json;

std::string error_line(const std::string& message) {
  json j = json::object();
  j["error"] = message;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<SpecialTokens> load_special_tokens(const std::string& dir) {
  std::ifstream in(dir + "/tokenizer_config.json", std::ios::binary);
  if (!in) return SpecialTokens{};  // a template file alone is enough to render
  std::ostringstream buf;
  buf << in.rdbuf();
  const json config = json::parse(buf.str(), nullptr, false);
  if (config.is_discarded()) return corrupt(dir + "/tokenizer_config.json: invalid JSON");
  return SpecialTokens::from_tokenizer_config(config);
}

Result<std::string> render_record(const ChatTemplate& tpl, const SpecialTokens& tokens, const json& record) {
  if (!record.is_object()) return invalid_argument("input line must be a JSON object");
  if (!record.contains("messages")) return invalid_argument("missing \"messages\"");
  json messages = record["messages"];
  const json tools = record.contains("tools") ? record["tools"] : json();
  const json kwargs = record.contains("kwargs") ? record["kwargs"] : json::object();
  const json preprocessing = record.contains("message_preprocessing") ? record["message_preprocessing"] : json("none");
  if (preprocessing == "vllm") {
    K2_ASSIGN_OR_RETURN(messages, vllm_preprocess_messages(messages));
  } else if (preprocessing != "none") {
    return invalid_argument("message_preprocessing must be \"none\" or \"vllm\"");
  }
  return render_chat(tpl, messages, tools, kwargs, tokens);
}

}  // namespace

int render_chat_command(const std::string& tokenizer_dir, const std::optional<std::string>& chat_template_file,
                        std::istream& in, std::ostream& out) {
  auto tpl = chat_template_file ? ChatTemplate::load_from_file(*chat_template_file)
                                : ChatTemplate::load_from_tokenizer_dir(tokenizer_dir);
  if (!tpl.ok()) {
    out << error_line(tpl.status().to_string()) << "\n";
    return 2;
  }
  auto tokens = load_special_tokens(tokenizer_dir);
  if (!tokens.ok()) {
    out << error_line(tokens.status().to_string()) << "\n";
    return 2;
  }
  auto tokenizer = Tokenizer::load(tokenizer_dir);
  if (!tokenizer.ok()) {
    out << error_line(tokenizer.status().to_string()) << "\n";
    return 2;
  }
  int rc = 0;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const json record = json::parse(line, nullptr, false);
    Result<std::string> rendered = record.is_discarded() ? Result<std::string>(invalid_argument("invalid JSON"))
                                                         : render_record(*tpl, *tokens, record);
    if (!rendered.ok()) {
      out << error_line(rendered.status().message()) << "\n";
      rc = 1;
      continue;
    }
    json result = json::object();
    result["rendered"] = *rendered;
    result["ids"] = (*tokenizer)->encode(*rendered, true);
    out << result.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  return rc;
}

}  // namespace k2
