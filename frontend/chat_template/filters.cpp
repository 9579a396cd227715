// jinja2's built-in filters as chat templates use them, plus Hugging Face's tojson.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <unordered_map>

#include "frontend/chat_template/builtins.h"
#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/json_dump.h"
#include "frontend/chat_template/methods.h"
#include "frontend/chat_template/operators.h"
#include "frontend/chat_template/string_format.h"
#include "frontend/chat_template/utf8.h"

namespace k2::jinja {
namespace {

// Binds positional + keyword arguments to a filter's parameter names (after the input).
class Params {
 public:
  Params(const CallArgs& args, std::initializer_list<const char*> names) {
    size_t i = 0;
    for (const char* name : names) {
      const Value* v = i < args.positional.size() ? &args.positional[i] : args.find_keyword(name);
      values_.emplace_back(name, v);
      ++i;
    }
  }
  const Value* get(std::string_view name) const {
    for (const auto& [k, v] : values_) {
      if (k == name) return v;
    }
    return nullptr;
  }
  Value value_or(std::string_view name, Value fallback) const {
    const Value* v = get(name);
    return v ? *v : std::move(fallback);
  }
  bool flag(std::string_view name) const {
    const Value* v = get(name);
    return v && v->truthy();
  }

 private:
  std::vector<std::pair<std::string_view, const Value*>> values_;
};

using Filter = std::function<Result<Value>(Interpreter&, const Value&, const CallArgs&)>;

Value str_value(const Value& v) { return Value::string(py_str(v)); }

Result<Value> call_method(Interpreter& interp, const Value& self, std::string_view name, CallArgs args) {
  return bind_method(self, name).as_callable().call(interp, std::move(args));
}

// Sort/unique key: attribute lookup and case folding as jinja2's make_attrgetter + ignore_case.
Result<Value> sort_key(const Value& item, const Value* attribute, bool case_sensitive) {
  Value key = item;
  if (attribute && !attribute->is_none()) {
    K2_ASSIGN_OR_RETURN(key, lookup_attribute_path(item, attribute->is_string() ? attribute->as_string() : py_str(*attribute)));
  }
  if (!case_sensitive && key.is_string()) {
    std::string lower = key.as_string();
    for (char& c : lower) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    key = Value::string(std::move(lower));
  }
  return key;
}

Result<ValueList> sorted(const ValueList& items, const Value* attribute, bool case_sensitive, bool reverse) {
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& item : items) {
    K2_ASSIGN_OR_RETURN(Value key, sort_key(item, attribute, case_sensitive));
    keyed.emplace_back(std::move(key), item);
  }
  Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    auto c = py_compare(reverse ? b.first : a.first, reverse ? a.first : b.first, "<");
    if (!c.ok()) {
      if (error.ok()) error = c.status();
      return false;
    }
    return *c < 0;
  });
  K2_RETURN_IF_ERROR(error);
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return out;
}

Result<Value> filter_tojson(Interpreter& interp, const Value& v, const CallArgs& args) {
  Params p(args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.max_bytes = interp.limits().max_output_bytes;
  options.ensure_ascii = p.flag("ensure_ascii");
  if (const Value* indent = p.get("indent"); indent && !indent->is_none()) {
    if (indent->is_string()) options.indent = indent->as_string();
    else if (indent->is_int() || indent->is_bool()) options.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent->as_int(), 0, 1024)), ' ');
    else return invalid_argument("TypeError: tojson indent must be an int or a string");
    options.item_separator = ",";
  }
  if (const Value* sep = p.get("separators"); sep && !sep->is_none()) {
    if (!sep->is_sequence() || sep->as_list().size() != 2 || !sep->as_list()[0].is_string() || !sep->as_list()[1].is_string()) {
      return invalid_argument("ValueError: tojson separators must be a pair of strings");
    }
    options.item_separator = sep->as_list()[0].as_string();
    options.key_separator = sep->as_list()[1].as_string();
  }
  options.sort_keys = p.flag("sort_keys");
  K2_ASSIGN_OR_RETURN(std::string text, py_json_dumps(v, options));
  return Value::string(std::move(text));
}

Result<Value> filter_default(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"default_value", "boolean"});
  const bool use_default = v.is_undefined() || (p.flag("boolean") && !v.truthy());
  return use_default ? p.value_or("default_value", Value::string("")) : v;
}

