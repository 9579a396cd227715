#include "workers/loader/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "workers/loader/test_util.h"

namespace k2 {
namespace {

using testing::file_bytes;
using testing::RawTensor;
using testing::TempDir;
using testing::to_bytes;

std::vector<RawTensor> two_tensors() {
  return {{"a.weight", "F32", {2, 3}, to_bytes(std::vector<float>{1, 2, 3, 4, 5, 6})},
          {"b.bias", "I32", {2}, to_bytes(std::vector<int32_t>{-7, 9})}};
}

Result<SafetensorsHeader> parse(const std::vector<uint8_t>& bytes) {
  return parse_safetensors_header(bytes.data(), bytes.size());
}

// Expects an error whose message contains every one of `parts`.
void expect_error(const Status& status, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(status.ok());
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos) << "'" << part << "' not in: " << status.message();
  }
}

// Replaces one tensor's header entry with raw JSON and rebuilds the file.
std::vector<uint8_t> with_entry(const std::string& name, const nlohmann::json& entry) {
  auto tensors = two_tensors();
  nlohmann::json header = testing::header_for(tensors);
  header[name] = entry;
  return file_bytes(header.dump(), testing::data_for(tensors));
}

TEST(Safetensors, ParsesAValidHeader) {
  auto bytes = file_bytes(two_tensors());
  auto header = parse(bytes);
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  ASSERT_EQ(header->tensors.size(), 2u);
  const TensorEntry& a = header->tensors.at("a.weight");
  EXPECT_EQ(a.dtype, DType::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.end - a.begin, 24u);
  EXPECT_EQ(header->metadata.at("format"), "pt");
  EXPECT_EQ(header->data_offset + 32, bytes.size());
}

TEST(Safetensors, DTypeNamesRoundTrip) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32, DType::kF8E4M3, DType::kI32, DType::kI64, DType::kU8,
                  DType::kI8}) {
    DType back;
    ASSERT_TRUE(parse_dtype(dtype_name(d), &back));
    EXPECT_EQ(back, d);
  }
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF8E4M3), 1u);
  EXPECT_EQ(dtype_size(DType::kI64), 8u);
  DType d;
  EXPECT_FALSE(parse_dtype("F8_E5M3", &d));
}

TEST(Safetensors, AcceptsEmptyTensorsAndEmptyFiles) {
  auto header = parse(file_bytes("{}", {}));
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  EXPECT_TRUE(header->tensors.empty());
  std::vector<RawTensor> empty = {{"e", "BF16", {0, 4}, {}}, {"x", "U8", {3}, {1, 2, 3}}};
  EXPECT_TRUE(parse(file_bytes(empty)).ok());
}

TEST(Safetensors, RejectsHeaderLengthPastTheEnd) {
  auto bytes = file_bytes(two_tensors());
  bytes[0] = 0xff;
  bytes[3] = 0x01;
  expect_error(parse(bytes).status(), {"header length", "past the end"});
  expect_error(parse(std::vector<uint8_t>{1, 0, 0}).status(), {"too short"});
}

TEST(Safetensors, RejectsBadJson) {
  expect_error(parse(file_bytes("{\"a\": ", {})).status(), {"not valid JSON"});
  expect_error(parse(file_bytes("[1, 2]", {})).status(), {"not a JSON object"});
  expect_error(parse(file_bytes("{\"a.weight\": 3}", {})).status(), {"a.weight", "not an object"});
  expect_error(parse(file_bytes("{\"__metadata__\": [1]}", {})).status(), {"__metadata__"});
}

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", {2}}, {"data_offsets", {24, 40}}})).status(),
               {"tensor 'b.bias'", "out of range"});
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", {2}}, {"data_offsets", {32, 24}}})).status(),
               {"tensor 'b.bias'", "end before begin"});
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", {2}}, {"data_offsets", {24}}})).status(),
               {"tensor 'b.bias'", "data_offsets"});
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", {2}}, {"data_offsets", {-8, 0}}})).status(),
               {"tensor 'b.bias'", "data_offsets"});
}

TEST(Safetensors, RejectsOverlappingOffsets) {
  auto tensors = two_tensors();
  tensors.push_back({"c", "I32", {2}, to_bytes(std::vector<int32_t>{1, 2})});
  nlohmann::json header = testing::header_for(tensors);
  header["c"]["data_offsets"] = {20, 28};  // overlaps both a.weight [0,24) and b.bias [24,32)
  auto status = parse(file_bytes(header.dump(), testing::data_for(tensors))).status();
  expect_error(status, {"overlap", "tensor '"});
}

