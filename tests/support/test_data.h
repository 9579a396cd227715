// Helpers every C++ test may use to reach tests/data: paths, whole files and JSON-lines
// goldens. Header-only, for test code only (k2_test links it); stateless, thread-safe.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace k2::testdata {

inline std::string data_path(const std::string& rel) { return std::string(K2_TEST_DATA_DIR) + "/" + rel; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// One JSON value per non-empty line.
template <class Json = nlohmann::json>
std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(Json::parse(line));
  }
  return rows;
}

}  // namespace k2::testdata
