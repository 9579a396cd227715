// Helpers shared by the chat-template tests: test-data paths and golden records.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/test_data.h"

namespace k2::chat_test {

using testdata::data_path;
using testdata::read_text;

inline std::vector<nlohmann::ordered_json> golden_records() {
  return testdata::read_jsonl<nlohmann::ordered_json>(data_path("text/goldens/chat_template_cases.jsonl"));
}

}  // namespace k2::chat_test
