// Filters, tests and global functions available to templates: jinja2's built-ins that
// chat templates use, plus Hugging Face's `tojson` override, `raise_exception` and
// `strftime_now`. Stateless dispatch, thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

// `input | name(args)`. Unknown names are errors ("No filter named 'x'.").
Result<Value> apply_filter(Interpreter& interp, std::string_view name, const Value& input, const CallArgs& args);
// `input is name(args)`. Unknown names are errors ("No test named 'x'.").
Result<bool> apply_test(Interpreter& interp, std::string_view name, const Value& input, const CallArgs& args);
// Whether a filter / test of that name exists (the `filter` and `test` tests ask).
bool has_filter(std::string_view name);
bool has_test(std::string_view name);
// A global function (range, dict, namespace, joiner, cycler, raise_exception,
// strftime_now); nullopt when `name` is not one.
std::optional<Value> builtin_global(std::string_view name);

// Resolves "a.b.0" the way jinja2's make_attrgetter does (item lookup with int parts).
Result<Value> lookup_attribute_path(const Value& v, std::string_view path);

}  // namespace k2::jinja