Result<Value> filter_join(Interpreter& interp, const Value& v, const CallArgs& args) {
  Params p(args, {"d", "attribute"});
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  const std::string sep = py_str(p.value_or("d", Value::string("")));
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (const Value* attr = p.get("attribute"); attr && !attr->is_none()) {
      K2_ASSIGN_OR_RETURN(item, lookup_attribute_path(item, py_str(*attr)));
    }
    if (i) out += sep;
    out += py_str(item, interp.limits().max_output_bytes + 1);
    K2_RETURN_IF_ERROR(interp.check_size(out.size()));
  }
  return Value::string(std::move(out));
}

Result<Value> filter_items(Interpreter&, const Value& v, const CallArgs&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) return invalid_argument("FilterArgumentError: Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, val] : v.as_dict().entries) out.push_back(Value::tuple({k, val}));
  return Value::list(std::move(out));
}

Result<Value> filter_indent(Interpreter& interp, const Value& v, const CallArgs& args) {
  Params p(args, {"width", "first", "blank"});
  const Value width = p.value_or("width", Value::integer(4));
  std::string indention;
  if (width.is_string()) indention = width.as_string();
  else if (width.is_int()) indention = std::string(static_cast<size_t>(std::clamp<int64_t>(width.as_int(), 0, 4096)), ' ');
  else return invalid_argument("TypeError: indent width must be an int or a string");
  const ValueList lines = py_splitlines(py_str(v) + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i].as_string();
    if (i) out += "\n";
    if (i && (p.flag("blank") || !line.empty())) out += indention;
    out += line;
    K2_RETURN_IF_ERROR(interp.check_size(out.size()));
  }
  if (p.flag("first")) out = indention + out;
  return Value::string(std::move(out));
}

// int(x) as jinja2's `int` filter: strings parse with Python's rules, floats truncate.
Result<Value> filter_int(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"default", "base"});
  const Value fallback = p.value_or("default", Value::integer(0));
  if (v.is_bool() || v.is_int()) return Value::integer(v.as_int());
  if (v.is_float()) {
    if (!std::isfinite(v.as_double()) || std::fabs(v.as_double()) >= 9.2e18) return fallback;
    return Value::integer(static_cast<int64_t>(v.as_double()));
  }
  if (!v.is_string()) return fallback;
  std::string s(py_strip(v.as_string(), true, true));
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  const int base = static_cast<int>(p.value_or("base", Value::integer(10)).as_int());
  if (!s.empty() && base >= 2 && base <= 36) {
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(s.c_str(), &end, base);
    if (end && *end == '\0' && errno == 0) return Value::integer(n);
  }
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) {
    return Value::integer(static_cast<int64_t>(d));
  }
  return fallback;
}

Result<Value> filter_float(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"default"});
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    std::string s(py_strip(v.as_string(), true, true));
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value::number(d);
  }
  return p.value_or("default", Value::number(0.0));
}

Result<Value> filter_round(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"precision", "method"});
  if (!v.is_number()) return invalid_argument(std::string("TypeError: type ") + v.type_name() + " doesn't define __round__ method");
  const int64_t precision = p.value_or("precision", Value::integer(0)).as_int();
  const std::string method = py_str(p.value_or("method", Value::string("common")));
  const double scale = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(precision, -300, 300)));
  const double x = v.as_double() * scale;
  double r;
  if (method == "common") r = std::round(x);
  else if (method == "ceil") r = std::ceil(x);
  else if (method == "floor") r = std::floor(x);
  else return invalid_argument("FilterArgumentError: method must be common, ceil or floor");
  return Value::number(r / scale);
}

