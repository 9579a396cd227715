#include "frontend/tokenizer/incremental_detokenizer.h"

#include <vector>

#include "frontend/tokenizer/utf8.h"

namespace k2 {

IncrementalDetokenizer::IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tokenizer,
                                               bool skip_special_tokens)
    : tokenizer_(std::move(tokenizer)), skip_special_tokens_(skip_special_tokens) {}

Result<std::string> IncrementalDetokenizer::add(std::span<const int32_t> ids) {
  // A model's vocabulary may have more rows than its tokenizer has ids (DeepSeek-V3 pads
  // 128815 ids to 129280 rows; random bench models more). vLLM renders such a sampled id as
  // empty text rather than failing the request; so do we. Negative ids are still an error.
  std::vector<int32_t> known;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < tokenizer_->vocab_size()) continue;
    known.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(i));
    for (const int32_t id : ids.subspan(i)) {
      if (id < tokenizer_->vocab_size()) known.push_back(id);
    }
    ids = known;
    break;
  }
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
