#include "workers/models/weight_loader.h"

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
  if (progress_ == nullptr || !checkpoint_.has(name)) return;
  Result<TensorView> view = checkpoint_.view(name);
  if (view.ok()) progress_->advance(view->bytes);
}

Result<TensorF32> WeightLoader::linear(const std::string& module, int64_t out, int64_t in) {
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_.linear_f32(module));
  K2_RETURN_IF_ERROR(check_shape(module + ".weight", t, {out, in}));
  for (const char* suffix : {".weight", ".weight_scale_inv", ".weight_packed", ".weight_scale", ".weight_shape"}) {
    account(module + suffix);
  }
  return t;
}

Result<TensorF32> WeightLoader::tensor(const std::string& name, std::initializer_list<int64_t> shape) {
  K2_ASSIGN_OR_RETURN(TensorF32 t, checkpoint_.tensor_f32(name));
  K2_RETURN_IF_ERROR(check_shape(name, t, std::vector<int64_t>(shape)));
  account(name);
  return t;
}

}  // namespace k2
