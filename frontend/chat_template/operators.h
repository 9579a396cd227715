// Python semantics of the operators and lookups templates use: arithmetic, `in`,
// attribute and item access (jinja2's sandboxed getattr/getitem: attribute first for
// `a.b`, item first for `a[b]`, Undefined when both miss), and slicing by code points.
// Stateless functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

// op is one of + - * / // % **. `max_bytes` bounds strings and lists built by + and *.
Result<Value> binary_op(std::string_view op, const Value& a, const Value& b, size_t max_bytes);
Result<Value> unary_minus(const Value& v);
// Python `item in container`.
Result<bool> contains(const Value& container, const Value& item);

// `obj.name` as jinja2's sandbox resolves it.
Result<Value> get_attr(const Value& obj, const std::string& name);
// `obj[key]` as jinja2's sandbox resolves it.
Result<Value> get_item(const Value& obj, const Value& key);
// obj[start:stop:step] for strings, lists and tuples.
Result<Value> slice_value(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                          std::optional<int64_t> step);

}  // namespace k2::jinja
