#include "frontend/chat_template/lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "frontend/chat_template/utf8.h"

namespace k2::jinja {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Length of the whitespace run (Python's \s) starting at pos.
size_t whitespace_len(std::string_view s, size_t pos) {
  size_t p = pos;
  while (p < s.size()) {
    size_t next = p;
    if (!py_isspace(next_code_point(s, next))) break;
    p = next;
  }
  return p - pos;
}

bool all_whitespace(std::string_view s) { return !s.empty() && whitespace_len(s, 0) == s.size(); }

std::string normalize_newlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Digits with single underscores between them (Python's (\d+_)*\d+); 0 if none.
size_t digit_run(std::string_view s, size_t pos) {
  size_t p = pos;
  if (p >= s.size() || !is_digit(s[p])) return 0;
  while (p < s.size()) {
    if (is_digit(s[p])) {
      ++p;
    } else if (s[p] == '_' && p + 1 < s.size() && is_digit(s[p + 1])) {
      ++p;
    } else {
      break;
    }
  }
  return p - pos;
}

// jinja2's float_re; 0 when it does not match.
size_t float_len(std::string_view s, size_t pos) {
  if (pos > 0 && s[pos - 1] == '.') return 0;
  size_t p = pos + digit_run(s, pos);
  if (p == pos) return 0;
  auto exponent = [&](size_t q) -> size_t {
    if (q >= s.size() || (s[q] != 'e' && s[q] != 'E')) return 0;
    size_t r = q + 1;
    if (r < s.size() && (s[r] == '+' || s[r] == '-')) ++r;
    const size_t d = digit_run(s, r);
    return d ? r + d - q : 0;
  };
  size_t frac_end = p;
  if (p < s.size() && s[p] == '.') {
    const size_t d = digit_run(s, p + 1);
    if (d) frac_end = p + 1 + d;
  }
  if (const size_t e = exponent(frac_end)) return frac_end + e - pos;
  return frac_end > p ? frac_end - pos : 0;
}

// jinja2's integer_re; 0 when it does not match. `base` receives 2/8/10/16.
size_t integer_len(std::string_view s, size_t pos, int& base) {
  auto lower = [&](size_t i) { return i < s.size() ? static_cast<char>(s[i] | 0x20) : '\0'; };
  auto prefixed = [&](char tag, int b, auto is_ok) -> size_t {
    if (s[pos] != '0' || lower(pos + 1) != tag) return 0;
    size_t p = pos + 2;
    size_t n = 0;
    while (p < s.size()) {
      if (s[p] == '_' && p + 1 < s.size() && is_ok(lower(p + 1))) p += 2, ++n;
      else if (is_ok(lower(p))) ++p, ++n;
      else break;
    }
    base = b;
    return n ? p - pos : 0;
  };
  if (size_t n = prefixed('b', 2, [](char c) { return c == '0' || c == '1'; })) return n;
  if (size_t n = prefixed('o', 8, [](char c) { return c >= '0' && c <= '7'; })) return n;
  if (size_t n = prefixed('x', 16, [](char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); })) return n;
  base = 10;
  if (s[pos] >= '1' && s[pos] <= '9') return digit_run(s, pos);
  if (s[pos] == '0') {
    size_t p = pos + 1;
    while (p < s.size()) {
      if (s[p] == '0') ++p;
      else if (s[p] == '_' && p + 1 < s.size() && s[p + 1] == '0') p += 2;
      else break;
    }
    return p - pos;
  }
  return 0;
}

// A quoted string literal (either quote, backslash escapes, may span lines); 0 if none.
size_t string_len(std::string_view s, size_t pos) {
  const char q = s[pos];
  if (q != '\'' && q != '"') return 0;
  for (size_t p = pos + 1; p < s.size(); ++p) {
    if (s[p] == '\\') {
      ++p;
    } else if (s[p] == q) {
      return p + 1 - pos;
    }
  }
  return 0;
}

size_t operator_len(std::string_view s, size_t pos) {
  static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
  for (auto op : kTwo) {
    if (s.substr(pos, 2) == op) return 2;
  }
  return std::string_view("+-/*%~[](){}><=.:|,;").find(s[pos]) != std::string_view::npos ? 1 : 0;
}

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options) : src_(std::move(source)), options_(options) {}

  Result<std::vector<Token>> run() {
    while (pos_ < src_.size()) {
      K2_RETURN_IF_ERROR(lex_root());
    }
    Token eof;
    eof.line = line_;
    out_.push_back(eof);
    return std::move(out_);
  }

 private:
  Status error(const std::string& message) const {
    return invalid_argument("TemplateSyntaxError: " + message + " (line " + std::to_string(line_) + ")");
  }

  void emit(TokenType type, std::string text) {
    Token t;
    t.type = type;
    t.text = std::move(text);
    t.line = line_;
    out_.push_back(std::move(t));
  }

