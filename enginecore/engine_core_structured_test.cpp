// The engine core's structured outputs with a fake worker that draws only tokens the plan's
// mask allows: the grammar drives the output to a complete document and the request ends.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "enginecore/engine_core.h"

namespace k2::engine {
namespace {

constexpr int32_t kEos = 100;
constexpr int32_t kThinkEnd = 99;
constexpr int64_t kVocab = 128;

EngineCoreConfig config() {
  EngineCoreConfig c;
  c.kv.block_size = 4;
  c.kv.num_blocks = 256;
  c.scheduler.max_model_len = 512;
  c.scheduler.max_num_batched_tokens = 64;
  c.eos_token_ids = {kEos};
  return c;
}

// Ids 0..94 are the printable ASCII characters, 95..98 longer pieces, 99 a special token
// (no bytes: never allowed inside the grammar), 100 EOS.
std::vector<std::string> vocabulary() {
  std::vector<std::string> v;
  for (int c = 32; c < 127; ++c) v.emplace_back(1, static_cast<char>(c));
  v.insert(v.end(), {"{\"", "\": ", "true", "12"});
  v.emplace_back("");  // 99
  return v;
}

std::string text_of(const std::vector<int32_t>& ids, const std::vector<std::string>& vocab) {
  std::string s;
  for (int32_t id : ids)
    if (id < static_cast<int32_t>(vocab.size())) s += vocab[static_cast<size_t>(id)];
  return s;
}

bool allowed(const std::vector<uint32_t>& mask, int32_t id) {
  return static_cast<size_t>(id / 32) < mask.size() && ((mask[static_cast<size_t>(id / 32)] >> (id % 32)) & 1u);
}

struct Outcome {
  std::vector<int32_t> tokens;
  protocol::FinishReason finish = protocol::FinishReason::kNone;
  int masked_steps = 0, free_steps = 0;
};

// Steps until the request ends. `pick(step, mask)` chooses the token (from the mask when
// there is one).
template <class Pick>
Outcome run(EngineCore& core, Pick pick) {
  Outcome r;
  for (int step = 0; step < 400 && core.has_unfinished_requests(); ++step) {
    auto plan = core.plan_step();
    if (!plan) break;
    protocol::StepResult result;
    result.step_id = plan->step_id;
    for (const auto& s : plan->requests) {
      if (!s.sample) {
        EXPECT_TRUE(s.allowed_token_mask.empty());
        continue;
      }
      (s.allowed_token_mask.empty() ? r.free_steps : r.masked_steps) += 1;
      result.samples.push_back({s.slot, {pick(step, s.allowed_token_mask)}, std::nullopt, std::nullopt});
    }
    EXPECT_TRUE(core.finish_step(result).ok());
    for (const auto& o : core.take_outputs().outputs) {
      r.tokens.insert(r.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finish_reason != protocol::FinishReason::kNone) r.finish = o.finish_reason;
    }
  }
  return r;
}

protocol::AddRequest structured_request(const std::string& schema, int32_t reasoning_end = -1) {
  protocol::AddRequest a;
  a.request_id = "s";
  a.prompt = protocol::inline_tokens({1, 2, 3});
  a.params.max_tokens = 200;
  a.structured = protocol::StructuredOutputParams{schema, schema.empty(), reasoning_end};
  return a;
}

const char* kSchema = R"({"type":"object","properties":{"x":{"type":"integer"},"ok":{"type":"boolean"}},"required":["x","ok"]})";

TEST(EngineCoreStructured, RandomAllowedTokensAlwaysGiveADocumentOfTheSchema) {
  const std::vector<std::string> vocab = vocabulary();
  int stopped = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto core = EngineCore::create(config());
    ASSERT_TRUE(core.ok());
    ASSERT_TRUE((*core)->set_vocabulary(vocab, kVocab).ok());
    (*core)->add_request(structured_request(kSchema));
    std::mt19937_64 rng(seed);
    Outcome r = run(**core, [&](int, const std::vector<uint32_t>& mask) {
      EXPECT_FALSE(mask.empty());
      if (allowed(mask, kEos)) return kEos;  // finish as soon as the document is complete
      std::vector<int32_t> ok;
      for (int32_t id = 0; id < kVocab; ++id)
        if (allowed(mask, id)) ok.push_back(id);
      EXPECT_FALSE(ok.empty());
      // Digits are allowed forever inside the integer: prefer anything else half the time.
      return ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
    });
    if (r.finish != protocol::FinishReason::kStop) continue;
    ++stopped;
    ASSERT_EQ(r.tokens.back(), kEos);
    r.tokens.pop_back();
    const std::string text = text_of(r.tokens, vocab);
    const auto doc = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(doc.is_discarded()) << text;
    // An integer (it may not fit int64, so check its text: no fraction, no exponent).
    EXPECT_TRUE(doc.at("x").is_number()) << text;
    EXPECT_TRUE(std::regex_search(text, std::regex(R"("x"\s*:\s*-?[0-9]+\s*,)"))) << text;
    EXPECT_TRUE(doc.at("ok").is_boolean()) << text;
    EXPECT_EQ(doc.size(), 2u) << text;
  }
  EXPECT_GE(stopped, 10);
}

TEST(EngineCoreStructured, TheGrammarStartsAfterTheReasoningEnds) {
  auto core = EngineCore::create(config());
  ASSERT_TRUE(core.ok());
  const std::vector<std::string> vocab = vocabulary();
  ASSERT_TRUE((*core)->set_vocabulary(vocab, kVocab).ok());
  (*core)->add_request(structured_request("", kThinkEnd));  // json_object after </think>
  // Three free tokens of reasoning, </think>, then the smallest allowed id until '}' closes.
  const std::string doc = "{}";
  Outcome r = run(**core, [&](int step, const std::vector<uint32_t>& mask) -> int32_t {
    if (step < 3) return 'a' - 32;
    if (step == 3) return kThinkEnd;
    EXPECT_FALSE(mask.empty()) << step;
    if (allowed(mask, kEos)) return kEos;
    const int32_t want = doc[static_cast<size_t>(step - 4)] - 32;
    EXPECT_TRUE(allowed(mask, want)) << step;
    EXPECT_FALSE(allowed(mask, 'a' - 32)) << "free text after </think>";
    return want;
  });
  EXPECT_EQ(r.free_steps, 4);
  EXPECT_EQ(r.masked_steps, 3);  // '{', '}', EOS
  EXPECT_EQ(r.finish, protocol::FinishReason::kStop);
}

TEST(EngineCoreStructured, WithIgnoreEosTheCompleteGrammarStillEndsTheRequest) {
  auto core = EngineCore::create(config());
  ASSERT_TRUE(core.ok());
  ASSERT_TRUE((*core)->set_vocabulary(vocabulary(), kVocab).ok());
  auto req = structured_request("");
  req.params.ignore_eos = true;
  (*core)->add_request(req);
  const std::string doc = "{}";
  Outcome r = run(**core, [&](int step, const std::vector<uint32_t>& mask) -> int32_t {
    if (static_cast<size_t>(step) < doc.size()) return doc[static_cast<size_t>(step)] - 32;
    EXPECT_TRUE(allowed(mask, kEos));
    return kEos;
  });
  EXPECT_EQ(r.finish, protocol::FinishReason::kStop);
  EXPECT_EQ(r.tokens.size(), 3u);
}

TEST(EngineCoreStructured, RefusedWithoutAVocabularyOrWithABadSchema) {
  auto core = EngineCore::create(config());
  ASSERT_TRUE(core.ok());
  (*core)->add_request(structured_request(kSchema));
  auto out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kError);
  ASSERT_TRUE((*core)->set_vocabulary(vocabulary(), kVocab).ok());
  (*core)->add_request(structured_request(R"({"type":"object","properties":{"x":{"type":"nonsense"}}})"));
  out = (*core)->take_outputs();
  ASSERT_EQ(out.outputs.size(), 1u);
  EXPECT_EQ(out.outputs[0].finish_reason, protocol::FinishReason::kError);
  EXPECT_FALSE((*core)->has_unfinished_requests());
  EXPECT_FALSE((*core)->set_vocabulary(std::vector<std::string>(200, "a"), kVocab).ok());  // more ids than logits
}

}  // namespace
}  // namespace k2::engine
