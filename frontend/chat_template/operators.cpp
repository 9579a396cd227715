#include "frontend/chat_template/operators.h"

#include <cmath>
#include <limits>

#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/methods.h"
#include "frontend/chat_template/string_format.h"
#include "frontend/chat_template/utf8.h"

namespace k2::jinja {
namespace {

Status type_error(std::string_view op, const Value& a, const Value& b) {
  return invalid_argument("TypeError: unsupported operand type(s) for " + std::string(op) + ": '" + a.type_name() +
                          "' and '" + b.type_name() + "'");
}

Status overflow() { return out_of_range("OverflowError: integer result does not fit in 64 bits"); }

// Python's repr-style name of an object for "has no attribute" messages.
std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return std::string(v.type_name()) + " object";
}

Value missing(const Value& obj, const Value& name) {
  std::string hint = "'";
  hint += object_type_repr(obj);
  hint += "' has no attribute ";
  hint += py_repr(name);
  return Value::undefined(std::move(hint));
}

Result<Value> repeat(const Value& seq, int64_t n, size_t max_bytes) {
  if (n <= 0) return seq.is_string() ? Value::string("") : (seq.is_tuple() ? Value::tuple({}) : Value::list({}));
  const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size() * sizeof(Value);
  if (unit != 0 && static_cast<uint64_t>(n) > max_bytes / unit) {
    return out_of_range("repetition result exceeds the render size limit");
  }
  if (seq.is_string()) {
    std::string out;
    out.reserve(unit * static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value::string(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
  return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

double py_fmod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

Result<Value> arithmetic(std::string_view op, const Value& a, const Value& b) {
  const bool ints = !a.is_float() && !b.is_float();
  const int64_t x = a.as_int();
  const int64_t y = b.as_int();
  int64_t r = 0;
  if (op == "+") {
    if (!ints) return Value::number(a.as_double() + b.as_double());
    if (__builtin_add_overflow(x, y, &r)) return overflow();
    return Value::integer(r);
  }
  if (op == "-") {
    if (!ints) return Value::number(a.as_double() - b.as_double());
    if (__builtin_sub_overflow(x, y, &r)) return overflow();
    return Value::integer(r);
  }
  if (op == "*") {
    if (!ints) return Value::number(a.as_double() * b.as_double());
    if (__builtin_mul_overflow(x, y, &r)) return overflow();
    return Value::integer(r);
  }
  if (op == "/") {
    if (b.as_double() == 0) return invalid_argument("ZeroDivisionError: division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (ints) {
      if (y == 0) return invalid_argument("ZeroDivisionError: integer division or modulo by zero");
      if (x == std::numeric_limits<int64_t>::min() && y == -1) {
        if (op == "%") return Value::integer(0);
        return overflow();
      }
      int64_t q = x / y;
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    if (b.as_double() == 0) return invalid_argument("ZeroDivisionError: float floor division by zero");
    const double m = py_fmod(a.as_double(), b.as_double());
    if (op == "%") return Value::number(m);
    return Value::number(std::round((a.as_double() - m) / b.as_double()));
  }
  // **
  if (ints && y >= 0) {
    int64_t result = 1;
    int64_t base = x;
    int64_t e = y;
    while (e > 0) {
      if (e & 1) {
        if (__builtin_mul_overflow(result, base, &result)) return overflow();
      }
      e >>= 1;
      if (e > 0 && __builtin_mul_overflow(base, base, &base)) return overflow();
    }
    return Value::integer(result);
  }
  if (a.as_double() == 0 && b.as_double() < 0) {
    return invalid_argument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
  }
  return Value::number(std::pow(a.as_double(), b.as_double()));
}

}  // namespace

Result<Value> binary_op(std::string_view op, const Value& a, const Value& b, size_t max_bytes) {
  if (a.is_undefined()) return Interpreter::undefined_error(a);
  if (b.is_undefined()) return Interpreter::undefined_error(b);
  if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > max_bytes) {
        return out_of_range("string concatenation exceeds the render size limit");
      }
      return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_sequence() && a.kind() == b.kind()) {
      if (a.as_list().size() + b.as_list().size() > max_bytes / sizeof(Value)) {
        return out_of_range("list concatenation exceeds the render size limit");
      }
      ValueList out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    if (a.is_string() || a.is_sequence()) {
      return invalid_argument(std::string("TypeError: can only concatenate ") + a.type_name() + " (not \"" +
                              b.type_name() + "\") to " + a.type_name());
    }
    return type_error(op, a, b);
  }
  if (op == "*") {
    if ((a.is_string() || a.is_sequence()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int(), max_bytes);
    if ((b.is_string() || b.is_sequence()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int(), max_bytes);
    return invalid_argument(std::string("TypeError: can't multiply sequence by non-int of type '") +
                            (a.is_number() ? a.type_name() : b.type_name()) + "'");
  }
  if (op == "%" && a.is_string()) {
    K2_ASSIGN_OR_RETURN(std::string s, py_percent_format(a.as_string(), b));
    if (s.size() > max_bytes) return out_of_range("string formatting exceeds the render size limit");
    return Value::string(std::move(s));
  }
  return type_error(op == "**" ? "** or pow()" : op, a, b);
}

Result<Value> unary_minus(const Value& v) {
  if (v.is_undefined()) return Interpreter::undefined_error(v);
  if (v.is_float()) return Value::number(-v.as_double());
  if (v.is_number()) {
    if (v.as_int() == std::numeric_limits<int64_t>::min()) return overflow();
    return Value::integer(-v.as_int());
  }
  return invalid_argument(std::string("TypeError: bad operand type for unary -: '") + v.type_name() + "'");
}

Result<bool> contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string()) {
        return invalid_argument(std::string("TypeError: 'in <string>' requires string as left operand, not ") +
                                item.type_name());
      }
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const auto& v : container.as_list()) {
        if (py_equal(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict: return container.as_dict().find(item) != nullptr;
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kNamespace: return container.as_namespace().find(item.is_string() ? item.as_string() : "") != nullptr;
    default:
      return invalid_argument(std::string("TypeError: argument of type '") + container.type_name() +
                              "' is not iterable");
  }
}

Result<Value> get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) return Interpreter::undefined_error(obj);
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') {
    return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.", true);
  }
  if (obj.is_namespace()) {
    if (const Value* v = obj.as_namespace().find(name)) return *v;
    return missing(obj, Value::string(name));
  }
  if (obj.is_callable()) return obj.as_callable().attribute(name);
  switch (find_method(obj, name)) {
    case MethodLookup::kSafe: return bind_method(obj, name);
    case MethodLookup::kUnsafe:
      return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.",
                              true);
    case MethodLookup::kNone: break;
  }
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(std::string_view(name))) return *v;
  }
  return missing(obj, Value::string(name));
}

