#include "workers/models/weight_loader.h"

#include <cmath>
#include <functional>
#include <random>
#include <vector>

namespace k2 {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Status check_shape(const std::string& name, const TensorF32& t, const std::vector<int64_t>& want) {
  if (t.shape != want) {
    return invalid_argument("tensor " + name + " has shape " + shape_string(t.shape) + ", the config implies " +
                            shape_string(want));
  }
  return Status::ok_status();
}

}  // namespace

void WeightLoader::account(const std::string& name) {
  if (progress_ == nullptr || !checkpoint_->has(name)) return;
  Result<TensorView> view = checkpoint_->view(name);
  if (view.ok()) progress_->advance(view->bytes);
}

TensorF32 WeightLoader::dummy(const std::string& name, std::vector<int64_t> shape) const {
  TensorF32 t;
  t.shape = std::move(shape);
  t.data.resize(static_cast<size_t>(t.numel()));
  const bool is_norm = name.ends_with("norm.weight");
  const bool is_bias = name.ends_with("e_score_correction_bias");
  if (is_norm || is_bias) {
    std::fill(t.data.begin(), t.data.end(), is_norm ? 1.0f : 0.0f);
    return t;
  }
  // Uniform in +-1/sqrt(fan_in) keeps activations at unit scale through the layers.
  const float bound = 1.0f / std::sqrt(static_cast<float>(t.shape.back()));
  std::mt19937_64 rng(seed_ ^ std::hash<std::string>{}(name));
  std::uniform_real_distribution<float> dist(-bound, bound);
  for (float& v : t.data) v = dist(rng);
  return t;
}

Result<TensorF32> WeightLoader::linear(const std::string& module, int64_t out, int64_t in) {
  if (checkpoint_ == nullptr) return dummy(module + ".weight", {out, in});
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_->linear_f32(module));
  K2_RETURN_IF_ERROR(check_shape(module + ".weight", t, {out, in}));
  for (const char* suffix : {".weight", ".weight_scale_inv", ".weight_packed", ".weight_scale", ".weight_shape"}) {
    account(module + suffix);
  }
  return t;
}

Result<TensorF32> WeightLoader::tensor(const std::string& name, std::initializer_list<int64_t> shape) {
  if (checkpoint_ == nullptr) return dummy(name, std::vector<int64_t>(shape));
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_->tensor_f32(name));
  K2_RETURN_IF_ERROR(check_shape(name, t, std::vector<int64_t>(shape)));
  account(name);
  return t;
}

}  // namespace k2
