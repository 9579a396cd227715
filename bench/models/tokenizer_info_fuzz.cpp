// libFuzzer target: parse_tokenizer_info on arbitrary bytes. The input is split at the
// first two "\n\0\0\n" separators into tokenizer_config.json, generation_config.json and
// tiktoken.model; every input must give a value or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "bench/models/tokenizer_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string sep("\n\0\0\n", 4);
  std::string parts[3];
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t at = i < 2 ? input.find(sep, start) : std::string::npos;
    parts[i] = input.substr(start, at == std::string::npos ? std::string::npos : at - start);
    if (at == std::string::npos) break;
    start = at + sep.size();
  }
  k2::Result<k2::bench::TokenizerInfo> info = k2::bench::parse_tokenizer_info(parts[0], parts[1], parts[2]);
  if (info.ok() && info->num_ids <= 0) __builtin_trap();
  return 0;
}