Result<Value> get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return Interpreter::undefined_error(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.as_dict().find(key)) return *v;
  } else if ((obj.is_sequence() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    int64_t i = key.as_int();
    if (obj.is_string()) {
      const auto offsets = code_point_offsets(obj.as_string());
      const auto n = static_cast<int64_t>(offsets.size()) - 1;
      if (i < 0) i += n;
      if (i >= 0 && i < n) {
        const auto b = offsets[static_cast<size_t>(i)];
        return Value::string(obj.as_string().substr(b, offsets[static_cast<size_t>(i) + 1] - b));
      }
    } else {
      const auto n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    }
  }
  if (key.is_string()) {
    const std::string& name = key.as_string();
    if (obj.is_namespace()) return missing(obj, key);
    if (obj.is_callable()) return obj.as_callable().attribute(name);
    switch (find_method(obj, name)) {
      case MethodLookup::kSafe: return bind_method(obj, name);
      case MethodLookup::kUnsafe:
        return Value::undefined("access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.",
                                true);
      case MethodLookup::kNone: break;
    }
  }
  return missing(obj, key);
}

Result<Value> slice_value(const Value& obj, std::optional<int64_t> start, std::optional<int64_t> stop,
                          std::optional<int64_t> step_opt) {
  if (obj.is_undefined()) return Interpreter::undefined_error(obj);
  const int64_t step = step_opt.value_or(1);
  if (step == 0) return invalid_argument("ValueError: slice step cannot be zero");
  std::vector<size_t> offsets;
  int64_t n = 0;
  if (obj.is_string()) {
    offsets = code_point_offsets(obj.as_string());
    n = static_cast<int64_t>(offsets.size()) - 1;
  } else if (obj.is_sequence()) {
    n = static_cast<int64_t>(obj.as_list().size());
  } else {
    return invalid_argument(std::string("TypeError: '") + obj.type_name() + "' object is not subscriptable");
  }
  // Python's PySlice_AdjustIndices.
  auto adjust = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t i = *v;
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t lo = adjust(start, step < 0 ? n - 1 : 0);
  const int64_t hi = adjust(stop, step < 0 ? -1 : n);
  std::vector<int64_t> picks;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) picks.push_back(i);
  if (obj.is_string()) {
    std::string out;
    const std::string& s = obj.as_string();
    for (int64_t i : picks) {
      const auto b = offsets[static_cast<size_t>(i)];
      out.append(s, b, offsets[static_cast<size_t>(i) + 1] - b);
    }
    return Value::string(std::move(out));
  }
  ValueList out;
  out.reserve(picks.size());
  for (int64_t i : picks) out.push_back(obj.as_list()[static_cast<size_t>(i)]);
  return obj.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace k2::jinja
