#include "frontend/chat_template/methods.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/string_format.h"
#include "frontend/chat_template/utf8.h"

namespace k2::jinja {
namespace {

constexpr std::string_view kStrMethods[] = {
    "capitalize", "center", "count", "endswith", "find", "format", "index", "isalnum", "isalpha",
    "isdigit", "islower", "isspace", "isupper", "join", "ljust", "lower", "lstrip", "replace",
    "rfind", "rjust", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "title",
    "upper", "zfill"};
constexpr std::string_view kDictMethods[] = {"get", "items", "keys", "values", "copy"};
constexpr std::string_view kDictUnsafe[] = {"pop", "popitem", "setdefault", "update", "clear"};
constexpr std::string_view kListMethods[] = {"count", "index", "copy"};
constexpr std::string_view kListUnsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};

template <size_t N>
bool in(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Status arg_error(std::string_view method, const char* what) {
  return invalid_argument("TypeError: " + std::string(method) + "() " + what);
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
bool ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

Result<std::string> string_arg(const CallArgs& args, size_t i, std::string_view method) {
  if (i >= args.positional.size() || !args.positional[i].is_string()) {
    return arg_error(method, "argument must be str");
  }
  return args.positional[i].as_string();
}

ValueList split_string(const std::string& s, const Value* sep, int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (!sep || sep->is_none()) {
    // Runs of whitespace separate; leading/trailing whitespace yields no empty parts.
    std::vector<std::pair<size_t, size_t>> words;
    size_t pos = 0;
    while (pos < s.size()) {
      size_t start = pos;
      size_t next = pos;
      if (py_isspace(next_code_point(s, next))) {
        pos = next;
        continue;
      }
      while (pos < s.size()) {
        next = pos;
        if (py_isspace(next_code_point(s, next))) break;
        pos = next;
      }
      words.emplace_back(start, pos);
    }
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      const size_t keep = static_cast<size_t>(maxsplit);
      std::vector<std::pair<size_t, size_t>> merged;
      if (!from_right) {
        merged.assign(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(keep));
        std::string_view rest = py_strip(std::string_view(s).substr(words[keep].first), false, true);
        merged.emplace_back(words[keep].first, words[keep].first + rest.size());
      } else {
        const size_t cut = words.size() - keep - 1;
        std::string_view head = py_strip(std::string_view(s).substr(0, words[cut].second), true, false);
        merged.emplace_back(words[cut].second - head.size(), words[cut].second);
        merged.insert(merged.end(), words.end() - static_cast<std::ptrdiff_t>(keep), words.end());
      }
      words = std::move(merged);
    }
    ValueList out;
    for (auto [b, e] : words) out.push_back(Value::string(s.substr(b, e - b)));
    return out;
  }
  const std::string& d = sep->as_string();
  std::vector<std::string> pieces;
  if (!from_right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(pieces.size()) < maxsplit) {
      const size_t hit = s.find(d, start);
      if (hit == std::string::npos) break;
      pieces.push_back(s.substr(start, hit - start));
      start = hit + d.size();
    }
    pieces.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(pieces.size()) < maxsplit) {
      if (end < d.size()) break;
      const size_t hit = s.rfind(d, end - d.size());
      if (hit == std::string::npos) break;
      pieces.push_back(s.substr(hit + d.size(), end - hit - d.size()));
      end = hit;
    }
    pieces.push_back(s.substr(0, end));
    std::reverse(pieces.begin(), pieces.end());
  }
  ValueList out;
  for (auto& p : pieces) out.push_back(Value::string(std::move(p)));
  return out;
}

