// Kimi's pre-tokenizer: the regex that splits ordinary text into pieces before BPE.
//
// Kimi's pattern is written for Rust fancy-regex (class intersections `&&`, \p{Han} as
// Script=Han, Unicode White_Space for \s). PreTokenizer compiles an equivalent PCRE2
// pattern (UTF + UCP, JIT when available); kimi_pcre2_pattern() documents the translation.
// The compiled pattern is owned and immutable: one PreTokenizer may be used from many
// threads at once (each call allocates its own match data).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::tok {

// Kimi's pat_str as published (the `|`-joined fancy-regex source).
const std::string& kimi_pattern_source();
// The PCRE2 translation actually compiled.
const std::string& kimi_pcre2_pattern();

class PreTokenizer {
 public:
  static Result<std::unique_ptr<PreTokenizer>> create();
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Reusable per-call state (PCRE2 match data); one per thread.
  class Scratch {
   public:
    explicit Scratch(const PreTokenizer& pre);
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

   private:
    friend class PreTokenizer;
    void* match_data_;
  };

  // Appends to `pieces` the pieces of `text` (well-formed UTF-8, checked by the caller)
  // from byte offset `from` on, stopping after at least `max_pieces` (so a caller can work
  // in bounded batches); returns the offset where the next call should continue
  // (text.size() when done). The regex always sees all of `text` (for its lookahead).
  // The pieces cover the text exactly: should the regex ever leave a gap or fail (it
  // cannot for valid UTF-8 with this pattern), the gap becomes a piece, never dropped.
  size_t split(std::string_view text, size_t from, Scratch& scratch,
               std::vector<std::string_view>& pieces, size_t max_pieces) const;

  bool jit() const { return jit_; }

 private:
  PreTokenizer() = default;
  void* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace k2::tok
