// Python-compatible JSON text: what json.dumps(value, ensure_ascii=False) prints, so tool-call
// arguments built here are byte-identical to vLLM's. Pure functions, thread-safe.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace k2::structured {

// json.dumps(value, ensure_ascii=False): ", " and ": " separators, non-ASCII kept, control
// characters escaped (\n \r \t \b \f, else \u00xx), floats as Python's repr(float).
std::string python_json_dumps(const nlohmann::ordered_json& value);

// repr(float) of Python 3: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
std::string python_float_repr(double value);

}  // namespace k2::structured
