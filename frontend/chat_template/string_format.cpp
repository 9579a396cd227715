#include "frontend/chat_template/string_format.h"

#include <cstdio>
#include <cstdlib>

#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/operators.h"
#include "frontend/chat_template/utf8.h"

namespace k2::jinja {
namespace {

constexpr int kMaxWidth = 1 << 20;

std::string aligned(const std::string& body, char fill, char align, int width, char default_align) {
  const auto len = static_cast<int>(code_point_count(body));
  if (width <= len) return body;
  const int total = width - len;
  if (!align) align = default_align;
  const int left = align == '<' ? 0 : (align == '^' ? total / 2 : total);
  if (align == '=' && !body.empty() && (body[0] == '-' || body[0] == '+')) {
    return body.substr(0, 1) + std::string(static_cast<size_t>(total), fill) + body.substr(1);
  }
  return std::string(static_cast<size_t>(left), fill) + body + std::string(static_cast<size_t>(total - left), fill);
}

std::string c_format(const char* spec, double d) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), spec, d);
  return buf;
}

}  // namespace

Result<std::string> py_format_value(const Value& v, const std::string& spec) {
  if (spec.empty()) return py_str(v);
  size_t i = 0;
  char fill = ' ';
  char align = 0;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (spec.size() >= 2 && is_align(spec[1])) {
    fill = spec[0];
    align = spec[1];
    i = 2;
  } else if (is_align(spec[0])) {
    align = spec[0];
    i = 1;
  }
  char sign = '-';
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
  if (i < spec.size() && spec[i] == '0') {
    if (!align) {
      fill = '0';
      align = '=';
    }
    ++i;
  }
  int width = 0;
  while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9' && width < kMaxWidth) width = width * 10 + (spec[i++] - '0');
  if (i < spec.size() && spec[i] == ',') ++i;  // grouping: accepted, not applied
  int precision = -1;
  if (i < spec.size() && spec[i] == '.') {
    precision = 0;
    ++i;
    while (i < spec.size() && spec[i] >= '0' && spec[i] <= '9' && precision < 1000) precision = precision * 10 + (spec[i++] - '0');
  }
  const char type = i < spec.size() ? spec[i++] : 0;
  if (i != spec.size() || width >= kMaxWidth) return invalid_argument("ValueError: Invalid format specifier");
  std::string body;
  if (v.is_string() || type == 's') {
    if (!v.is_string()) return invalid_argument("ValueError: Unknown format code 's' for non-string");
    body = v.as_string();
    if (precision >= 0) {
      const auto offsets = code_point_offsets(body);
      if (static_cast<size_t>(precision) + 1 < offsets.size()) body = body.substr(0, offsets[static_cast<size_t>(precision)]);
    }
    return aligned(body, fill, align, width, '<');
  }
  if (!v.is_number()) return invalid_argument(std::string("TypeError: unsupported format string passed to ") + v.type_name() + ".__format__");
  const std::string sign_prefix = sign == '+' ? "+" : (sign == ' ' ? " " : "");
  if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || type == 'b' || (!type && !v.is_float() && precision < 0)) {
    if (v.is_float()) return invalid_argument("ValueError: Unknown format code 'd' for object of type 'float'");
    const int64_t n = v.as_int();
    const uint64_t mag = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
    char buf[80];
    if (type == 'x' || type == 'X' || type == 'o') {
      std::snprintf(buf, sizeof(buf), type == 'x' ? "%llx" : (type == 'X' ? "%llX" : "%llo"), static_cast<unsigned long long>(mag));
    } else if (type == 'b') {
      std::string bits;
      for (uint64_t m = mag; m; m >>= 1) bits.insert(bits.begin(), static_cast<char>('0' + (m & 1)));
      std::snprintf(buf, sizeof(buf), "%s", bits.empty() ? "0" : bits.c_str());
    } else {
      std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(mag));
    }
    body = (n < 0 ? "-" : sign_prefix) + buf;
    return aligned(body, fill, align, width, '>');
  }
  const double d = v.as_double();
  const int p = precision < 0 ? 6 : precision;
  std::string fmt = "%." + std::to_string(p);
  switch (type) {
    case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': fmt += type; break;
    case '%': fmt += 'f'; break;
    case 0: fmt = precision < 0 ? "" : "%." + std::to_string(p) + "g"; break;
    default: return invalid_argument(std::string("ValueError: Unknown format code '") + type + "'");
  }
  body = fmt.empty() ? py_str(v) : c_format(fmt.c_str(), type == '%' ? d * 100 : d);
  if (type == '%') body += "%";
  if (d >= 0 && !body.empty() && body[0] != '-') body = sign_prefix + body;
  return aligned(body, fill, align, width, '>');
}

