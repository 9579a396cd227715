// Global functions: jinja2's range/dict/namespace/joiner/cycler and Hugging Face's
// raise_exception/strftime_now. Each is an immutable Callable shared by all renders.
#include <ctime>
#include <limits>

#include "frontend/chat_template/builtins.h"
#include "frontend/chat_template/evaluator.h"

namespace k2::jinja {
namespace {

// jinja2's sandbox refuses ranges longer than this (MAX_RANGE).
constexpr int64_t kMaxRange = 100000;

template <class Fn>
class FunctionValue : public Callable {
 public:
  FunctionValue(const char* name, Fn fn) : name_(name), fn_(std::move(fn)) {}
  Result<Value> call(Interpreter& interp, CallArgs args) const override { return fn_(interp, std::move(args)); }
  std::string repr() const override { return std::string("<built-in function ") + name_ + ">"; }

 private:
  const char* name_;
  Fn fn_;
};

template <class Fn>
Value make_function(const char* name, Fn fn) {
  return Value::callable(std::make_shared<FunctionValue<Fn>>(name, std::move(fn)));
}

Result<Value> range_fn(Interpreter&, CallArgs args) {
  const auto& a = args.positional;
  if (a.empty() || a.size() > 3 || !args.keyword.empty()) {
    return invalid_argument("TypeError: range expected 1 to 3 integer arguments");
  }
  for (const auto& v : a) {
    if (!v.is_int() && !v.is_bool()) {
      return invalid_argument(std::string("TypeError: '") + v.type_name() + "' object cannot be interpreted as an integer");
    }
  }
  const int64_t start = a.size() == 1 ? 0 : a[0].as_int();
  const int64_t stop = a.size() == 1 ? a[0].as_int() : a[1].as_int();
  const int64_t step = a.size() == 3 ? a[2].as_int() : 1;
  if (step == 0) return invalid_argument("ValueError: range() arg 3 must not be zero");
  // Length computed in long double to stay clear of overflow on extreme bounds.
  const long double span = step > 0 ? static_cast<long double>(stop) - start : static_cast<long double>(start) - stop;
  const long double count = span <= 0 ? 0 : (span + std::abs(static_cast<long double>(step)) - 1) / std::abs(static_cast<long double>(step));
  if (count > kMaxRange) {
    return out_of_range("OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  }
  ValueList out;
  const auto n = static_cast<int64_t>(count);
  for (int64_t i = 0; i < n; ++i) out.push_back(Value::integer(start + i * step));
  return Value::list(std::move(out));
}

Result<Value> dict_fn(Interpreter&, CallArgs args) {
  Dict d;
  auto put = [&](Value k, Value v) {
    for (auto& e : d.entries) {
      if (py_equal(e.first, k)) {
        e.second = std::move(v);
        return;
      }
    }
    d.entries.emplace_back(std::move(k), std::move(v));
  };
  if (args.positional.size() > 1) return invalid_argument("TypeError: dict expected at most 1 argument");
  if (!args.positional.empty()) {
    const Value& src = args.positional[0];
    if (src.is_dict()) {
      for (const auto& [k, v] : src.as_dict().entries) put(k, v);
    } else {
      K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(src));
      for (const auto& item : items) {
        if (!item.is_sequence() || item.as_list().size() != 2) {
          return invalid_argument("ValueError: dictionary update sequence element has wrong length");
        }
        put(item.as_list()[0], item.as_list()[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) put(Value::string(k), v);
  return Value::dict(std::move(d));
}

Result<Value> namespace_fn(Interpreter& interp, CallArgs args) {
  Value ns = Value::new_namespace();
  interp.adopt_namespace(ns);
  if (!args.positional.empty()) {
    if (!args.positional[0].is_dict()) return invalid_argument("TypeError: namespace() takes a mapping");
    for (const auto& [k, v] : args.positional[0].as_dict().entries) ns.as_namespace().set(py_str(k), v);
  }
  for (auto& [k, v] : args.keyword) ns.as_namespace().set(k, v);
  return ns;
}

Result<Value> raise_exception_fn(Interpreter&, CallArgs args) {
  const std::string message = args.positional.empty() ? "" : py_str(args.positional[0]);
  return invalid_argument("TemplateError: " + message);
}

Result<Value> strftime_now_fn(Interpreter&, CallArgs args) {
  if (args.positional.empty() || !args.positional[0].is_string()) {
    return invalid_argument("TypeError: strftime_now() needs a format string");
  }
  const std::string& fmt = args.positional[0].as_string();
  if (fmt.size() > 1024) return invalid_argument("ValueError: strftime format too long");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string out(fmt.size() * 16 + 64, '\0');
  const size_t n = std::strftime(out.data(), out.size(), fmt.c_str(), &local);
  out.resize(n);
  return Value::string(std::move(out));
}

// joiner(sep): "" on the first call, sep afterwards. The state lives in the object a
// render creates, so it never crosses threads.
class Joiner : public Callable {
 public:
  explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
  Result<Value> call(Interpreter&, CallArgs) const override {
    if (!used_) {
      used_ = true;
      return Value::string("");
    }
    return Value::string(sep_);
  }
  std::string repr() const override { return "<Joiner>"; }

 private:
  std::string sep_;
  mutable bool used_ = false;
};

class Cycler : public Callable, public std::enable_shared_from_this<Cycler> {
 public:
  explicit Cycler(ValueList items) : items_(std::move(items)) {}
  Result<Value> call(Interpreter&, CallArgs) const override {
    return invalid_argument("TypeError: 'Cycler' object is not callable");
  }
  Value attribute(std::string_view name) const override {
    if (name == "current") return items_.empty() ? Value::none() : items_[pos_ % items_.size()];
    if (name == "next") {
      return make_function("next", [self = shared_from_this()](Interpreter&, CallArgs) -> Result<Value> {
        if (self->items_.empty()) return Value::none();
        return self->items_[self->pos_++ % self->items_.size()];
      });
    }
    if (name == "reset") {
      return make_function("reset", [self = shared_from_this()](Interpreter&, CallArgs) -> Result<Value> {
        self->pos_ = 0;
        return Value::none();
      });
    }
    return Callable::attribute(name);
  }
  std::string repr() const override { return "<Cycler>"; }

 private:
  ValueList items_;
  mutable size_t pos_ = 0;
};

}  // namespace

std::optional<Value> builtin_global(std::string_view name) {
  static const Value kRange = make_function("range", range_fn);
  static const Value kDict = make_function("dict", dict_fn);
  static const Value kNamespace = make_function("namespace", namespace_fn);
  static const Value kRaise = make_function("raise_exception", raise_exception_fn);
  static const Value kStrftime = make_function("strftime_now", strftime_now_fn);
  static const Value kJoiner = make_function("joiner", [](Interpreter&, CallArgs args) -> Result<Value> {
    const std::string sep = args.positional.empty() ? ", " : py_str(args.positional[0]);
    return Value::callable(std::make_shared<Joiner>(sep));
  });
  static const Value kCycler = make_function("cycler", [](Interpreter&, CallArgs args) -> Result<Value> {
    return Value::callable(std::make_shared<Cycler>(std::move(args.positional)));
  });
  if (name == "range") return kRange;
  if (name == "dict") return kDict;
  if (name == "namespace") return kNamespace;
  if (name == "raise_exception") return kRaise;
  if (name == "strftime_now") return kStrftime;
  if (name == "joiner") return kJoiner;
  if (name == "cycler") return kCycler;
  return std::nullopt;
}

}  // namespace k2::jinja