Result<Value> pad(const std::string& s, const CallArgs& args, char where) {
  if (args.positional.empty() || !args.positional[0].is_int()) return arg_error("pad", "width must be int");
  const int64_t width = args.positional[0].as_int();
  std::string fill = " ";
  if (args.positional.size() > 1 && args.positional[1].is_string()) fill = args.positional[1].as_string();
  const auto len = static_cast<int64_t>(code_point_count(s));
  if (width <= len) return Value::string(s);
  if (width > (int64_t{1} << 24)) return out_of_range("padding width too large");
  const auto total = static_cast<size_t>(width - len);
  // Python's str.center puts the odd pad character on the left when width is odd.
  const size_t left = where == 'l' ? 0 : (where == 'r' ? total : total / 2 + (total & static_cast<size_t>(width) & 1));
  std::string out;
  for (size_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (size_t i = left; i < total; ++i) out += fill;
  return Value::string(std::move(out));
}

Result<Value> call_str_method(Interpreter& interp, const std::string& s, std::string_view name, const CallArgs& args) {
  const auto& a = args.positional;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const bool left = name != "rstrip";
    const bool right = name != "lstrip";
    if (a.empty() || a[0].is_none()) return Value::string(std::string(py_strip(s, left, right)));
    K2_ASSIGN_OR_RETURN(std::string chars, string_arg(args, 0, name));
    return Value::string(std::string(py_strip_chars(s, chars, left, right)));
  }
  if (name == "lower" || name == "upper") {
    std::string out = s;
    for (char& c : out) c = name == "lower" ? ascii_lower(c) : ascii_upper(c);
    return Value::string(std::move(out));
  }
  if (name == "title" || name == "capitalize") {
    std::string out = s;
    bool prev_cased = false;
    for (size_t i = 0; i < out.size(); ++i) {
      const bool upper = name == "title" ? !prev_cased : i == 0;
      out[i] = upper ? ascii_upper(out[i]) : ascii_lower(out[i]);
      prev_cased = ascii_alpha(out[i]);
    }
    return Value::string(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    if (a.empty()) return arg_error(name, "takes at least 1 argument");
    ValueList options = a[0].is_tuple() ? a[0].as_list() : ValueList{a[0]};
    for (const auto& o : options) {
      if (!o.is_string()) return arg_error(name, "first arg must be str or a tuple of str");
      const std::string& p = o.as_string();
      const bool hit = p.size() <= s.size() &&
                       (name == "startswith" ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit") {
    const Value* sep = a.empty() ? args.find_keyword("sep") : &a[0];
    const Value* maxsplit = a.size() > 1 ? &a[1] : args.find_keyword("maxsplit");
    if (sep && !sep->is_none() && !sep->is_string()) return arg_error(name, "sep must be str or None");
    if (sep && sep->is_string() && sep->as_string().empty()) return invalid_argument("ValueError: empty separator");
    return Value::list(split_string(s, sep, maxsplit && maxsplit->is_int() ? maxsplit->as_int() : -1, name == "rsplit"));
  }
  if (name == "splitlines") return Value::list(py_splitlines(s));
  if (name == "replace") {
    K2_ASSIGN_OR_RETURN(std::string from, string_arg(args, 0, name));
    K2_ASSIGN_OR_RETURN(std::string to, string_arg(args, 1, name));
    int64_t count = a.size() > 2 && a[2].is_int() ? a[2].as_int() : -1;
    std::string out;
    size_t pos = 0;
    while (count != 0) {
      size_t hit;
      if (from.empty()) {
        if (pos > s.size()) break;
        hit = pos;
      } else {
        hit = s.find(from, pos);
        if (hit == std::string::npos) break;
      }
      out.append(s, pos, hit - pos);
      out += to;
      K2_RETURN_IF_ERROR(interp.check_size(out.size()));
      if (from.empty()) {
        if (hit < s.size()) {
          size_t next = hit;
          next_code_point(s, next);
          out.append(s, hit, next - hit);
          pos = next;
        } else {
          pos = s.size() + 1;
        }
      } else {
        pos = hit + from.size();
      }
      if (count > 0) --count;
    }
    if (pos <= s.size()) out.append(s, pos);
    K2_RETURN_IF_ERROR(interp.check_size(out.size()));
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    K2_ASSIGN_OR_RETURN(std::string sub, string_arg(args, 0, name));
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(code_point_count(s)) + 1);
      int64_t n = 0;
      for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t hit = name == "rfind" ? s.rfind(sub) : s.find(sub);
    if (hit == std::string::npos) {
      if (name == "index") return invalid_argument("ValueError: substring not found");
      return Value::integer(-1);
    }
    return Value::integer(static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, hit))));
  }
  if (name == "join") {
    if (a.empty()) return arg_error(name, "takes exactly one argument");
    K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(a[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        return invalid_argument("TypeError: sequence item " + std::to_string(i) + ": expected str instance, " +
                                items[i].type_name() + " found");
      }
      if (i) out += s;
      out += items[i].as_string();
      K2_RETURN_IF_ERROR(interp.check_size(out.size()));
    }
    return Value::string(std::move(out));
  }
  if (name == "center") return pad(s, args, 'c');
  if (name == "ljust") return pad(s, args, 'l');
  if (name == "rjust") return pad(s, args, 'r');
  if (name == "zfill") {
    CallArgs zero{{a.empty() ? Value::integer(0) : a[0], Value::string("0")}, {}};
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
      if (zero.positional[0].is_int()) zero.positional[0] = Value::integer(zero.positional[0].as_int() - 1);
      K2_ASSIGN_OR_RETURN(Value rest, pad(s.substr(1), zero, 'r'));
      return Value::string(s.substr(0, 1) + rest.as_string());
    }
    return pad(s, zero, 'r');
  }
  if (name == "format") {
    K2_ASSIGN_OR_RETURN(std::string out, py_str_format(interp, s, args));
    return Value::string(std::move(out));
  }
  // is* predicates (ASCII classification; non-ASCII letters count as alphabetic).
  auto all_of = [&](auto pred) {
    if (s.empty()) return Value::boolean(false);
    return Value::boolean(std::all_of(s.begin(), s.end(), pred));
  };
  if (name == "isdigit") return all_of([](char c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return all_of([](char c) { return ascii_alpha(c) || (c & 0x80); });
  if (name == "isalnum") return all_of([](char c) { return ascii_alpha(c) || (c >= '0' && c <= '9') || (c & 0x80); });
  if (name == "isspace") {
    if (s.empty()) return Value::boolean(false);
    return Value::boolean(py_strip(s, true, false).empty());
  }
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    for (char c : s) {
      if (!ascii_alpha(c)) continue;
      cased = true;
      if ((name == "islower") != (c >= 'a' && c <= 'z')) return Value::boolean(false);
    }
    return Value::boolean(cased);
  }
  return invalid_argument("str has no method " + std::string(name));
}

