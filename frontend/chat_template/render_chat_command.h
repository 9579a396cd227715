// The command-line face of chat rendering (`k2serve render-chat --tokenizer DIR
// [--chat-template FILE]`): JSON lines in, one JSON object per input line out.
//
//   in:  {"messages": [...], "tools": [...] | null, "kwargs": {...},
//         "message_preprocessing": "none" | "vllm"}      (chat_template_cases.jsonl shape)
//   out: {"rendered": "...", "ids": [...]}  or  {"error": "..."}
//
// The template is FILE when given, else the tokenizer directory's chat_template.jinja (or
// tokenizer_config.json's chat_template). `ids` come from the Kimi tokenizer of DIR.
// A bad line gets an error line and the next line is read. Stateless; safe to
// call from several threads on different streams.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace k2 {

// Returns 0 when every line rendered, 1 when some line got an error, 2 when the template
// or tokenizer could not be loaded (one error line is written, nothing is read).
int render_chat_command(const std::string& tokenizer_dir, const std::optional<std::string>& chat_template_file,
                        std::istream& in, std::ostream& out);

}  // namespace k2
