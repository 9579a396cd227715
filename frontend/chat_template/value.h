// The Jinja engine's value type: Python's object model reduced to what chat templates
// touch (None, bool, int, float, str, list, tuple, dict, jinja2's Undefined, namespace()
// objects and callables). Templates reach nothing but these values, which is the
// sandbox: there is no path from a template to the host program.
//
// Ownership: a Value owns its payload through a shared_ptr, so copies are cheap and
// share structure. Strings, lists, tuples and dicts are never modified after creation
// (ImmutableSandboxedEnvironment forbids it), so values built from a parsed template or a
// request may be read from several threads at once. A namespace() object is the one
// mutable payload; it is created inside a render and stays with that render's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "shm/status.h"

namespace k2::jinja {

class Value;
class Callable;
class Interpreter;

using ValueList = std::vector<Value>;

// Python dict: insertion-ordered; keys compare with Python equality (1 == 1.0 == True).
struct Dict {
  std::vector<std::pair<Value, Value>> entries;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
};

// jinja2's namespace(): the only object whose attributes `{% set ns.x = ... %}` may set.
struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value value);
};

// Why a value is undefined: jinja2 reports this hint when the value is used. `unsafe`
// marks an attribute the sandbox refused (jinja2's SecurityError).
struct UndefinedInfo {
  std::string hint;
  bool unsafe = false;
};

class Value {
 public:
  enum class Kind : uint8_t {
    kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict, kNamespace, kCallable
  };

  Value() = default;  // Undefined without a hint
  static Value none();
  static Value undefined(std::string hint, bool unsafe = false);
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value dict(Dict d);
  static Value new_namespace();
  static Value callable(std::shared_ptr<const Callable> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_float() const { return kind_ == Kind::kFloat; }
  // Python's numbers.Number, which includes bool.
  bool is_number() const { return kind_ == Kind::kBool || kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kTuple; }
  bool is_sequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kNamespace; }
  bool is_callable() const { return kind_ == Kind::kCallable; }

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return kind_ == Kind::kBool ? (bool_ ? 1 : 0) : int_; }
  // Numeric value as a double (bool and int widen, as in Python arithmetic).
  double as_double() const;
  const std::string& as_string() const;
  const ValueList& as_list() const;  // list or tuple
  const Dict& as_dict() const;
  Namespace& as_namespace() const;
  const Callable& as_callable() const;
  const UndefinedInfo* undefined_info() const;

  // Python's type(x).__name__, for error messages ("'NoneType' object is not iterable").
  const char* type_name() const;
  // Python truthiness (Undefined is false).
  bool truthy() const;

 private:
  Kind kind_ = Kind::kUndefined;
  union {
    bool bool_;
    int64_t int_ = 0;
    double float_;
  };
  std::shared_ptr<void> ptr_;
};

// Call arguments as Python sees them.
struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* find_keyword(std::string_view name) const;
};

// Something a template can call: a macro, a global function, a bound str/dict method, the
// loop object. Implementations are immutable or confined to one render.
class Callable {
 public:
  virtual ~Callable() = default;
  virtual Result<Value> call(Interpreter& interp, CallArgs args) const = 0;
  // Attribute lookup on the callable itself (loop.index, macro.name); Undefined if none.
  virtual Value attribute(std::string_view name) const;
  virtual std::string repr() const = 0;
};

// Nesting deeper than this (or a namespace that contains itself) is cut off by the
// recursive functions below instead of exhausting the stack.
inline constexpr int kMaxValueDepth = 256;
// repr() output cap: shared sub-structures can make a tiny value print as exabytes.
inline constexpr size_t kDefaultReprBudget = size_t{64} << 20;

// Python str(x) and repr(x) for the values above. Output stops growing past `budget`
// bytes; callers that enforce an output limit see an oversized (cut) string.
std::string py_str(const Value& v, size_t budget = kDefaultReprBudget);
std::string py_repr(const Value& v, size_t budget = kDefaultReprBudget);
// Python ==. Gives up (false) on absurdly deep or large structures.
bool py_equal(const Value& a, const Value& b);
// Python ordering (<0, 0, >0) for numbers, strings and sequences; an error for other pairs.
Result<int> py_compare(const Value& a, const Value& b, const char* op);
// Python's repr() of a float (shortest round-trip digits, 'e' form outside 1e-4..1e16).
std::string py_float_repr(double d);

// Iterating a value as a for-loop does: items of a sequence, keys of a dict, characters of a
// string, nothing for Undefined; anything else is Python's "object is not iterable" error.
Result<ValueList> py_iterate(const Value& v);
// len(x) as the `length` filter needs it.
Result<int64_t> py_len(const Value& v);

// JSON input (insertion order kept) to a Value; Python json.loads semantics. Fails on
// nesting deeper than kMaxValueDepth.
Result<Value> from_json(const nlohmann::ordered_json& j);

}  // namespace k2::jinja
