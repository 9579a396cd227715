#include "frontend/chat_template/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "frontend/chat_template/utf8.h"

namespace k2::jinja {

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (py_equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k.is_string() && k.as_string() == key) return &v;
  }
  return nullptr;
}

const Value* Namespace::find(std::string_view name) const {
  for (const auto& [k, v] : attrs) {
    if (k == name) return &v;
  }
  return nullptr;
}

void Namespace::set(const std::string& name, Value value) {
  for (auto& [k, v] : attrs) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  attrs.emplace_back(name, std::move(value));
}

const Value* CallArgs::find_keyword(std::string_view name) const {
  for (const auto& [k, v] : keyword) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value Callable::attribute(std::string_view name) const {
  std::string hint = "'";
  hint += repr();
  hint += "' has no attribute '";
  hint += name;
  hint += "'";
  return Value::undefined(std::move(hint));
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::undefined(std::string hint, bool unsafe) {
  Value v;
  v.ptr_ = std::make_shared<UndefinedInfo>(UndefinedInfo{std::move(hint), unsafe});
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.bool_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.int_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::kFloat;
  v.float_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::list(ValueList items) {
  Value v;
  v.kind_ = Kind::kList;
  v.ptr_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::tuple(ValueList items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::kTuple;
  return v;
}

Value Value::dict(Dict d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.ptr_ = std::make_shared<Dict>(std::move(d));
  return v;
}

Value Value::new_namespace() {
  Value v;
  v.kind_ = Kind::kNamespace;
  v.ptr_ = std::make_shared<Namespace>();
  return v;
}

Value Value::callable(std::shared_ptr<const Callable> fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.ptr_ = std::const_pointer_cast<Callable>(std::move(fn));
  return v;
}

double Value::as_double() const {
  switch (kind_) {
    case Kind::kBool: return bool_ ? 1.0 : 0.0;
    case Kind::kInt: return static_cast<double>(int_);
    case Kind::kFloat: return float_;
    default: return 0.0;
  }
}

const std::string& Value::as_string() const { return *static_cast<const std::string*>(ptr_.get()); }
const ValueList& Value::as_list() const { return *static_cast<const ValueList*>(ptr_.get()); }
const Dict& Value::as_dict() const { return *static_cast<const Dict*>(ptr_.get()); }
Namespace& Value::as_namespace() const { return *static_cast<Namespace*>(ptr_.get()); }
const Callable& Value::as_callable() const { return *static_cast<const Callable*>(ptr_.get()); }
const UndefinedInfo* Value::undefined_info() const {
  return kind_ == Kind::kUndefined ? static_cast<const UndefinedInfo*>(ptr_.get()) : nullptr;
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return bool_;
    case Kind::kInt: return int_ != 0;
    case Kind::kFloat: return float_ != 0.0;
    case Kind::kString: return !as_string().empty();
    case Kind::kList:
    case Kind::kTuple: return !as_list().empty();
    case Kind::kDict: return !as_dict().entries.empty();
    case Kind::kNamespace:
    case Kind::kCallable: return true;
  }
  return false;
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<size_t>(res.ptr - buf));
  std::string out;
  if (sci.front() == '-') {
    out.push_back('-');
    sci.remove_prefix(1);
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e)) {
    if (c != '.') digits.push_back(c);
  }
  const int exp10 = std::atoi(std::string(sci.substr(e + 1)).c_str());
  const int decpt = exp10 + 1;  // value = 0.DIGITS * 10^decpt
  const int n = static_cast<int>(digits.size());
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
    } else if (decpt < n) {
      out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
    } else {
      out += digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
    }
    return out;
  }
  out.push_back(digits[0]);
  if (n > 1) {
    out += '.';
    out += digits.substr(1);
  }
  const int x = decpt - 1;
  char ebuf[16];
  std::snprintf(ebuf, sizeof(ebuf), "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
  return out + ebuf;
}

namespace {

// Python's str.isprintable() approximated for what repr() escapes: controls, the
// non-space separators and the common format characters.
bool py_printable(char32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0)) return false;
  if (cp != ' ' && py_isspace(cp)) return false;
  if (cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
      (cp >= 0x2060 && cp <= 0x2064) || cp == 0xFEFF || (cp >= 0xD800 && cp <= 0xF8FF)) {
    return false;
  }
  return cp <= 0x10FFFF;
}

