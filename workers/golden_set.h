// GoldenSet: the reference outputs of one golden directory (golden.json +
// golden.safetensors, format of tests/data/models/README.md §6-§7), parsed into plain
// values. Everything a check needs is read from the files; nothing about a particular
// set's shape is assumed.
//
// Owns the parsed JSON values and the mmapped golden.safetensors. Not thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shm/status.h"
#include "workers/loader/convert.h"
#include "workers/loader/safetensors.h"

namespace k2 {

struct GoldenCase {
  std::string name;
  std::vector<std::vector<int32_t>> prompts;
  int64_t decode_steps = 0;
  std::vector<std::vector<int32_t>> greedy;       // per prompt: decode_steps tokens
  std::vector<std::vector<double>> decode_gaps;   // per prompt: top-1 minus top-2 of each decode row
  std::vector<std::pair<int64_t, int64_t>> chunks;  // [start, end) prefill chunks; empty: one prefill
  std::vector<std::string> tensors;               // names in golden.safetensors
};

class GoldenSet {
 public:
  static Result<GoldenSet> open(const std::filesystem::path& dir);

  double logits_atol() const { return logits_atol_; }
  const std::string& text_prefix() const { return text_prefix_; }
  const std::vector<GoldenCase>& cases() const { return cases_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  std::optional<double> softmax_scale() const { return softmax_scale_; }
  // Names of the int4_check.* tensors (INT4 sets), from golden.json or else the file.
  const std::vector<std::string>& int4_checks() const { return int4_checks_; }

  bool has(const std::string& name) const;
  Result<TensorF32> f32(const std::string& name) const;
  Result<std::vector<int64_t>> i64(const std::string& name) const;

 private:
  Status parse_json(const std::string& text);

  double logits_atol_ = 1e-3;
  std::string text_prefix_;
  std::vector<GoldenCase> cases_;
  std::vector<float> inv_freq_;
  std::optional<double> softmax_scale_;
  std::vector<std::string> int4_checks_;
  std::shared_ptr<SafetensorsFile> tensors_;
};

}  // namespace k2
