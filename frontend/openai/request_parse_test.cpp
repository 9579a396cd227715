#include "frontend/openai/request.h"

#include <gtest/gtest.h>

namespace k2::openai {
namespace {

ojson chat(ojson extra) {
  ojson j = {{"model", "m"}, {"messages", ojson::array({{{"role", "user"}, {"content", "hi"}}})}};
  for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  return j;
}

Status chat_status(ojson extra, RequestLimits limits = {}) {
  auto r = parse_chat_request(chat(std::move(extra)), limits);
  return r.ok() ? Status::ok_status() : r.status();
}

TEST(RequestParse, MalformedJsonAndNonObjects) {
  EXPECT_FALSE(parse_json_body("{\"a\":").ok());
  EXPECT_FALSE(parse_json_body("[1,2]").ok());
  EXPECT_EQ(parse_json_body("nope").status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(parse_json_body("{\"a\":1}").ok());
}

TEST(RequestParse, ChatDefaultsAndVllmExtras) {
  auto r = parse_chat_request(chat({{"top_k", 5}, {"min_p", 0.1}, {"repetition_penalty", 1.2}, {"ignore_eos", true},
                                    {"min_tokens", 3}, {"stop_token_ids", {7, 8}}, {"seed", 42},
                                    {"skip_special_tokens", false}, {"include_stop_str_in_output", true},
                                    {"chat_template_kwargs", {{"thinking", false}}}, {"some_unknown", 1}}),
                              {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->sampling.top_k, 5);
  EXPECT_DOUBLE_EQ(r->sampling.min_p, 0.1);
  EXPECT_DOUBLE_EQ(r->sampling.repetition_penalty, 1.2);
  EXPECT_TRUE(r->sampling.ignore_eos);
  EXPECT_EQ(r->sampling.min_tokens, 3);
  EXPECT_EQ(r->sampling.stop_token_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(*r->sampling.seed, 42);
  EXPECT_FALSE(r->skip_special_tokens);
  EXPECT_TRUE(r->include_stop_str_in_output);
  EXPECT_TRUE(r->add_generation_prompt);
  EXPECT_EQ(r->tool_choice.kind, ToolChoiceKind::kNone);
  EXPECT_EQ(r->ignored_fields, std::vector<std::string>{"some_unknown"});
}

TEST(RequestParse, NullMeansAbsent) {
  auto r = parse_chat_request(chat({{"temperature", nullptr}, {"stop", nullptr}, {"n", nullptr}}), {});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_temperature);
  EXPECT_EQ(r->n, 1);
}

TEST(RequestParse, RangeChecksAre400s) {
  RequestLimits lim;
  lim.max_n = 4;
  lim.max_logprobs = 5;
  lim.max_stop_strings = 2;
  lim.vocab_size = 100;
  for (const ojson& bad : std::vector<ojson>{
           {{"n", 0}}, {{"n", 5}}, {{"temperature", -0.1}}, {{"top_p", 0}}, {{"top_p", 1.5}}, {{"top_k", -2}},
           {{"min_p", 2}}, {{"presence_penalty", 3}}, {{"frequency_penalty", -2.5}}, {{"repetition_penalty", 0}},
           {{"max_tokens", 0}}, {{"min_tokens", -1}}, {{"stop", {"a", "b", "c"}}}, {{"stop", ""}}, {{"stop", 5}},
           {{"logprobs", true}, {"top_logprobs", 6}}, {{"top_logprobs", 2}}, {{"stop_token_ids", {100}}},
           {{"logit_bias", {{"abc", 1}}}}, {{"logit_bias", {{"150", 1}}}}, {{"n", "two"}}, {{"stream", "yes"}},
           {{"stream_options", {{"include_usage", true}}}}, {{"messages", ojson::array()}},
           {{"messages", {{{"content", "no role"}}}}}, {{"seed", 1.5}}, {{"prompt_logprobs", 6}},
           {{"prompt_logprobs", 1}, {"stream", true}}, {{"tool_choice", "required"}},
           {{"continue_final_message", true}}, {{"chat_template_kwargs", {{"messages", 1}}}},
           {{"response_format", {{"type", "xml"}}}}, {{"max_tokens", 1e30}}}) {
    Status st = chat_status(bad, lim);
    EXPECT_FALSE(st.ok()) << bad.dump();
    EXPECT_TRUE(st.code() == Code::kInvalidArgument) << bad.dump() << " -> " << st.to_string();
  }
  EXPECT_EQ(chat_status({{"use_beam_search", true}}).code(), Code::kUnimplemented);
  EXPECT_TRUE(chat_status({{"prompt_logprobs", 0}, {"stream", true}}).ok()) << "vLLM refuses only > 0 when streaming";
  EXPECT_TRUE(chat_status({{"prompt_logprobs", 5}}, lim).ok()) << "the --max-logprobs limit is inclusive";
}

TEST(RequestParse, MaxCompletionTokensWins) {
  auto r = parse_chat_request(chat({{"max_tokens", 10}, {"max_completion_tokens", 20}}), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->max_tokens, 20);
  auto f = parse_chat_request(chat({{"max_tokens", 5.0}}), {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->max_tokens, 5);
}

TEST(RequestParse, ToolsAndToolChoice) {
  ojson tools = ojson::array({{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  auto r = parse_chat_request(chat({{"tools", tools}}), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->tool_choice.kind, ToolChoiceKind::kAuto);
  auto named = parse_chat_request(chat({{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}}), {});
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->tool_choice.kind, ToolChoiceKind::kNamed);
  EXPECT_EQ(named->tool_choice.name, "get_weather");
  auto unknown = parse_chat_request(chat({{"tools", tools}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "nope"}}}}}}), {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("nope"), std::string::npos);
  EXPECT_FALSE(chat_status({{"tools", {{{"type", "function"}, {"function", {{"name", ""}}}}}}}).ok());
  EXPECT_FALSE(chat_status({{"tools", tools}, {"tool_choice", "sometimes"}}).ok());
  auto none = parse_chat_request(chat({{"tools", tools}, {"tool_choice", "none"}}), {});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->tool_choice.kind, ToolChoiceKind::kNone);
}

TEST(RequestParse, ChatLogprobs) {
  auto r = parse_chat_request(chat({{"logprobs", true}, {"top_logprobs", 3}}), {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->logprobs, 3);
  auto off = parse_chat_request(chat({{"logprobs", false}}), {});
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->logprobs);
}

TEST(RequestParse, CompletionPromptForms) {
  auto text = parse_completion_request({{"prompt", "hello"}}, {});
  ASSERT_TRUE(text.ok());
  ASSERT_EQ(text->prompts.size(), 1u);
  EXPECT_EQ(*text->prompts[0].text, "hello");
  auto ids = parse_completion_request({{"prompt", {1, 2, 3}}}, {});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  auto many = parse_completion_request({{"prompt", {"a", "b"}}, {"n", 2}}, {});
  ASSERT_TRUE(many.ok());
  EXPECT_EQ(many->prompts.size(), 2u);
  auto many_ids = parse_completion_request({{"prompt", {{1, 2}, {3}}}}, {});
  ASSERT_TRUE(many_ids.ok());
  EXPECT_EQ(many_ids->prompts[1].ids, std::vector<int32_t>{3});
  for (const ojson& bad : std::vector<ojson>{{{"prompt", ""}},
                                             {{"prompt", ojson::array()}},
                                             {{"prompt", {{1}, "x", 3}}},
                                             {{"prompt", {-1}}},
                                             {{"prompt", 5}},
                                             {{"max_tokens", 3}},
                                             {{"prompt", "x"}, {"logprobs", 21}},
                                             {{"prompt", "x"}, {"suffix", "y"}}}) {
    EXPECT_FALSE(parse_completion_request(bad, {}).ok()) << bad.dump();
  }
  auto echo = parse_completion_request({{"prompt", "x"}, {"echo", true}, {"logprobs", 2}}, {});
  ASSERT_TRUE(echo.ok());
  EXPECT_EQ(*echo->sampling.prompt_logprobs, 2);
}

TEST(RequestParse, FinalizeUsesVllmContextMessages) {
  CommonRequest r;
  Status st = finalize_sampling(r, 100, 100, {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("This model's maximum context length is 100 tokens. However, your request has 100 input tokens"),
            std::string::npos);
  r.max_tokens = 50;
  st = finalize_sampling(r, 60, 100, {});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "'max_tokens' or 'max_completion_tokens' is too large: 50. This model's maximum context length is 100 "
            "tokens and your request has 60 input tokens (50 > 100 - 60).");
}

TEST(RequestParse, FinalizeAppliesGenerationDefaults) {
  CommonRequest r;
  GenerationDefaults d;
  d.temperature = 0.6;
  d.top_p = 0.95;
  d.max_tokens = 30;
  ASSERT_TRUE(finalize_sampling(r, 10, 100, d).ok());
  EXPECT_DOUBLE_EQ(r.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(r.sampling.top_p, 0.95);
  EXPECT_EQ(r.sampling.max_tokens, 30);
  CommonRequest r2;
  r2.has_temperature = true;
  r2.sampling.temperature = 0;
  ASSERT_TRUE(finalize_sampling(r2, 10, 100, {}).ok());
  EXPECT_EQ(r2.sampling.temperature, 0);
  EXPECT_EQ(r2.sampling.max_tokens, 90);
  CommonRequest r3;
  r3.sampling.min_tokens = 20;
  r3.max_tokens = 10;
  EXPECT_FALSE(finalize_sampling(r3, 10, 100, {}).ok());
}

}  // namespace
}  // namespace k2::openai
