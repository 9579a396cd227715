// Python string formatting over engine values: str.format (auto/positional/named
// fields, !r/!s, format specs [[fill]align][sign][0][width][,][.precision][type]) and
// printf-style `%` (%s %r %d %i %f %e %g %x %%, flags, width, precision, %(name)s).
// Stateless functions, thread-safe.
#pragma once

#include <string>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

Result<std::string> py_str_format(Interpreter& interp, const std::string& fmt, const CallArgs& args);
Result<std::string> py_percent_format(const std::string& fmt, const Value& args);
// format(value, spec) for one value.
Result<std::string> py_format_value(const Value& v, const std::string& spec);

}  // namespace k2::jinja
