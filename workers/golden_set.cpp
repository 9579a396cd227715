#include "workers/golden_set.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace k2 {
namespace {

using nlohmann::json;

Result<GoldenCase> parse_case(const json& j) {
  GoldenCase c;
  c.name = j.at("name").get<std::string>();
  c.prompts = j.at("prompts").get<std::vector<std::vector<int32_t>>>();
  c.decode_steps = j.at("decode_steps").get<int64_t>();
  const json& run = j.at("runs").at("fp32");
  c.greedy = run.at("greedy").get<std::vector<std::vector<int32_t>>>();
  c.decode_gaps = run.at("top2_gap_decode").get<std::vector<std::vector<double>>>();
  c.tensors = run.at("tensors").get<std::vector<std::string>>();
  if (j.contains("chunks") && !j.at("chunks").is_null()) {
    for (const json& ch : j.at("chunks")) c.chunks.emplace_back(ch.at(0).get<int64_t>(), ch.at(1).get<int64_t>());
  }
  const std::string where = "golden.json case " + c.name + ": ";
  if (c.prompts.empty()) return corrupt(where + "no prompts");
  if (c.decode_steps < 0) return corrupt(where + "negative decode_steps");
  if (c.greedy.size() != c.prompts.size() || c.decode_gaps.size() != c.prompts.size()) {
    return corrupt(where + "greedy / top2_gap_decode do not have one entry per prompt");
  }
  for (size_t p = 0; p < c.prompts.size(); ++p) {
    if (c.prompts[p].empty()) return corrupt(where + "empty prompt");
    if (static_cast<int64_t>(c.greedy[p].size()) != c.decode_steps) {
      return corrupt(where + "greedy length differs from decode_steps");
    }
    if (static_cast<int64_t>(c.decode_gaps[p].size()) < c.decode_steps) {
      return corrupt(where + "top2_gap_decode is shorter than decode_steps");
    }
  }
  for (size_t p = 0; p < c.prompts.size() && !c.chunks.empty(); ++p) {
    int64_t next = 0;
    for (const auto& [a, b] : c.chunks) {
      if (a != next || b <= a) return corrupt(where + "chunks are not contiguous non-empty ranges from 0");
      next = b;
    }
    if (next != static_cast<int64_t>(c.prompts[p].size())) return corrupt(where + "chunks do not cover the prompt");
  }
  return c;
}

}  // namespace

Status GoldenSet::parse_json(const std::string& text) {
  try {
    const json g = json::parse(text);
    if (g.contains("suggested_tolerances")) {
      logits_atol_ = g.at("suggested_tolerances").value("fp32_engine_vs_fp32_golden_logits_atol", 1e-3);
    }
    if (g.contains("text_prefix") && g.at("text_prefix").is_string()) text_prefix_ = g.at("text_prefix");
    if (g.contains("rope")) {
      inv_freq_ = g.at("rope").at("inv_freq").get<std::vector<float>>();
      if (g.at("rope").contains("softmax_scale")) softmax_scale_ = g.at("rope").at("softmax_scale").get<double>();
    }
    if (g.contains("int4") && g.at("int4").is_object() && g.at("int4").contains("check_tensors")) {
      int4_checks_ = g.at("int4").at("check_tensors").get<std::vector<std::string>>();
    }
    for (const json& c : g.at("cases")) {
      K2_ASSIGN_OR_RETURN(GoldenCase parsed, parse_case(c));
      cases_.push_back(std::move(parsed));
    }
  } catch (const json::exception& e) {
    return corrupt(std::string("golden.json: ") + e.what());
  }
  return Status::ok_status();
}

Result<GoldenSet> GoldenSet::open(const std::filesystem::path& dir) {
  std::ifstream in(dir / "golden.json");
  if (!in) return not_found("cannot read " + (dir / "golden.json").string());
  std::stringstream text;
  text << in.rdbuf();
  GoldenSet set;
  K2_RETURN_IF_ERROR(set.parse_json(text.str()));
  K2_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(dir / "golden.safetensors"));
  set.tensors_ = std::move(file);
  if (set.int4_checks_.empty()) {
    for (const auto& [name, entry] : set.tensors_->header().tensors) {
      if (name.starts_with("int4_check.")) set.int4_checks_.push_back(name);
    }
  }
  return set;
}

bool GoldenSet::has(const std::string& name) const { return tensors_->header().tensors.contains(name); }

Result<TensorF32> GoldenSet::f32(const std::string& name) const {
  K2_ASSIGN_OR_RETURN(TensorView view, tensors_->view(name));
  return to_f32(view);
}

Result<std::vector<int64_t>> GoldenSet::i64(const std::string& name) const {
  K2_ASSIGN_OR_RETURN(TensorView view, tensors_->view(name));
  return to_i64(view);
}

}  // namespace k2
