#include "frontend/openai/logprobs_format.h"

#include <cmath>

namespace k2::openai {

std::string TokenStrings::text(int32_t id) const {
  if (as_token_ids) return "token_id:" + std::to_string(id);
  auto s = tokenizer->decode(std::span<const int32_t>(&id, 1), false);
  return s.ok() ? std::move(s).value() : std::string();
}

ojson TokenStrings::bytes(int32_t id) const {
  ojson out = ojson::array();
  for (unsigned char c : tokenizer->token_bytes(id)) out.push_back(static_cast<int>(c));
  return out;
}

namespace {

// Python's len() of the token text: code points, not bytes.
size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

double clamp_logprob(float lp) {
  if (std::isnan(lp)) return -9999.0;
  return std::max(static_cast<double>(lp), -9999.0);
}

ojson chat_logprob_content(const TokenStrings& ts, std::span<const PositionLogprobs> positions, int32_t top_n) {
  ojson out = ojson::array();
  for (const auto& p : positions) {
    ojson top = ojson::array();
    for (const auto& t : p.top) {
      if (static_cast<int32_t>(top.size()) >= top_n) break;
      top.push_back({{"token", ts.text(t.token_id)}, {"logprob", clamp_logprob(t.logprob)}, {"bytes", ts.bytes(t.token_id)}});
    }
    out.push_back({{"token", ts.text(p.chosen.token_id)},
                   {"logprob", clamp_logprob(p.chosen.logprob)},
                   {"bytes", ts.bytes(p.chosen.token_id)},
                   {"top_logprobs", std::move(top)}});
  }
  return out;
}

void CompletionLogprobs::append(const TokenStrings& ts, std::span<const PositionLogprobs> positions) {
  for (const auto& p : positions) {
    std::string tok = ts.text(p.chosen.token_id);
    ojson top = ojson::object();
    // vLLM's dict holds the chosen token plus the top-k alternatives.
    top[tok] = clamp_logprob(p.chosen.logprob);
    int32_t added = 0;
    for (const auto& t : p.top) {
      if (added >= top_n_) break;
      ++added;
      top[ts.text(t.token_id)] = clamp_logprob(t.logprob);
    }
    tokens_.push_back(tok);
    token_logprobs_.push_back(clamp_logprob(p.chosen.logprob));
    top_logprobs_.push_back(std::move(top));
    text_offset_.push_back(offset_);
    offset_ += code_points(tok);
  }
}

void CompletionLogprobs::append_unscored(const TokenStrings& ts, int32_t token_id) {
  std::string tok = ts.text(token_id);
  tokens_.push_back(tok);
  token_logprobs_.push_back(nullptr);
  top_logprobs_.push_back(nullptr);
  text_offset_.push_back(offset_);
  offset_ += code_points(tok);
}

ojson CompletionLogprobs::to_json() const {
  return {{"text_offset", text_offset_}, {"token_logprobs", token_logprobs_}, {"tokens", tokens_},
          {"top_logprobs", top_logprobs_}};
}

void CompletionLogprobs::clear() {
  tokens_ = ojson::array();
  token_logprobs_ = ojson::array();
  top_logprobs_ = ojson::array();
  text_offset_ = ojson::array();
}

ojson prompt_logprobs_json(const TokenStrings& ts, std::span<const PositionLogprobs> positions) {
  // vLLM's detokenizer fills decoded_token; return_tokens_as_token_ids does not reach it
  // (the keys are the ids already).
  TokenStrings decoded = ts;
  decoded.as_token_ids = false;
  ojson out = ojson::array();
  out.push_back(nullptr);
  for (const auto& p : positions) {
    ojson entry = ojson::object();
    auto add = [&](const TokenLogprob& t) {
      entry[std::to_string(t.token_id)] = {{"logprob", clamp_logprob(t.logprob)}, {"rank", t.rank},
                                           {"decoded_token", decoded.text(t.token_id)}};
    };
    add(p.chosen);
    for (const auto& t : p.top) add(t);
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace k2::openai
