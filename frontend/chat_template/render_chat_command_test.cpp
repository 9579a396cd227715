// render-chat's command face: one output line per input line, errors as lines, and the
// golden records through the whole path.
#include <sstream>

#include "frontend/chat_template/chat_test_util.h"
#include "frontend/chat_template/render_chat_command.h"

namespace k2 {
namespace {

using json = nlohmann::ordered_json;
using chat_test::data_path;

std::vector<json> run(const std::string& input, const std::optional<std::string>& tpl, int* rc = nullptr) {
  std::istringstream in(input);
  std::ostringstream out;
  const int code = render_chat_command(data_path("text/tok-1024"), tpl, in, out);
  if (rc) *rc = code;
  std::vector<json> lines;
  std::istringstream result(out.str());
  std::string line;
  while (std::getline(result, line)) lines.push_back(json::parse(line));
  return lines;
}

TEST(RenderChatCommand, GoldenRecordsThroughTheCommand) {
  for (const auto& r : chat_test::golden_records()) {
    json input = json::object();
    for (const char* key : {"messages", "tools", "kwargs", "message_preprocessing"}) input[key] = r[key];
    const auto out = run(input.dump() + "\n", data_path("text/templates/" + r["template"].get<std::string>()));
    ASSERT_EQ(out.size(), 1u);
    if (r.contains("error")) {
      ASSERT_TRUE(out[0].contains("error")) << r["case"];
      EXPECT_NE(out[0]["error"].get<std::string>().find(r["error"].get<std::string>()), std::string::npos);
      continue;
    }
    ASSERT_TRUE(out[0].contains("rendered")) << r["case"] << ": " << out[0].dump();
    EXPECT_EQ(out[0]["rendered"], r["rendered"]) << r["case"];
    EXPECT_EQ(out[0]["ids"], r["ids"]) << r["case"];
  }
}

TEST(RenderChatCommand, BadLinesGetErrorsAndTheNextLineIsRead) {
  int rc = 0;
  const auto out = run("not json\n{\"tools\": null}\n[1]\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                       "\"message_preprocessing\": \"bogus\"}\n{\"messages\": []}\n",
                       std::nullopt, &rc);
  ASSERT_EQ(out.size(), 5u);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(out[i].contains("error")) << out[i].dump();
  EXPECT_EQ(out[4]["rendered"], "<|im_system|>system<|im_middle|>You are Kimi, an AI assistant created by Moonshot AI.<|im_end|>");
  EXPECT_EQ(rc, 1);
}

TEST(RenderChatCommand, MissingTemplateIsOneErrorLine) {
  int rc = 0;
  const auto out = run("{\"messages\": []}\n", std::string("/nonexistent/template.jinja"), &rc);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].contains("error"));
  EXPECT_EQ(rc, 2);
}

}  // namespace
}  // namespace k2