// select/reject/selectattr/rejectattr.
Result<Value> select_items(Interpreter& interp, const Value& v, const CallArgs& args, bool by_attr, bool keep) {
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  size_t next = 0;
  std::string attr;
  if (by_attr) {
    if (args.positional.empty()) return invalid_argument("FilterArgumentError: Missing parameter for attribute name");
    attr = py_str(args.positional[next++]);
  }
  std::string test;
  if (next < args.positional.size()) test = py_str(args.positional[next++]);
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end());
  test_args.keyword = args.keyword;
  ValueList out;
  for (const auto& item : items) {
    Value subject = item;
    if (by_attr) {
      K2_ASSIGN_OR_RETURN(subject, lookup_attribute_path(item, attr));
    }
    bool pass;
    if (test.empty()) {
      pass = subject.truthy();
    } else {
      K2_ASSIGN_OR_RETURN(pass, apply_test(interp, test, subject, test_args));
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Result<Value> filter_map(Interpreter& interp, const Value& v, const CallArgs& args) {
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  ValueList out;
  if (const Value* attr = args.find_keyword("attribute"); attr && args.positional.empty()) {
    const Value* fallback = args.find_keyword("default");
    for (const auto& item : items) {
      K2_ASSIGN_OR_RETURN(Value x, lookup_attribute_path(item, py_str(*attr)));
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (args.positional.empty()) return invalid_argument("FilterArgumentError: map requires a filter argument");
  const std::string name = py_str(args.positional[0]);
  CallArgs rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const auto& item : items) {
    K2_ASSIGN_OR_RETURN(Value x, apply_filter(interp, name, item, rest));
    out.push_back(std::move(x));
  }
  return Value::list(std::move(out));
}

Result<Value> filter_minmax(Interpreter&, const Value& v, const CallArgs& args, bool want_max) {
  Params p(args, {"case_sensitive", "attribute"});
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  K2_ASSIGN_OR_RETURN(ValueList order, sorted(items, p.get("attribute"), p.flag("case_sensitive"), want_max));
  return order.front();
}

Result<Value> filter_unique(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"case_sensitive", "attribute"});
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  ValueList out;
  ValueList seen;
  for (const auto& item : items) {
    K2_ASSIGN_OR_RETURN(Value key, sort_key(item, p.get("attribute"), p.flag("case_sensitive")));
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, key); })) {
      seen.push_back(key);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Result<Value> filter_batch_or_slice(Interpreter&, const Value& v, const CallArgs& args, bool is_batch) {
  Params p(args, {is_batch ? "linecount" : "slices", "fill_with"});
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  const Value* count_value = p.get(is_batch ? "linecount" : "slices");
  if (!count_value || !count_value->is_int() || count_value->as_int() <= 0) {
    return invalid_argument("FilterArgumentError: batch/slice count must be a positive int");
  }
  const auto n = static_cast<size_t>(count_value->as_int());
  const Value* fill = p.get("fill_with");
  ValueList out;
  if (is_batch) {
    for (size_t i = 0; i < items.size(); i += n) {
      ValueList row(items.begin() + static_cast<std::ptrdiff_t>(i), items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + n)));
      while (fill && !fill->is_none() && row.size() < n) row.push_back(*fill);
      out.push_back(Value::list(std::move(row)));
    }
    return Value::list(std::move(out));
  }
  const size_t per = items.size() / n;
  const size_t extra = items.size() % n;
  size_t offset = 0;
  for (size_t i = 0; i < n && n <= 1'000'000; ++i) {
    const size_t start = offset + i * per;
    if (i < extra) ++offset;
    const size_t end = offset + (i + 1) * per;
    ValueList row(items.begin() + static_cast<std::ptrdiff_t>(start), items.begin() + static_cast<std::ptrdiff_t>(end));
    if (fill && !fill->is_none() && i >= extra) row.push_back(*fill);
    out.push_back(Value::list(std::move(row)));
  }
  return Value::list(std::move(out));
}

Result<Value> filter_truncate(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"length", "killwords", "end", "leeway"});
  const std::string s = py_str(v);
  const int64_t length = p.value_or("length", Value::integer(255)).as_int();
  const std::string end = py_str(p.value_or("end", Value::string("...")));
  const int64_t leeway = p.value_or("leeway", Value::integer(5)).as_int();
  const auto offsets = code_point_offsets(s);
  const auto n = static_cast<int64_t>(offsets.size()) - 1;
  if (n <= length + leeway) return Value::string(s);
  const int64_t keep = std::max<int64_t>(0, length - static_cast<int64_t>(code_point_count(end)));
  std::string head = s.substr(0, offsets[static_cast<size_t>(std::min(keep, n))]);
  if (!p.flag("killwords")) {
    const size_t space = head.rfind(' ');
    if (space != std::string::npos) head.resize(space);
  }
  return Value::string(head + end);
}