TEST(Safetensors, RejectsHolesAndUncoveredBytes) {
  auto tensors = two_tensors();
  nlohmann::json header = testing::header_for(tensors);
  header["b.bias"]["data_offsets"] = {28, 36};
  auto data = testing::data_for(tensors);
  data.resize(36);
  expect_error(parse(file_bytes(header.dump(), data)).status(), {"tensor 'b.bias'", "hole"});

  auto trailing = testing::data_for(tensors);
  trailing.resize(trailing.size() + 5);
  expect_error(parse(file_bytes(testing::header_for(tensors).dump(), trailing)).status(),
               {"cover only 32", "tensor 'b.bias'"});
}

TEST(Safetensors, RejectsUnknownDType) {
  expect_error(parse(with_entry("b.bias", {{"dtype", "Q4_K"}, {"shape", {2}}, {"data_offsets", {24, 32}}})).status(),
               {"tensor 'b.bias'", "unknown dtype 'Q4_K'"});
  expect_error(parse(with_entry("b.bias", {{"dtype", 4}, {"shape", {2}}, {"data_offsets", {24, 32}}})).status(),
               {"tensor 'b.bias'", "dtype"});
}

TEST(Safetensors, RejectsShapeByteCountMismatch) {
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", {3}}, {"data_offsets", {24, 32}}})).status(),
               {"tensor 'b.bias'", "needs 3 x 4 bytes", "hold 8"});
  expect_error(parse(with_entry("b.bias", {{"dtype", "I64"}, {"shape", {2}}, {"data_offsets", {24, 32}}})).status(),
               {"tensor 'b.bias'", "I64"});
}

TEST(Safetensors, RejectsNonIntegerShapes) {
  for (const nlohmann::json& shape : {nlohmann::json{2.5}, nlohmann::json{-2}, nlohmann::json{"2"},
                                      nlohmann::json{nullptr}, nlohmann::json("2")}) {
    auto status =
        parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", shape}, {"data_offsets", {24, 32}}})).status();
    expect_error(status, {"tensor 'b.bias'", "shape"});
  }
  // 2^62 * 2^62 elements overflow 64 bits.
  auto huge = nlohmann::json::array({uint64_t{1} << 62, uint64_t{1} << 62});
  expect_error(parse(with_entry("b.bias", {{"dtype", "I32"}, {"shape", huge}, {"data_offsets", {24, 32}}})).status(),
               {"tensor 'b.bias'", "overflow"});
}

TEST(Safetensors, FileViewsPointIntoTheMapping) {
  TempDir dir;
  testing::write_file(dir / "x.safetensors", file_bytes(two_tensors()));
  auto file = SafetensorsFile::open(dir / "x.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  auto view = (*file)->view("b.bias");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->dtype, DType::kI32);
  EXPECT_EQ(view->bytes, 8u);
  EXPECT_GE(view->data, (*file)->mapping());
  EXPECT_LE(view->data + view->bytes, (*file)->mapping() + (*file)->size());
  int32_t second;
  std::memcpy(&second, view->data + 4, 4);
  EXPECT_EQ(second, 9);
  expect_error((*file)->view("nope").status(), {"x.safetensors", "tensor 'nope'", "not found"});
}

TEST(Safetensors, FileErrorsNameTheFileAndTensor) {
  TempDir dir;
  auto bytes = file_bytes(two_tensors());
  bytes.resize(bytes.size() - 3);  // truncated inside b.bias
  testing::write_file(dir / "trunc.safetensors", bytes);
  auto status = SafetensorsFile::open(dir / "trunc.safetensors").status();
  expect_error(status, {"trunc.safetensors", "tensor 'b.bias'", "out of range"});
  EXPECT_EQ(status.code(), Code::kCorrupt);

  testing::write_file(dir / "tiny.safetensors", {1, 2, 3});
  expect_error(SafetensorsFile::open(dir / "tiny.safetensors").status(), {"tiny.safetensors", "too short"});
  testing::write_file(dir / "empty.safetensors", {});
  expect_error(SafetensorsFile::open(dir / "empty.safetensors").status(), {"empty.safetensors"});
  auto missing = SafetensorsFile::open(dir / "missing.safetensors").status();
  expect_error(missing, {"missing.safetensors"});
  EXPECT_EQ(missing.code(), Code::kNotFound);
}

TEST(Safetensors, EveryShippedFileParses) {
  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(K2_TEST_DATA_DIR "/models")) {
    if (entry.path().extension() != ".safetensors") continue;
    auto file = SafetensorsFile::open(entry.path());
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    EXPECT_FALSE((*file)->header().tensors.empty()) << entry.path();
    ++files;
  }
  EXPECT_GT(files, 8);
}

}  // namespace
}  // namespace k2
