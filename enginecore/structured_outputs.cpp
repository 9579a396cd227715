#include "enginecore/structured_outputs.h"

#include <algorithm>

namespace k2::engine {

namespace {

// Grammars are kept by schema text; a server that sees endless distinct schemas forgets
// them all once this many are cached (requests in flight hold theirs).
constexpr size_t kMaxCachedGrammars = 256;

}  // namespace

Status StructuredOutputs::set_vocabulary(std::vector<std::string> token_bytes, int64_t vocab_size,
                                         std::vector<int32_t> end_ids) {
  if (vocab_size < static_cast<int64_t>(token_bytes.size())) {
    return invalid_argument("the tokenizer has " + std::to_string(token_bytes.size()) + " ids, the model only " +
                            std::to_string(vocab_size) + " logits");
  }
  token_bytes.resize(static_cast<size_t>(vocab_size));
  std::erase_if(end_ids, [vocab_size](int32_t id) { return id < 0 || id >= vocab_size; });
  K2_ASSIGN_OR_RETURN(vocab_, structured::TokenVocabulary::create(std::move(token_bytes), std::move(end_ids)));
  return Status::ok_status();
}

Result<std::shared_ptr<const structured::CompiledGrammar>> StructuredOutputs::grammar_for(
    const protocol::StructuredOutputParams& p) {
  const std::string key = p.json_object ? std::string("json_object") : "schema:" + p.json_schema;
  if (auto it = grammars_.find(key); it != grammars_.end()) return it->second;
  Result<std::shared_ptr<const structured::CompiledGrammar>> compiled =
      p.json_object ? structured::CompiledGrammar::any_json_object()
                    : structured::CompiledGrammar::from_json_schema_text(p.json_schema);
  if (!compiled.ok()) return compiled.status();
  if (grammars_.size() >= kMaxCachedGrammars) grammars_.clear();
  grammars_.emplace(key, *compiled);
  return compiled;
}

Status StructuredOutputs::add(const std::string& request_id, const protocol::StructuredOutputParams& params) {
  if (!enabled()) return unimplemented("structured outputs need the tokenizer's vocabulary, which this engine lacks");
  K2_ASSIGN_OR_RETURN(std::shared_ptr<const structured::CompiledGrammar> grammar, grammar_for(params));
  Tracked t;
  t.matcher = std::make_unique<structured::GrammarMatcher>(std::move(grammar), vocab_);
  t.reasoning_end_token_id = params.reasoning_end_token_id;
  t.active = params.reasoning_end_token_id < 0;
  requests_[request_id] = std::move(t);
  return Status::ok_status();
}

void StructuredOutputs::remove(const std::string& request_id) { requests_.erase(request_id); }

std::vector<uint32_t> StructuredOutputs::next_mask(const std::string& request_id) {
  auto it = requests_.find(request_id);
  if (it == requests_.end() || !it->second.active) return {};
  std::vector<uint32_t> mask(vocab_->mask_words(), 0);
  it->second.matcher->fill_next_token_bitmask(mask);
  if (std::all_of(mask.begin(), mask.end(), [](uint32_t w) { return w == 0; })) {
    for (int32_t id : vocab_->end_ids()) mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  }
  return mask;
}

StructuredOutputs::Accepted StructuredOutputs::accept(const std::string& request_id, int32_t token) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return Accepted::kContinue;
  Tracked& t = it->second;
  if (!t.active) {
    t.active = token == t.reasoning_end_token_id;
    return Accepted::kContinue;
  }
  if (!t.matcher->accept_token(token)) {
    // The fallback mask of next_mask() lets a stuck grammar end on an end id.
    const bool end = token >= 0 && static_cast<size_t>(token) < vocab_->size() && vocab_->is_end(token);
    return end ? Accepted::kComplete : Accepted::kRejected;
  }
  return t.matcher->is_terminated() ? Accepted::kComplete : Accepted::kContinue;
}

}  // namespace k2::engine
