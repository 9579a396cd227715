// The command-line face of the output parsers (`k2serve parse-output --tokenizer DIR`).
//
// Reads JSON lines shaped like tests/data/text/goldens/tool_parser_cases.jsonl records
// ({"model_output": ..., "request": {...}}; other keys ignored) and writes one line per
// input line: {"reasoning", "content", "tools_called", "tool_calls": [{id, name,
// arguments}]} (the records' `expected` shape, so goldens can be diffed directly), or
// {"error": ...} for a line that cannot be parsed, and carries on.
//
// `tokenizer_dir` may be empty. When given, its tokenizer_config.json must name the marker
// tokens a requested parser relies on (vLLM refuses to build the parser otherwise); a
// request whose markers the tokenizer lacks gets an error line. Stateless between lines.
#pragma once

#include <iosfwd>
#include <string>

namespace k2::parsers {

// Returns 0 when every line was answered (error lines included), 1 when the tokenizer
// directory could not be read (message on stderr).
int parse_output_command(const std::string& tokenizer_dir, std::istream& in, std::ostream& out);

}  // namespace k2::parsers
