// StructuredOutputs: the enginecore's side of constrained decoding (vLLM V1's
// StructuredOutputManager). It holds one GrammarMatcher per constrained request, gives the
// mask of allowed tokens for each step that samples one of them, and advances the matcher
// with the token the workers drew. Compiled grammars are shared by schema text.
//
// Reasoning models: a request whose reasoning_end_token_id is set is free until that token
// has been generated (vLLM waits for the reasoning parser's end the same way); the grammar
// applies from the next token on.
//
// Owns the vocabulary, the grammar cache and the matchers. Not thread-safe: the engine
// loop's one thread, like EngineCore.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "enginecore/protocol/messages.h"
#include "enginecore/structured/compiled_grammar.h"
#include "enginecore/structured/grammar_matcher.h"
#include "enginecore/structured/token_vocabulary.h"
#include "shm/status.h"

namespace k2::engine {

class StructuredOutputs {
 public:
  // token_bytes[id] as the tokenizer decodes it ("" for special tokens), padded with "" to
  // vocab_size (the model's logit count); end_ids: the model's stop ids.
  Status set_vocabulary(std::vector<std::string> token_bytes, int64_t vocab_size, std::vector<int32_t> end_ids);
  bool enabled() const { return vocab_ != nullptr; }

  // Compiles (or finds) the request's grammar. An error refuses the request.
  Status add(const std::string& request_id, const protocol::StructuredOutputParams& params);
  void remove(const std::string& request_id);
  bool tracks(const std::string& request_id) const { return requests_.contains(request_id); }

  // The allowed-token mask for the request's next token; empty while it is not constrained
  // (not structured, or still reasoning). Never all-zero: when the grammar allows no token
  // of the vocabulary, the end ids are allowed so that the request ends.
  std::vector<uint32_t> next_mask(const std::string& request_id);

  enum class Accepted { kContinue, kComplete, kRejected };
  // Feeds the token the request generated. kComplete: the grammar took an end token, the
  // output is complete. kRejected: the token breaks the grammar (a worker ignored the mask).
  Accepted accept(const std::string& request_id, int32_t token);

 private:
  struct Tracked {
    std::unique_ptr<structured::GrammarMatcher> matcher;
    int32_t reasoning_end_token_id = -1;
    bool active = false;  // reasoning over (or none): the grammar applies
  };
  Result<std::shared_ptr<const structured::CompiledGrammar>> grammar_for(const protocol::StructuredOutputParams& p);

  std::shared_ptr<const structured::TokenVocabulary> vocab_;
  std::unordered_map<std::string, std::shared_ptr<const structured::CompiledGrammar>> grammars_;
  std::unordered_map<std::string, Tracked> requests_;
};

}  // namespace k2::engine
