// The Python methods templates call on values: str (strip, split, startswith, replace,
// format, ...), dict (get, items, keys, values) and list/tuple (index, count). Methods
// that would mutate (list.append, dict.update, ...) are refused as jinja2's
// ImmutableSandboxedEnvironment refuses them. Stateless functions, thread-safe.
#pragma once

#include <string_view>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

enum class MethodLookup { kNone, kSafe, kUnsafe };

// Whether `obj.name` names a method, and whether the sandbox allows it.
MethodLookup find_method(const Value& obj, std::string_view name);
// `obj.name` as a callable bound to obj (find_method must have said kSafe).
Value bind_method(const Value& obj, std::string_view name);
// Python's str.splitlines() (all of Python's line boundaries).
ValueList py_splitlines(const std::string& s);

}  // namespace k2::jinja
