// Helpers shared by the tokenizer tests: test-data paths and JSON-lines reading.
#pragma once

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/tokenizer/tokenizer.h"
#include "tests/support/test_data.h"

namespace k2::tok_test {

using testdata::data_path;
using testdata::read_text;

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) { return testdata::read_jsonl(path); }

inline std::shared_ptr<const Tokenizer> load_or_die(const std::string& dir) {
  auto t = Tokenizer::load(dir);
  if (!t.ok()) ADD_FAILURE() << t.status().to_string();
  return t.ok() ? *t : nullptr;
}

inline std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

// The tiny tokenizers with their goldens; demo-trained is tok-1024's files again.
struct TokDir {
  std::string dir;
  std::string golden;
};

inline std::vector<TokDir> tokenizer_dirs() {
  return {{data_path("text/tok-512"), data_path("text/tok-512/golden.jsonl")},
          {data_path("text/tok-768"), data_path("text/tok-768/golden.jsonl")},
          {data_path("text/tok-1024"), data_path("text/tok-1024/golden.jsonl")},
          {data_path("models/demo-trained"), data_path("text/tok-1024/golden.jsonl")}};
}

}  // namespace k2::tok_test
