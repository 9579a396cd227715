// The tokenizer that ships with a random checkpoint: a Kimi (tiktoken) tokenizer directory
// copied next to the weights, and what the model's config.json must agree with (how many
// ids it uses, which are bos/eos).
//
// Stateless functions; thread-safe. The parser takes outside bytes: malformed input is an
// error value, never a crash (fuzzed by tokenizer_info_fuzz).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

struct TokenizerInfo {
  int64_t num_ids = 0;  // highest id (BPE rank or added token) + 1
  std::optional<int64_t> bos;
  std::vector<int64_t> eos;  // generation_config.json's eos_token_id, else tokenizer_config's eos_token
};

// `generation_config` may be empty (the file is optional).
Result<TokenizerInfo> parse_tokenizer_info(const std::string& tokenizer_config, const std::string& generation_config,
                                           const std::string& tiktoken_model);

// The files copied: tiktoken.model and tokenizer_config.json (required), and whichever of
// generation_config.json, chat_template.jinja, special_tokens.json, tokenization_kimi.py exist.
Result<TokenizerInfo> read_tokenizer_dir(const std::filesystem::path& dir);
Status copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace k2::bench
