// The token ids that end generation for a model directory, as vLLM gathers them: the
// tokenizer's EOS, config.json's eos_token_id, generation_config.json's eos_token_id, and
// Kimi's <|im_end|> (tests/data/models/README.md §3: "stop on both"). Free function.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace k2::engine {

// First the EOS proper (the tokenizer's eos_token when tokenizer_config.json names one, else
// config.json's first id), then every other id, without duplicates. Files that are missing or
// malformed contribute nothing (config.json was already validated by the worker).
std::vector<int32_t> model_stop_ids(const std::filesystem::path& model_dir, const std::filesystem::path& tokenizer_dir,
                                    const std::vector<int64_t>& config_eos_ids);

}  // namespace k2::engine