Result<std::string> py_str_format(Interpreter& interp, const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      return invalid_argument("ValueError: Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) return invalid_argument("ValueError: Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    std::string spec;
    char conversion = 0;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field.resize(bang);
    }
    // Field name: index or keyword, then .attr / [key] parts.
    size_t end = field.find_first_of(".[");
    const std::string head = field.substr(0, end);
    Value v;
    if (head.empty() || (head.find_first_not_of("0123456789") == std::string::npos)) {
      const size_t index = head.empty() ? auto_index++ : static_cast<size_t>(std::strtoull(head.c_str(), nullptr, 10));
      if (index >= args.positional.size()) return invalid_argument("IndexError: Replacement index " + std::to_string(index) + " out of range for positional args tuple");
      v = args.positional[index];
    } else {
      const Value* kw = args.find_keyword(head);
      if (!kw) return invalid_argument("KeyError: '" + head + "'");
      v = *kw;
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        const size_t next = field.find_first_of(".[", end + 1);
        K2_ASSIGN_OR_RETURN(v, get_attr(v, field.substr(end + 1, next == std::string::npos ? std::string::npos : next - end - 1)));
        end = next;
      } else {
        const size_t rb = field.find(']', end);
        if (rb == std::string::npos) return invalid_argument("ValueError: Missing ']' in format string");
        const std::string key = field.substr(end + 1, rb - end - 1);
        const bool numeric = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
        K2_ASSIGN_OR_RETURN(v, get_item(v, numeric ? Value::integer(std::atoll(key.c_str())) : Value::string(key)));
        end = rb + 1 < field.size() ? rb + 1 : std::string::npos;
      }
    }
    if (v.is_undefined()) return Interpreter::undefined_error(v);
    if (conversion == 'r') v = Value::string(py_repr(v));
    else if (conversion == 's') v = Value::string(py_str(v));
    K2_ASSIGN_OR_RETURN(std::string piece, py_format_value(v, spec));
    out += piece;
    K2_RETURN_IF_ERROR(interp.check_size(out.size()));
  }
  return out;
}

Result<std::string> py_percent_format(const std::string& fmt, const Value& args) {
  const ValueList single{args};
  const ValueList& items = args.is_tuple() ? args.as_list() : single;
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) return invalid_argument("ValueError: incomplete format");
    Value v;
    bool have = false;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos || !args.is_dict()) return invalid_argument("TypeError: format requires a mapping");
      const Value* found = args.as_dict().find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!found) return invalid_argument("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
      v = *found;
      have = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("-+ #0").find(fmt[i]) != std::string_view::npos) flags.push_back(fmt[i++]);
    std::string width;
    while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9' && width.size() < 6) width.push_back(fmt[i++]);
    std::string precision;
    if (i < fmt.size() && fmt[i] == '.') {
      ++i;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9' && precision.size() < 3) precision.push_back(fmt[i++]);
      if (precision.empty()) precision = "0";
    }
    if (i >= fmt.size()) return invalid_argument("ValueError: incomplete format");
    const char type = fmt[i];
    if (type == '%') {
      out.push_back('%');
      continue;
    }
    if (!have) {
      if (next >= items.size()) return invalid_argument("TypeError: not enough arguments for format string");
      v = items[next++];
    }
    const bool left = flags.find('-') != std::string::npos;
    const bool zero = flags.find('0') != std::string::npos && !left && type != 's' && type != 'r' && type != 'a';
    const char align = left ? '<' : '>';
    std::string spec = zero ? "" : std::string(1, align);
    if (flags.find('+') != std::string::npos) spec += "+";
    if (zero) spec += "0";
    spec += width;
    switch (type) {
      case 's': case 'r': case 'a': {
        std::string text = type == 's' ? py_str(v) : py_repr(v);
        if (!precision.empty()) {
          const auto offsets = code_point_offsets(text);
          const auto p = static_cast<size_t>(std::atoi(precision.c_str()));
          if (p + 1 < offsets.size()) text.resize(offsets[p]);
        }
        K2_ASSIGN_OR_RETURN(std::string piece, py_format_value(Value::string(text), std::string(1, align) + width));
        out += piece;
        break;
      }
      case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
        if (!v.is_number()) {
          return invalid_argument(std::string("TypeError: %") + type + " format: a real number is required, not " + v.type_name());
        }
        Value n = v;
        char t = type;
        if (t == 'd' || t == 'i' || t == 'u') {
          if (v.is_float()) n = Value::integer(static_cast<int64_t>(v.as_double()));
          t = 'd';
        }
        if (!precision.empty() && t != 'd') spec += "." + precision;
        K2_ASSIGN_OR_RETURN(std::string piece, py_format_value(n, spec + t));
        out += piece;
        break;
      }
      default: return invalid_argument(std::string("ValueError: unsupported format character '") + type + "'");
    }
  }
  if (next < items.size() && !args.is_dict()) {
    return invalid_argument("TypeError: not all arguments converted during string formatting");
  }
  return out;
}

}  // namespace k2::jinja
