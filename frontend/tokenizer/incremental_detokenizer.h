// Streaming detokenization: token ids in, text deltas out.
//
// Each delta is well-formed UTF-8 and never ends inside a character: bytes of a character
// that is still incomplete are held back until the ids that finish it arrive (or finish()
// gives up on them). Ill-formed bytes become U+FFFD as in Tokenizer::decode, so the
// concatenation of all deltas plus finish() equals decode() of all the ids, however the
// ids were split into add() calls.
//
// Owns its pending bytes and shares the (immutable) Tokenizer. One object per stream; not
// thread-safe (use it from one thread at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "frontend/tokenizer/tokenizer.h"
#include "shm/status.h"

namespace k2 {

class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(std::shared_ptr<const Tokenizer> tokenizer, bool skip_special_tokens);

  // Appends the ids and returns the text they complete (possibly empty). An id at or above
  // the tokenizer's vocab_size() (a padded model row) adds no text, as in vLLM; a negative
  // id is an error and leaves the state as it was.
  Result<std::string> add(std::span<const int32_t> ids);
  Result<std::string> add(int32_t id) { return add(std::span<const int32_t>(&id, 1)); }

  // End of the stream: the held bytes of an unfinished character, as U+FFFD (empty when
  // nothing is held). The object may be reused for a new stream afterwards.
  std::string finish();

  // Bytes held back (at most 3: the start of one unfinished character).
  size_t pending_bytes() const { return pending_.size(); }
  bool skip_special_tokens() const { return skip_special_tokens_; }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace k2
