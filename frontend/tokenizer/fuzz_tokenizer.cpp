// libFuzzer target: arbitrary bytes (including invalid UTF-8) through the tok-1024
// tokenizer, and the same bytes as tokenizer files.
//
// Checked properties: encode never crashes; decode_bytes(encode(x)) == x for every x (the
// tokenizer keeps invalid bytes as they are); for valid UTF-8, decode(encode(x)) == x;
// streaming detokenization of the ids equals the one-shot decode. The first input byte
// selects a mode so one corpus also exercises the tiktoken.model / config parsers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "frontend/tokenizer/incremental_detokenizer.h"
#include "frontend/tokenizer/tokenizer.h"
#include "frontend/tokenizer/utf8.h"

namespace {

const std::shared_ptr<const k2::Tokenizer>& tokenizer() {
  static const std::shared_ptr<const k2::Tokenizer> t = [] {
    auto r = k2::Tokenizer::load(std::string(K2_TEST_DATA_DIR) + "/text/tok-1024");
    if (!r.ok()) std::abort();
    return *r;
  }();
  return t;
}

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_encode(std::string_view text) {
  const auto& t = tokenizer();
  const auto ids = t->encode(text);
  check(*t->decode_bytes(ids) == text);
  const bool valid = k2::tok::utf8_valid_prefix(text) == text.size();
  const std::string decoded = *t->decode(ids);
  if (valid) check(decoded == text);
  check(k2::tok::utf8_valid_prefix(decoded) == decoded.size());
  check(*t->decode_bytes(t->encode_ordinary(text)) == text);
  check(*t->decode_bytes(t->encode(text, false)) == text);
  k2::IncrementalDetokenizer stream(t, false);
  std::string streamed;
  for (size_t i = 0; i < ids.size(); i += 1 + (i % 3)) {
    const size_t n = std::min<size_t>(1 + (i % 3), ids.size() - i);
    streamed += *stream.add(std::span<const int32_t>(ids.data() + i, n));
  }
  check(streamed + stream.finish() == decoded);
}

void fuzz_files(uint8_t mode, std::string_view bytes) {
  static const std::string model = [] {
    std::string m;
    // A small valid model: the 256 single bytes (base64 of each) is all a config needs.
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int b = 0; b < 256; ++b) {
      m += kB64[b >> 2];
      m += kB64[(b & 3) << 4];
      m += "== " + std::to_string(b) + "\n";
    }
    return m;
  }();
  static const std::string config = R"({"added_tokens_decoder": {"256": {"content": "[BOS]", "special": true}}, "bos_token": "[BOS]"})";
  k2::Result<std::shared_ptr<const k2::Tokenizer>> r = k2::internal_error("unset");
  if (mode == 1) r = k2::Tokenizer::from_contents(bytes, config, "", "");
  if (mode == 2) r = k2::Tokenizer::from_contents(model, bytes, "", "");
  if (mode == 3) r = k2::Tokenizer::from_contents(model, config, bytes, "");
  if (r.ok()) {
    const auto ids = (*r)->encode("hello [BOS] world");
    check(*(*r)->decode_bytes(ids) == "hello [BOS] world");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const uint8_t mode = data[0] % 8;  // mostly encoding
  if (mode >= 1 && mode <= 3) {
    fuzz_files(mode, rest);
  } else {
    fuzz_encode(rest);
  }
  return 0;
}