Result<Value> filter_dictsort(Interpreter&, const Value& v, const CallArgs& args) {
  Params p(args, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) return invalid_argument("FilterArgumentError: dictsort needs a mapping");
  const bool by_value = py_str(p.value_or("by", Value::string("key"))) == "value";
  ValueList pairs;
  for (const auto& [k, val] : v.as_dict().entries) pairs.push_back(Value::tuple({k, val}));
  const Value attr_text = Value::string(by_value ? "1" : "0");
  K2_ASSIGN_OR_RETURN(ValueList out, sorted(pairs, &attr_text, p.flag("case_sensitive"), p.flag("reverse")));
  return Value::list(std::move(out));
}

Result<Value> filter_groupby(Interpreter& interp, const Value& v, const CallArgs& args) {
  Params p(args, {"attribute", "default", "case_sensitive"});
  const Value* attr = p.get("attribute");
  if (!attr) return invalid_argument("FilterArgumentError: groupby needs an attribute");
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
  K2_ASSIGN_OR_RETURN(ValueList order, sorted(items, attr, p.flag("case_sensitive"), false));
  ValueList groups;
  for (const auto& item : order) {
    K2_ASSIGN_OR_RETURN(Value key, sort_key(item, attr, true));
    if (key.is_undefined() && p.get("default")) key = *p.get("default");
    if (!groups.empty() && py_equal(groups.back().as_list()[0], key)) {
      ValueList members = groups.back().as_list()[1].as_list();
      members.push_back(item);
      groups.back() = Value::tuple({key, Value::list(std::move(members))});
    } else {
      groups.push_back(Value::tuple({key, Value::list({item})}));
    }
  }
  (void)interp;
  return Value::list(std::move(groups));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

const std::unordered_map<std::string_view, Filter>& filter_table() {
  static const auto* table = new std::unordered_map<std::string_view, Filter>{
      {"tojson", filter_tojson},
      {"default", filter_default},
      {"d", filter_default},
      {"join", filter_join},
      {"items", filter_items},
      {"indent", filter_indent},
      {"int", filter_int},
      {"float", filter_float},
      {"round", filter_round},
      {"map", filter_map},
      {"unique", filter_unique},
      {"truncate", filter_truncate},
      {"dictsort", filter_dictsort},
      {"groupby", filter_groupby},
      {"select", [](Interpreter& i, const Value& v, const CallArgs& a) { return select_items(i, v, a, false, true); }},
      {"reject", [](Interpreter& i, const Value& v, const CallArgs& a) { return select_items(i, v, a, false, false); }},
      {"selectattr", [](Interpreter& i, const Value& v, const CallArgs& a) { return select_items(i, v, a, true, true); }},
      {"rejectattr", [](Interpreter& i, const Value& v, const CallArgs& a) { return select_items(i, v, a, true, false); }},
      {"max", [](Interpreter& i, const Value& v, const CallArgs& a) { return filter_minmax(i, v, a, true); }},
      {"min", [](Interpreter& i, const Value& v, const CallArgs& a) { return filter_minmax(i, v, a, false); }},
      {"batch", [](Interpreter& i, const Value& v, const CallArgs& a) { return filter_batch_or_slice(i, v, a, true); }},
      {"slice", [](Interpreter& i, const Value& v, const CallArgs& a) { return filter_batch_or_slice(i, v, a, false); }},
      {"length", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         K2_ASSIGN_OR_RETURN(int64_t n, py_len(v));
         return Value::integer(n);
       }},
      {"string", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> { return str_value(v); }},
      {"safe", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> { return v.is_string() ? v : str_value(v); }},
      {"escape", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> { return Value::string(html_escape(py_str(v))); }},
      {"trim", [](Interpreter& i, const Value& v, const CallArgs& a) {
         return call_method(i, str_value(v), "strip", CallArgs{a.positional.empty() ? ValueList{} : ValueList{a.positional[0]}, {}});
       }},
      {"lower", [](Interpreter& i, const Value& v, const CallArgs&) { return call_method(i, str_value(v), "lower", {}); }},
      {"upper", [](Interpreter& i, const Value& v, const CallArgs&) { return call_method(i, str_value(v), "upper", {}); }},
      {"title", [](Interpreter& i, const Value& v, const CallArgs&) { return call_method(i, str_value(v), "title", {}); }},
      {"capitalize", [](Interpreter& i, const Value& v, const CallArgs&) { return call_method(i, str_value(v), "capitalize", {}); }},
      {"center", [](Interpreter& i, const Value& v, const CallArgs& a) {
         return call_method(i, str_value(v), "center", CallArgs{{a.positional.empty() ? Value::integer(80) : a.positional[0]}, {}});
       }},
      {"replace", [](Interpreter& i, const Value& v, const CallArgs& a) {
         CallArgs args = a;
         if (const Value* count = a.find_keyword("count"); count && args.positional.size() == 2) args.positional.push_back(*count);
         args.keyword.clear();
         return call_method(i, str_value(v), "replace", std::move(args));
       }},
      {"format", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<Value> {
         Value args = a.positional.empty() && !a.keyword.empty() ? Value() : Value::tuple(a.positional);
         if (args.is_undefined()) {
           Dict d;
           for (const auto& [k, val] : a.keyword) d.entries.emplace_back(Value::string(k), val);
           args = Value::dict(std::move(d));
         }
         K2_ASSIGN_OR_RETURN(std::string s, py_percent_format(py_str(v), args));
         return Value::string(std::move(s));
       }},
      {"list", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         return Value::list(std::move(items));
       }},
      {"first", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         if (items.empty()) return Value::undefined("No first item, sequence was empty.");
         return items.front();
       }},
      {"last", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         if (items.empty()) return Value::undefined("No last item, sequence was empty.");
         return items.back();
       }},
      {"reverse", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         if (v.is_string()) return slice_value(v, std::nullopt, std::nullopt, -1);
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         std::reverse(items.begin(), items.end());
         return Value::list(std::move(items));
       }},
      {"sort", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<Value> {
         Params p(a, {"reverse", "case_sensitive", "attribute"});
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         K2_ASSIGN_OR_RETURN(ValueList out, sorted(items, p.get("attribute"), p.flag("case_sensitive"), p.flag("reverse")));
         return Value::list(std::move(out));
       }},
      {"sum", [](Interpreter& i, const Value& v, const CallArgs& a) -> Result<Value> {
         Params p(a, {"attribute", "start"});
         K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
         Value total = p.value_or("start", Value::integer(0));
         for (const auto& item : items) {
           Value x = item;
           if (const Value* attr = p.get("attribute")) {
             K2_ASSIGN_OR_RETURN(x, lookup_attribute_path(item, py_str(*attr)));
           }
           K2_ASSIGN_OR_RETURN(total, binary_op("+", total, x, i.limits().max_output_bytes));
         }
         return total;
       }},
      {"abs", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         if (v.is_float()) return Value::number(std::fabs(v.as_double()));
         if (v.is_number()) return v.as_int() < 0 ? unary_minus(v) : Value::integer(v.as_int());
         return invalid_argument(std::string("TypeError: bad operand type for abs(): '") + v.type_name() + "'");
       }},
      {"attr", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<Value> {
         if (a.positional.empty()) return invalid_argument("TypeError: attr() needs a name");
         return get_attr(v, py_str(a.positional[0]));
       }},
      {"wordcount", [](Interpreter&, const Value& v, const CallArgs&) -> Result<Value> {
         const std::string s = py_str(v);
         int64_t words = 0;
         bool in_word = false;
         for (char c : s) {
           const bool w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || (c & 0x80);
           if (w && !in_word) ++words;
           in_word = w;
         }
         return Value::integer(words);
       }},
  };
  return *table;
}

}  // namespace

Result<Value> lookup_attribute_path(const Value& v, std::string_view path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part(path.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    const bool numeric = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos && part.size() < 18;
    K2_ASSIGN_OR_RETURN(cur, get_item(cur, numeric ? Value::integer(std::atoll(part.c_str())) : Value::string(part)));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return cur;
}

Result<Value> apply_filter(Interpreter& interp, std::string_view name, const Value& input, const CallArgs& args) {
  const auto& table = filter_table();
  std::string_view key = name;
  if (key == "count") key = "length";
  if (key == "e" || key == "forceescape") key = "escape";
  const auto it = table.find(key);
  if (it == table.end()) return invalid_argument("TemplateAssertionError: No filter named '" + std::string(name) + "'.");
  return it->second(interp, input, args);
}

bool has_filter(std::string_view name) {
  return filter_table().count(name) || name == "count" || name == "e" || name == "forceescape";
}

}  // namespace k2::jinja
