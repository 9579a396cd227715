// Logprobs in the two OpenAI shapes, with token strings from the tokenizer.
//
//  - chat: logprobs.content[] = {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}
//  - completions: {tokens[], token_logprobs[], top_logprobs[{token: logprob}], text_offset[]}
//    (echo puts the prompt's positions first; the first prompt token has null logprobs)
//  - vLLM's prompt_logprobs: [null, {"<id>": {logprob, rank, decoded_token}}, ...], the
//    prompt token's entry first with its rank, then the top-n with ranks 1..n (a prompt
//    token among the top-n keeps its place and takes its top-n entry, as a Python dict)
//
// A token's string is its bytes with ill-formed UTF-8 replaced by U+FFFD (a token can end
// inside a character), or "token_id:<id>" with return_tokens_as_token_ids; `bytes` are the
// token's raw bytes (prompt_logprobs' decoded_token is always the text, as in vLLM). -inf logprobs become -9999.0 as in vLLM (JSON has no infinity).
// Stateless functions and a small accumulator (CompletionLogprobs, one per choice, not
// thread-safe); the tokenizer is shared and immutable.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <span>
#include <string>

#include "frontend/openai/engine_client.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2::openai {

using ojson = nlohmann::ordered_json;

struct TokenStrings {
  std::shared_ptr<const Tokenizer> tokenizer;
  bool as_token_ids = false;
  std::string text(int32_t id) const;
  ojson bytes(int32_t id) const;
};

double clamp_logprob(float lp);

// Chat: the entries for `positions`, top_logprobs limited to `top_n`.
ojson chat_logprob_content(const TokenStrings& ts, std::span<const PositionLogprobs> positions, int32_t top_n);

class CompletionLogprobs {
 public:
  explicit CompletionLogprobs(int32_t top_n) : top_n_(top_n) {}
  // Appends positions; `text_offset` continues from the text already returned.
  void append(const TokenStrings& ts, std::span<const PositionLogprobs> positions);
  // The first prompt token: no logprobs.
  void append_unscored(const TokenStrings& ts, int32_t token_id);
  bool empty() const { return tokens_.empty(); }
  ojson to_json() const;
  void clear();  // streaming: each chunk carries only its own positions (offsets continue)

 private:
  int32_t top_n_;
  size_t offset_ = 0;
  ojson tokens_ = ojson::array(), token_logprobs_ = ojson::array(), top_logprobs_ = ojson::array(),
        text_offset_ = ojson::array();
};

// vLLM's prompt_logprobs list for a prompt: null first, then one dict per position.
ojson prompt_logprobs_json(const TokenStrings& ts, std::span<const PositionLogprobs> positions);

}  // namespace k2::openai
