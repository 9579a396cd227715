// Every record of chat_template_cases.jsonl rendered through render_chat must match its
// `rendered` byte for byte, or fail with an error naming the cause where the golden has
// `error`.
#include <map>

#include "frontend/chat_template/chat.h"
#include "frontend/chat_template/chat_test_util.h"

namespace k2 {
namespace {

using json = nlohmann::ordered_json;
using chat_test::data_path;

const ChatTemplate& template_named(const std::string& name) {
  static std::map<std::string, ChatTemplate>* cache = new std::map<std::string, ChatTemplate>();
  auto it = cache->find(name);
  if (it == cache->end()) {
    auto parsed = ChatTemplate::load_from_file(data_path("text/templates/" + name));
    EXPECT_TRUE(parsed.ok()) << parsed.status().to_string();
    it = cache->emplace(name, std::move(parsed).value()).first;
  }
  return it->second;
}

SpecialTokens tok1024_special_tokens() {
  return SpecialTokens::from_tokenizer_config(
      json::parse(chat_test::read_text(data_path("text/tok-1024/tokenizer_config.json"))));
}

Result<std::string> render_record(const json& r) {
  json messages = r["messages"];
  if (r["message_preprocessing"] == "vllm") {
    K2_ASSIGN_OR_RETURN(messages, vllm_preprocess_messages(messages));
  }
  return render_chat(template_named(r["template"].get<std::string>()), messages, r["tools"], r["kwargs"],
                     tok1024_special_tokens());
}

TEST(ChatGolden, EveryRecordMatches) {
  const auto records = chat_test::golden_records();
  ASSERT_EQ(records.size(), 136u);
  int rendered = 0;
  int errors = 0;
  for (const auto& r : records) {
    const std::string label = r["template"].get<std::string>() + "/" + r["case"].get<std::string>() + "/" +
                              r["message_preprocessing"].get<std::string>() + "/" + r["kwargs"].dump();
    auto out = render_record(r);
    if (r.contains("error")) {
      ASSERT_FALSE(out.ok()) << label << " rendered but the golden is an error";
      // The golden's message ("TypeError: 'NoneType' object is not iterable") names the cause.
      EXPECT_NE(out.status().message().find(r["error"].get<std::string>()), std::string::npos)
          << label << ": " << out.status().message();
      ++errors;
      continue;
    }
    ASSERT_TRUE(out.ok()) << label << ": " << out.status().to_string();
    EXPECT_EQ(*out, r["rendered"].get<std::string>()) << label;
    ++rendered;
  }
  EXPECT_EQ(errors, 6);
  EXPECT_EQ(rendered, 130);
}

TEST(ChatGolden, DemoModelTemplateIsTheThinkingTemplate) {
  // The demo model ships its own copy; it must render the thinking goldens identically.
  auto demo = ChatTemplate::load_from_tokenizer_dir(data_path("models/demo-trained"));
  ASSERT_TRUE(demo.ok()) << demo.status().to_string();
  for (const auto& r : chat_test::golden_records()) {
    if (r["template"] != "kimi-k2-thinking.jinja" || r.contains("error")) continue;
    json messages = r["messages"];
    if (r["message_preprocessing"] == "vllm") messages = *vllm_preprocess_messages(messages);
    auto out = render_chat(*demo, messages, r["tools"], r["kwargs"], tok1024_special_tokens());
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_EQ(*out, r["rendered"].get<std::string>()) << r["case"];
  }
}

TEST(ChatGolden, ToolsAreDeepSortedBeforeRendering) {
  auto tpl = ChatTemplate::parse("{{ tools | tojson }}");
  ASSERT_TRUE(tpl.ok());
  const json tools = json::parse(R"([{"b": {"z": 1, "a": [{"y": 2, "x": 3}]}, "a": 0}])");
  auto out = render_chat(*tpl, json::array(), tools, json::object(), {});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, R"([{"a": 0, "b": {"a": [{"x": 3, "y": 2}], "z": 1}}])");
}

TEST(ChatGolden, VllmPreprocessing) {
  const json messages = json::parse(R"([
    {"role": "assistant", "content": "", "tool_calls": []},
    {"role": "assistant", "content": "", "reasoning": "r", "tool_calls": [
      {"id": "a", "function": {"name": "f", "arguments": "{\"b\":1,\"a\":2}"}},
      {"id": "b", "function": {"name": "g", "arguments": ""}},
      {"id": "c", "function": {"name": "h", "arguments": null}}]}])");
  auto out = vllm_preprocess_messages(messages);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FALSE((*out)[0].contains("tool_calls"));
  EXPECT_EQ((*out)[1]["reasoning_content"], "r");
  EXPECT_EQ((*out)[1]["tool_calls"][0]["function"]["arguments"].dump(), R"({"b":1,"a":2})");
  EXPECT_EQ((*out)[1]["tool_calls"][1]["function"]["arguments"], json::object());
  EXPECT_EQ((*out)[1]["tool_calls"][2]["function"]["arguments"], json::object());
  const json bad = json::parse(R"([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{oops"}}]}])");
  EXPECT_FALSE(vllm_preprocess_messages(bad).ok());
}

TEST(ChatGolden, KwargsReachTheTemplate) {
  auto tpl = ChatTemplate::parse("{{ thinking }}|{{ add_generation_prompt }}|{{ bos_token }}|{{ documents }}");
  ASSERT_TRUE(tpl.ok());
  SpecialTokens tokens;
  tokens.bos_token = "[BOS]";
  auto out = render_chat(*tpl, json::array(), json(), json::parse(R"({"thinking": false, "add_generation_prompt": true})"),
                         tokens);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, "False|True|[BOS]|None");
}

TEST(ChatGolden, RaiseExceptionCarriesTheMessage) {
  auto tpl = ChatTemplate::parse("{% if messages|length == 0 %}{{ raise_exception('need a message') }}{% endif %}");
  ASSERT_TRUE(tpl.ok());
  auto out = render_chat(*tpl, json::array(), json(), json::object(), {});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("need a message"), std::string::npos);
}

}  // namespace
}  // namespace k2
