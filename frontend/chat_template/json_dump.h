// Python's json.dumps over engine values, as Hugging Face's `tojson` filter calls it:
// json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...).
// Stateless, thread-safe.
#pragma once

#include <optional>
#include <string>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

struct JsonDumpOptions {
  std::optional<std::string> indent;  // None: one line; otherwise the per-level indent text
  std::string item_separator = ", ";  // json.dumps' default; "," when indent is given
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;  // HF passes False: non-ASCII stays raw
  size_t max_bytes = size_t{64} << 20;  // output cap (an error beyond it)
};

// Serialises like CPython's json module: floats as repr(), NaN/Infinity, non-ASCII kept
// raw, non-string keys converted (1 -> "1", True -> "true", None -> "null"). Undefined,
// namespaces and callables are "not JSON serializable" errors, as in Python.
Result<std::string> py_json_dumps(const Value& v, const JsonDumpOptions& options);

// JSON string literal with json.dumps(ensure_ascii=False) escaping.
void append_json_string(std::string& out, const std::string& s, bool ensure_ascii = false);

}  // namespace k2::jinja
