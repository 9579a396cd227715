#include "frontend/chat_template/json_dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "frontend/chat_template/utf8.h"

namespace k2::jinja {

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    const auto c = static_cast<unsigned char>(ch);
    if (ensure_ascii && c >= 0x80) {
      size_t pos = i;
      char32_t cp = next_code_point(s, pos);
      i = pos - 1;
      char buf[16];
      if (cp >= 0x10000) {
        cp -= 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (cp >> 10)),
                      static_cast<unsigned>(0xDC00 + (cp & 0x3FF)));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
      }
      out += buf;
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

namespace {

class JsonWriter {
 public:
  explicit JsonWriter(const JsonDumpOptions& options) : options_(options) {}

  Status write(const Value& v, int depth) {
    if (out_.size() > options_.max_bytes) {
      return out_of_range("tojson output exceeds " + std::to_string(options_.max_bytes) + " bytes");
    }
    if (depth > kMaxValueDepth) return invalid_argument("ValueError: Circular reference detected");
    switch (v.kind()) {
      case Value::Kind::kNone: out_ += "null"; return {};
      case Value::Kind::kBool: out_ += v.as_bool() ? "true" : "false"; return {};
      case Value::Kind::kInt: out_ += std::to_string(v.as_int()); return {};
      case Value::Kind::kFloat: out_ += float_text(v.as_double()); return {};
      case Value::Kind::kString: append_json_string(out_, v.as_string(), options_.ensure_ascii); return {};
      case Value::Kind::kList:
      case Value::Kind::kTuple: return write_list(v.as_list(), depth);
      case Value::Kind::kDict: return write_dict(v.as_dict(), depth);
      default:
        return invalid_argument(std::string("TypeError: Object of type ") + v.type_name() +
                                " is not JSON serializable");
    }
  }

  std::string take() { return std::move(out_); }

 private:
  static std::string float_text(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
    return py_float_repr(d);
  }

  void newline(int depth) {
    if (!options_.indent) return;
    out_.push_back('\n');
    for (int i = 0; i < depth; ++i) out_ += *options_.indent;
  }

  Status write_list(const ValueList& items, int depth) {
    if (items.empty()) {
      out_ += "[]";
      return {};
    }
    out_.push_back('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out_ += options_.item_separator;
      newline(depth + 1);
      K2_RETURN_IF_ERROR(write(items[i], depth + 1));
    }
    newline(depth);
    out_.push_back(']');
    return {};
  }

  // Python converts these key types to strings; anything else is a TypeError.
  static Result<std::string> key_text(const Value& k) {
    switch (k.kind()) {
      case Value::Kind::kString: return k.as_string();
      case Value::Kind::kNone: return std::string("null");
      case Value::Kind::kBool: return std::string(k.as_bool() ? "true" : "false");
      case Value::Kind::kInt: return std::to_string(k.as_int());
      case Value::Kind::kFloat: return float_text(k.as_double());
      default:
        return invalid_argument(std::string("TypeError: keys must be str, int, float, bool or None, not ") +
                                k.type_name());
    }
  }

  Status write_dict(const Dict& d, int depth) {
    if (d.entries.empty()) {
      out_ += "{}";
      return {};
    }
    std::vector<const std::pair<Value, Value>*> order;
    order.reserve(d.entries.size());
    for (const auto& e : d.entries) order.push_back(&e);
    if (options_.sort_keys) {
      for (const auto* e : order) {
        if (!e->first.is_string()) {
          return invalid_argument("TypeError: '<' not supported between instances of mixed key types");
        }
      }
      std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
        return a->first.as_string() < b->first.as_string();
      });
    }
    out_.push_back('{');
    bool first = true;
    for (const auto* e : order) {
      if (!first) out_ += options_.item_separator;
      first = false;
      newline(depth + 1);
      K2_ASSIGN_OR_RETURN(std::string key, key_text(e->first));
      append_json_string(out_, key, options_.ensure_ascii);
      out_ += options_.key_separator;
      K2_RETURN_IF_ERROR(write(e->second, depth + 1));
    }
    newline(depth);
    out_.push_back('}');
    return {};
  }

  const JsonDumpOptions& options_;
  std::string out_;
};

}  // namespace

Result<std::string> py_json_dumps(const Value& v, const JsonDumpOptions& options) {
  JsonWriter writer(options);
  K2_RETURN_IF_ERROR(writer.write(v, 0));
  std::string out = writer.take();
  if (out.size() > options.max_bytes) {
    return out_of_range("tojson output exceeds " + std::to_string(options.max_bytes) + " bytes");
  }
  return out;
}

}  // namespace k2::jinja
