// The command-line faces of the tokenizer (`k2serve tokenize` / `k2serve detokenize`):
// JSON lines in, one JSON object per input line out.
//
//   tokenize:    {"text": "..."}            -> {"ids": [...]}
//                optional "allow_special_tokens": false encodes special-token strings as
//                plain text (Kimi's encode(..., allow_special_tokens=False))
//   detokenize:  {"ids": [...]}             -> {"text": "..."}
//
// A line that is not such an object gets {"error": "..."} and the next line is read. If the
// tokenizer directory cannot be loaded, one {"error": ...} line is written and nothing is
// read. Stateless functions; safe to call from several threads on different streams.
#pragma once

#include <iosfwd>
#include <string>

namespace k2 {

// Return value: 0 when every line succeeded, 1 when some line got an error, 2 when the
// tokenizer failed to load.
int tokenize_command(const std::string& tokenizer_dir, std::istream& in, std::ostream& out);
int detokenize_command(const std::string& tokenizer_dir, bool skip_special_tokens, std::istream& in,
                       std::ostream& out);

}  // namespace k2
