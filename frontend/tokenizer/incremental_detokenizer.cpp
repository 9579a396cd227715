#include "frontend/tokenizer/incremental_detokenizer.h"

#include "frontend/tokenizer/utf8.h"

namespace k2 {

IncrementalDetokenizer::IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tokenizer,
                                               bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

Result<std::string> IncrementalDetokenizer::add(std::span<const int32_t> ids) {
  K2_ASSIGN_OR_RETURN(std::string bytes, tokenizer_->decode_bytes(ids, skip_special_tokens_));
  if (pending_.empty() && tok::utf8_valid_prefix(bytes) == bytes.size()) return bytes;
  pending_ += bytes;
  std::string text;
  const size_t used = tok::append_utf8_lossy(pending_, false, text);
  pending_.erase(0, used);
  return text;
}

std::string IncrementalDetokenizer::finish() {
  std::string text;
  tok::append_utf8_lossy(pending_, true, text);
  pending_.clear();
  return text;
}

}  // namespace k2
