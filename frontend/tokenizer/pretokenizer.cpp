#include "frontend/tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "frontend/tokenizer/utf8.h"

namespace k2::tok {
namespace {

std::string build_pcre2_pattern() {
  // Rust's \s is the Unicode White_Space property; PCRE2's UCP \s differs (it lacks
  // U+0085), so the set is spelled out.
  const std::string ws =
      R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]] as one negated class: general categories
  // partition the code points, so "in {Lu,Lt,Lm,Lo,M} and not Han" is "not Han and not in
  // any other category" ({Ll, C, N, P, S, Z}). \p{Han} alone would be Script_Extensions in
  // PCRE2 >= 10.40 (it would take U+3001); Kimi means Script=Han, hence sc:Han.
  const std::string upper = R"([^\p{sc:Han}\p{Ll}\p{C}\p{N}\p{P}\p{S}\p{Z}])";
  // [\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]] likewise.
  const std::string lower = R"([^\p{sc:Han}\p{Lu}\p{Lt}\p{C}\p{N}\p{P}\p{S}\p{Z}])";
  const std::string contraction = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)?)";
  const std::string lead = R"([^\r\n\p{L}\p{N}]?)";
  return std::string(R"(\p{sc:Han}+)") +                          //
         "|" + lead + upper + "*" + lower + "+" + contraction +  //
         "|" + lead + upper + "+" + lower + "*" + contraction +  //
         R"(|\p{N}{1,3})" +                                      //
         "| ?[^" + ws + R"(\p{L}\p{N}]+[\r\n]*)" +               //
         "|[" + ws + "]*[\\r\\n]+" +                              //
         "|[" + ws + "]+(?![^" + ws + "])" +                      //
         "|[" + ws + "]+";
}

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

}  // namespace

const std::string& kimi_pattern_source() {
  static const std::string kSource =
      R"([\p{Han}]+)"
      R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
      R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]+[\p{Ll}\p{Lm}\p{Lo}\p{M}&&[^\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
      R"(|\p{N}{1,3})"
      R"(| ?[^\s\p{L}\p{N}]+[\r\n]*)"
      R"(|\s*[\r\n]+)"
      R"(|\s+(?!\S))"
      R"(|\s+)";
  return kSource;
}

const std::string& kimi_pcre2_pattern() {
  static const std::string kPattern = build_pcre2_pattern();
  return kPattern;
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::create() {
  const std::string& pattern = kimi_pcre2_pattern();
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return internal_error("compiling the pre-tokenizer regex at offset " + std::to_string(offset) +
                          ": " + reinterpret_cast<const char*>(message));
  }
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  pre->code_ = code;
  // Without JIT (e.g. a PCRE2 built without it) the interpreter gives the same pieces.
  pre->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return pre;
}

PreTokenizer::~PreTokenizer() { pcre2_code_free(as_code(code_)); }

PreTokenizer::Scratch::Scratch(const PreTokenizer& pre)
    : match_data_(pcre2_match_data_create_from_pattern(as_code(pre.code_), nullptr)) {}

PreTokenizer::Scratch::~Scratch() { pcre2_match_data_free(static_cast<pcre2_match_data*>(match_data_)); }

size_t PreTokenizer::split(std::string_view text, size_t from, Scratch& scratch,
                           std::vector<std::string_view>& pieces, size_t max_pieces) const {
  auto* md = static_cast<pcre2_match_data*>(scratch.match_data_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(md);
  size_t pos = from;
  const size_t limit = pieces.size() + max_pieces;
  while (pos < text.size() && pieces.size() < limit) {
    // The caller validated the UTF-8 of the whole text; skip PCRE2's re-check.
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (jit_) rc = pcre2_jit_match(as_code(code_), subject, text.size(), pos, 0, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {  // no JIT, or its stack ran out: interpret
      rc = pcre2_match(as_code(code_), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {  // a gap up to the end (impossible for valid UTF-8)
      pieces.push_back(text.substr(pos));
      return text.size();
    }
    if (rc <= 0) {  // a matching error such as a resource limit: take one character
      const size_t len = std::max<size_t>(1, utf8_char_length(text.substr(pos)));
      pieces.push_back(text.substr(pos, len));
      pos += len;
      continue;
    }
    const size_t start = ovector[0];
    size_t end = ovector[1];
    if (end <= start) end = start + std::max<size_t>(1, utf8_char_length(text.substr(start)));
    if (start > pos) pieces.push_back(text.substr(pos, start - pos));
    pieces.push_back(text.substr(start, end - start));
    pos = end;
  }
  return pos;
}

}  // namespace k2::tok
