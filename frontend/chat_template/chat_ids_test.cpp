// Token ids of every golden record: the rendered prompt encoded with tok-1024 (Kimi's
// encode rules, special tokens allowed) must equal the golden `ids`. Built only when the
// tokenizer library (frontend/tokenizer, target k2_tokenizer) exists.
#include "frontend/chat_template/chat.h"
#include "frontend/chat_template/chat_test_util.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {
namespace {

using json = nlohmann::ordered_json;
using chat_test::data_path;

TEST(ChatIds, EveryRenderedRecordEncodesToTheGoldenIds) {
  auto tokenizer = Tokenizer::load(data_path("text/tok-1024"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
  const auto& map = (*tokenizer)->special_tokens_map();
  SpecialTokens tokens{map.bos_token, map.eos_token, map.unk_token, map.pad_token, map.additional_special_tokens};
  int checked = 0;
  for (const auto& r : chat_test::golden_records()) {
    if (r.contains("error")) {
      EXPECT_TRUE(r["ids"].is_null());
      continue;
    }
    auto tpl = ChatTemplate::load_from_file(data_path("text/templates/" + r["template"].get<std::string>()));
    ASSERT_TRUE(tpl.ok()) << tpl.status().to_string();
    json messages = r["messages"];
    if (r["message_preprocessing"] == "vllm") messages = *vllm_preprocess_messages(messages);
    auto rendered = render_chat(*tpl, messages, r["tools"], r["kwargs"], tokens);
    ASSERT_TRUE(rendered.ok()) << rendered.status().to_string();
    const std::vector<int32_t> ids = (*tokenizer)->encode(*rendered, true);
    EXPECT_EQ(ids, r["ids"].get<std::vector<int32_t>>()) << r["case"];
    ++checked;
  }
  EXPECT_EQ(checked, 130);
}

}  // namespace
}  // namespace k2