std::string py_repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t start = pos;
    const char32_t cp = next_code_point(s, pos);
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!py_printable(cp)) {
      char buf[16];
      if (cp < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
      else if (cp < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
      else std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s, start, pos - start);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace

namespace {

struct ReprWriter {
  std::string out;
  size_t budget;
  int depth = 0;

  bool full() const { return out.size() >= budget; }

  void write_str(const Value& v) {
    if (full()) return;
    switch (v.kind()) {
      case Value::Kind::kUndefined: return;
      case Value::Kind::kNone: out += "None"; return;
      case Value::Kind::kBool: out += v.as_bool() ? "True" : "False"; return;
      case Value::Kind::kInt: out += std::to_string(v.as_int()); return;
      case Value::Kind::kFloat: out += py_float_repr(v.as_double()); return;
      case Value::Kind::kString: out += v.as_string(); return;
      case Value::Kind::kNamespace: {
        out += "<Namespace {";
        bool first = true;
        if (!enter()) return;
        for (const auto& [k, val] : v.as_namespace().attrs) {
          if (full()) break;
          if (!first) out += ", ";
          first = false;
          out += py_repr_string(k) + ": ";
          write_repr(val);
        }
        --depth;
        out += "}>";
        return;
      }
      case Value::Kind::kCallable: out += v.as_callable().repr(); return;
      default: write_repr(v);
    }
  }

  bool enter() {
    if (depth >= kMaxValueDepth) {
      out += "...";
      return false;
    }
    ++depth;
    return true;
  }

  void write_repr(const Value& v) {
    if (full()) return;
    switch (v.kind()) {
      case Value::Kind::kString: out += py_repr_string(v.as_string()); return;
      case Value::Kind::kList:
      case Value::Kind::kTuple: {
        const bool tuple = v.is_tuple();
        const auto& items = v.as_list();
        out += tuple ? "(" : "[";
        if (!enter()) return;
        for (size_t i = 0; i < items.size() && !full(); ++i) {
          if (i) out += ", ";
          write_repr(items[i]);
        }
        --depth;
        if (tuple && items.size() == 1) out += ",";
        out += tuple ? ")" : "]";
        return;
      }
      case Value::Kind::kDict: {
        out += "{";
        if (!enter()) return;
        bool first = true;
        for (const auto& [k, val] : v.as_dict().entries) {
          if (full()) break;
          if (!first) out += ", ";
          first = false;
          write_repr(k);
          out += ": ";
          write_repr(val);
        }
        --depth;
        out += "}";
        return;
      }
      default: write_str(v);
    }
  }
};

bool equal_impl(const Value& a, const Value& b, int depth, size_t& steps) {
  using K = Value::Kind;
  if (++steps > (size_t{1} << 24) || depth > kMaxValueDepth) return false;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::kUndefined:
    case K::kNone: return true;
    case K::kString: return a.as_string() == b.as_string();
    case K::kList:
    case K::kTuple: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equal_impl(x[i], y[i], depth + 1, steps)) return false;
      }
      return true;
    }
    case K::kDict: {
      const auto& x = a.as_dict().entries;
      const auto& y = b.as_dict().entries;
      if (&x == &y) return true;
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        bool found = false;
        for (const auto& [k2, v2] : y) {
          if (equal_impl(k, k2, depth + 1, steps)) {
            if (!equal_impl(v, v2, depth + 1, steps)) return false;
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
      return true;
    }
    case K::kNamespace: return &a.as_namespace() == &b.as_namespace();
    case K::kCallable: return &a.as_callable() == &b.as_callable();
    default: return false;
  }
}

}  // namespace

std::string py_repr(const Value& v, size_t budget) {
  ReprWriter w{{}, budget};
  w.write_repr(v);
  return std::move(w.out);
}

std::string py_str(const Value& v, size_t budget) {
  if (v.is_string()) return v.as_string();
  ReprWriter w{{}, budget};
  w.write_str(v);
  return std::move(w.out);
}

bool py_equal(const Value& a, const Value& b) {
  size_t steps = 0;
  return equal_impl(a, b, 0, steps);
}

Result<int> py_compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double();
      const double y = b.as_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = a.as_int();
    const int64_t y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.as_string().compare(b.as_string());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.kind() == b.kind() && a.is_sequence()) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (py_equal(x[i], y[i])) continue;
      return py_compare(x[i], y[i], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  return invalid_argument(std::string("TypeError: '") + op + "' not supported between instances of '" +
                          a.type_name() + "' and '" + b.type_name() + "'");
}

Result<ValueList> py_iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return ValueList{};
    case Value::Kind::kList:
    case Value::Kind::kTuple: return v.as_list();
    case Value::Kind::kDict: {
      ValueList keys;
      keys.reserve(v.as_dict().entries.size());
      for (const auto& [k, val] : v.as_dict().entries) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      const std::string& s = v.as_string();
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t start = pos;
        next_code_point(s, pos);
        chars.push_back(Value::string(s.substr(start, pos - start)));
      }
      return chars;
    }
    case Value::Kind::kNamespace: {
      // jinja2's Namespace is iterable over its attribute dict (keys).
      ValueList keys;
      for (const auto& [k, val] : v.as_namespace().attrs) keys.push_back(Value::string(k));
      return keys;
    }
    default:
      return invalid_argument(std::string("TypeError: '") + v.type_name() + "' object is not iterable");
  }
}

Result<int64_t> py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return int64_t{0};
    case Value::Kind::kString: return static_cast<int64_t>(code_point_count(v.as_string()));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return static_cast<int64_t>(v.as_list().size());
    case Value::Kind::kDict: return static_cast<int64_t>(v.as_dict().entries.size());
    default:
      return invalid_argument(std::string("TypeError: object of type '") + v.type_name() + "' has no len()");
  }
}

namespace {

Result<Value> from_json_impl(const nlohmann::ordered_json& j, int depth) {
  using T = nlohmann::ordered_json::value_t;
  if (depth > kMaxValueDepth) return invalid_argument("JSON input nested deeper than " + std::to_string(kMaxValueDepth));
  switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer: return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Value::integer(static_cast<int64_t>(u));
      }
      return Value::number(static_cast<double>(u));
    }
    case T::number_float: return Value::number(j.get<double>());
    case T::string: return Value::string(j.get<std::string>());
    case T::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) {
        K2_ASSIGN_OR_RETURN(Value item, from_json_impl(e, depth + 1));
        items.push_back(std::move(item));
      }
      return Value::list(std::move(items));
    }
    case T::object: {
      Dict d;
      d.entries.reserve(j.size());
      for (const auto& [k, e] : j.items()) {
        K2_ASSIGN_OR_RETURN(Value item, from_json_impl(e, depth + 1));
        d.entries.emplace_back(Value::string(k), std::move(item));
      }
      return Value::dict(std::move(d));
    }
    default: return Value::none();
  }
}

}  // namespace

Result<Value> from_json(const nlohmann::ordered_json& j) { return from_json_impl(j, 0); }

}  // namespace k2::jinja
