// Helpers shared by the chat-template tests: test-data paths and golden records.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace k2::chat_test {

inline std::string data_path(const std::string& rel) { return std::string(K2_TEST_DATA_DIR) + "/" + rel; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline std::vector<nlohmann::ordered_json> golden_records() {
  std::vector<nlohmann::ordered_json> rows;
  std::ifstream in(data_path("text/goldens/chat_template_cases.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::ordered_json::parse(line));
  }
  return rows;
}

}  // namespace k2::chat_test