  void advance(size_t n) {
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(pos_),
                                         src_.begin() + static_cast<std::ptrdiff_t>(pos_ + n), '\n'));
    line_starting_ = n > 0 && src_[pos_ + n - 1] == '\n';
    pos_ += n;
  }

  // Whitespace control on the text before a tag (jinja2's OptionalLStrip rule).
  std::string control_text(std::string_view text, char sign, bool is_variable) const {
    if (sign == '-') return std::string(py_strip(text, false, true));
    if (sign != '+' && options_.lstrip_blocks && !is_variable) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && all_whitespace(text.substr(l_pos))) {
        return std::string(text.substr(0, l_pos));
      }
    }
    return std::string(text);
  }

  // Length of a block end ("%}" with its variants) at p, 0 if none.
  size_t block_end_len(size_t p, bool trim) const {
    std::string_view s(src_);
    if (s.substr(p, 3) == "+%}") return 3;
    if (s.substr(p, 3) == "-%}") return 3 + whitespace_len(s, p + 3);
    if (s.substr(p, 2) == "%}") return (trim && p + 2 < s.size() && s[p + 2] == '\n') ? 3 : 2;
    return 0;
  }

  // `{%[-+]? raw %}` at p: length of the match, 0 if none.
  size_t raw_len(size_t p, std::string_view word, bool trim_after) const {
    std::string_view s(src_);
    if (s.substr(p, 2) != "{%") return 0;
    size_t q = p + 2;
    if (q < s.size() && (s[q] == '-' || s[q] == '+')) ++q;
    q += whitespace_len(s, q);
    if (s.substr(q, word.size()) != word) return 0;
    q += word.size();
    q += whitespace_len(s, q);
    if (!trim_after) {  // the opening tag: "-%}\s*" or "%}"
      if (s.substr(q, 3) == "-%}") return q + 3 + whitespace_len(s, q + 3) - p;
      if (s.substr(q, 2) == "%}") return q + 2 - p;
      return 0;
    }
    const size_t end = block_end_len(q, options_.trim_blocks);
    return end ? q + end - p : 0;
  }

  Status lex_root() {
    std::string_view s(src_);
    size_t p = pos_;
    while (true) {
      p = s.find('{', p);
      if (p == std::string_view::npos || p + 1 >= s.size()) {
        emit(TokenType::kData, std::string(s.substr(pos_)));
        advance(s.size() - pos_);
        return {};
      }
      const char kind = s[p + 1];
      if (kind == '%' || kind == '#' || kind == '{') break;
      ++p;
    }
    const char kind = s[p + 1];
    const char sign = (p + 2 < s.size() && (s[p + 2] == '-' || s[p + 2] == '+')) ? s[p + 2] : '\0';
    const size_t raw = kind == '%' ? raw_len(p, "raw", false) : 0;
    std::string text = control_text(s.substr(pos_, p - pos_), sign, kind == '{');
    if (!text.empty()) emit(TokenType::kData, std::move(text));
    advance(p - pos_);
    if (raw) {
      advance(raw);
      return lex_raw();
    }
    const size_t begin_len = sign ? 3 : 2;
    if (kind == '#') {
      advance(begin_len);
      return lex_comment();
    }
    emit(kind == '%' ? TokenType::kBlockBegin : TokenType::kVariableBegin, std::string(s.substr(p, begin_len)));
    advance(begin_len);
    return lex_tag(kind == '%');
  }

  Status lex_comment() {
    std::string_view s(src_);
    const size_t h = s.find("#}", pos_);
    if (h == std::string_view::npos) return error("Missing end of comment tag");
    size_t end = h + 2;
    if (h > pos_ && s[h - 1] == '-') {
      end += whitespace_len(s, end);
    } else if (!(h > pos_ && s[h - 1] == '+') && options_.trim_blocks && end < s.size() && s[end] == '\n') {
      ++end;
    }
    advance(end - pos_);
    return {};
  }

  Status lex_raw() {
    std::string_view s(src_);
    size_t p = pos_;
    while (true) {
      p = s.find("{%", p);
      if (p == std::string_view::npos) return error("Missing end of raw directive");
      if (const size_t n = raw_len(p, "endraw", true)) {
        const char sign = (s[p + 2] == '-' || s[p + 2] == '+') ? s[p + 2] : '\0';
        std::string text = control_text(s.substr(pos_, p - pos_), sign, false);
        if (!text.empty()) emit(TokenType::kData, std::move(text));
        advance(p + n - pos_);
        return {};
      }
      ++p;
    }
  }

  Status lex_tag(bool block) {
    std::string_view s(src_);
    std::vector<char> balance;
    while (pos_ < s.size()) {
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          end = block_end_len(pos_, options_.trim_blocks);
        } else if (s.substr(pos_, 3) == "-}}") {
          end = 3 + whitespace_len(s, pos_ + 3);
        } else if (s.substr(pos_, 2) == "}}") {
          end = 2;
        }
        if (end) {
          emit(block ? TokenType::kBlockEnd : TokenType::kVariableEnd, std::string(s.substr(pos_, end)));
          advance(end);
          return {};
        }
      }
      K2_RETURN_IF_ERROR(lex_tag_token(balance));
    }
    return {};  // end of input inside a tag: the parser reports the missing end
  }

  Status lex_tag_token(std::vector<char>& balance) {
    std::string_view s(src_);
    int base = 10;
    if (const size_t n = whitespace_len(s, pos_)) {
      advance(n);
    } else if (const size_t n = float_len(s, pos_)) {
      std::string digits;
      for (char c : s.substr(pos_, n)) {
        if (c != '_') digits.push_back(c);
      }
      emit(TokenType::kFloat, digits);
      out_.back().float_value = std::strtod(digits.c_str(), nullptr);
      advance(n);
    } else if (const size_t n = integer_len(s, pos_, base)) {
      std::string digits;
      for (char c : s.substr(base == 10 ? pos_ : pos_ + 2, base == 10 ? n : n - 2)) {
        if (c != '_') digits.push_back(c);
      }
      errno = 0;
      const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
      if (errno == ERANGE || v > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
        return error("integer literal too large");
      }
      emit(TokenType::kInteger, std::string(s.substr(pos_, n)));
      out_.back().int_value = static_cast<int64_t>(v);
      advance(n);
    } else if (is_name_start(s[pos_])) {
      size_t n = 1;
      while (pos_ + n < s.size() && is_name_char(s[pos_ + n])) ++n;
      emit(TokenType::kName, std::string(s.substr(pos_, n)));
      advance(n);
    } else if (const size_t n = string_len(s, pos_)) {
      auto decoded = decode_string_literal(s.substr(pos_ + 1, n - 2));
      if (!decoded.ok()) return error(decoded.status().message());
      emit(TokenType::kString, std::move(decoded).value());
      advance(n);
    } else if (const size_t n = operator_len(s, pos_)) {
      const char c = s[pos_];
      if (n == 1 && (c == '{' || c == '(' || c == '[')) {
        balance.push_back(c == '{' ? '}' : (c == '(' ? ')' : ']'));
      } else if (n == 1 && (c == '}' || c == ')' || c == ']')) {
        if (balance.empty()) return error(std::string("unexpected '") + c + "'");
        if (balance.back() != c) return error(std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
        balance.pop_back();
      }
      emit(TokenType::kOperator, std::string(s.substr(pos_, n)));
      advance(n);
    } else {
      size_t next = pos_;
      next_code_point(s, next);
      return error("unexpected char '" + std::string(s.substr(pos_, next - pos_)) + "' at " + std::to_string(pos_));
    }
    return {};
  }

  std::string src_;
  LexerOptions options_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::string> decode_string_literal(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  size_t i = 0;
  while (i < body.size()) {
    if (body[i] != '\\') {
      out.push_back(body[i++]);
      continue;
    }
    if (i + 1 >= body.size()) return invalid_argument("\\ at end of string");
    const char c = body[i + 1];
    i += 2;
    switch (c) {
      case '\n': break;  // line continuation
      case '\\': out.push_back('\\'); break;
      case '\'': out.push_back('\''); break;
      case '"': out.push_back('"'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': case 'u': case 'U': {
        const size_t digits = c == 'x' ? 2 : (c == 'u' ? 4 : 8);
        char32_t cp = 0;
        for (size_t k = 0; k < digits; ++k) {
          const int h = i + k < body.size() ? hex_value(body[i + k]) : -1;
          if (h < 0) return invalid_argument(std::string("truncated \\") + c + " escape");
          cp = cp * 16 + static_cast<char32_t>(h);
        }
        if (cp > 0x10FFFF) return invalid_argument("illegal Unicode character");
        i += digits;
        append_utf8(out, cp);
        break;
      }
      case 'N': return invalid_argument("\\N{...} escapes are not supported");
      default:
        if (c >= '0' && c <= '7') {
          char32_t cp = static_cast<char32_t>(c - '0');
          for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k) {
            cp = cp * 8 + static_cast<char32_t>(body[i++] - '0');
          }
          append_utf8(out, cp);
        } else if (static_cast<unsigned char>(c) >= 0x80) {
          // Python first rewrites the non-ASCII character as \xNN/\uNNNN/\UNNNNNNNN, so
          // this backslash escapes only the first character of that rewrite.
          size_t start = i - 1;
          const char32_t cp = next_code_point(body, start);
          i = start;
          char buf[16];
          if (cp < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(cp));
          else if (cp < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(cp));
          else std::snprintf(buf, sizeof(buf), "\\U%08x", static_cast<unsigned>(cp));
          out += buf;
        } else {
          out.push_back('\\');
          out.push_back(c);
        }
    }
  }
  return out;
}

Result<std::vector<Token>> tokenize(std::string_view source, const LexerOptions& options) {
  Lexer lexer(normalize_newlines(source, options.keep_trailing_newline), options);
  return lexer.run();
}

}  // namespace k2::jinja