Result<Value> call_container_method(const Value& self, std::string_view name, const CallArgs& args) {
  const auto& a = args.positional;
  if (self.is_dict()) {
    const Dict& d = self.as_dict();
    if (name == "get") {
      if (a.empty()) return arg_error(name, "expected at least 1 argument");
      if (const Value* v = d.find(a[0])) return *v;
      return a.size() > 1 ? a[1] : Value::none();
    }
    if (name == "copy") return self;
    ValueList out;
    for (const auto& [k, v] : d.entries) {
      if (name == "items") out.push_back(Value::tuple({k, v}));
      else out.push_back(name == "keys" ? k : v);
    }
    return Value::list(std::move(out));
  }
  const ValueList& items = self.as_list();
  if (name == "copy") return self;
  if (a.empty()) return arg_error(name, "takes exactly one argument");
  if (name == "count") {
    return Value::integer(std::count_if(items.begin(), items.end(), [&](const Value& v) { return py_equal(v, a[0]); }));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (py_equal(items[i], a[0])) return Value::integer(static_cast<int64_t>(i));
  }
  return invalid_argument("ValueError: " + py_repr(a[0]) + " is not in " + self.type_name());
}

class BoundMethod : public Callable {
 public:
  BoundMethod(Value self, std::string name) : self_(std::move(self)), name_(std::move(name)) {}
  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    if (self_.is_string()) return call_str_method(interp, self_.as_string(), name_, args);
    return call_container_method(self_, name_, args);
  }
  std::string repr() const override {
    return "<built-in method " + name_ + " of " + self_.type_name() + " object>";
  }

 private:
  Value self_;
  std::string name_;
};

}  // namespace

ValueList py_splitlines(const std::string& s) {
  ValueList out;
  size_t start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const char32_t cp = next_code_point(s, pos);
    const bool is_break = cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D ||
                          cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!is_break) continue;
    out.push_back(Value::string(s.substr(start, at - start)));
    if (cp == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
    start = pos;
  }
  if (start < s.size()) out.push_back(Value::string(s.substr(start)));
  return out;
}

MethodLookup find_method(const Value& obj, std::string_view name) {
  if (obj.is_string()) return in(kStrMethods, name) ? MethodLookup::kSafe : MethodLookup::kNone;
  if (obj.is_dict()) {
    if (in(kDictMethods, name)) return MethodLookup::kSafe;
    return in(kDictUnsafe, name) ? MethodLookup::kUnsafe : MethodLookup::kNone;
  }
  if (obj.is_sequence()) {
    if (in(kListMethods, name) && !(obj.is_tuple() && name == "copy")) return MethodLookup::kSafe;
    return obj.is_list() && in(kListUnsafe, name) ? MethodLookup::kUnsafe : MethodLookup::kNone;
  }
  return MethodLookup::kNone;
}

Value bind_method(const Value& obj, std::string_view name) {
  return Value::callable(std::make_shared<BoundMethod>(obj, std::string(name)));
}

}  // namespace k2::jinja
