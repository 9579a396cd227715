#include "workers/loader/checkpoint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

namespace k2 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
constexpr uint64_t kPrefaultChunk = 8ull << 20;  // progress granularity

std::string tensor_label(const std::string& name) { return "tensor '" + name + "'"; }

// A weight_map value must name a file inside the model directory.
bool is_plain_relative(const std::string& shard) {
  if (shard.empty()) return false;
  const fs::path p(shard);
  if (p.is_absolute()) return false;
  for (const fs::path& part : p) {
    if (part == "..") return false;
  }
  return true;
}

Result<json> read_json(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return io_error(path.string() + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  json root = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return corrupt(path.string() + ": not valid JSON");
  return root;
}

}  // namespace

struct Checkpoint::Impl {
  fs::path dir;
  fs::path where;  // the index or the single file, for "not found" messages
  std::string prefix;
  int64_t fp8_block_out = 128, fp8_block_in = 128, int4_group = 32;
  std::vector<std::unique_ptr<SafetensorsFile>> shards;
  std::unordered_map<std::string, const SafetensorsFile*> tensors;  // full name -> shard

  Status open_index(const fs::path& index_path);
  Status open_single(const fs::path& file_path);
  const SafetensorsFile* find(const std::string& name) const {
    auto it = tensors.find(prefix + name);
    return it == tensors.end() ? nullptr : it->second;
  }
};

Status Checkpoint::Impl::open_index(const fs::path& index_path) {
  K2_ASSIGN_OR_RETURN(json root, read_json(index_path));
  const std::string where = index_path.string();
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object()) {
    return corrupt(where + ": no 'weight_map' object");
  }
  std::map<std::string, std::string> shard_of;  // sorted: deterministic shard order
  std::map<std::string, std::string> first_tensor_of_shard;
  for (const auto& [name, value] : root["weight_map"].items()) {
    if (!value.is_string() || !is_plain_relative(value.get<std::string>())) {
      return corrupt(where + ": " + tensor_label(name) + " maps to " + value.dump() + ", not a file name in " + dir.string());
    }
    shard_of[name] = value.get<std::string>();
    first_tensor_of_shard.emplace(value.get<std::string>(), name);
  }
  if (shard_of.empty()) return corrupt(where + ": 'weight_map' is empty");
  std::map<std::string, const SafetensorsFile*> opened;
  for (const auto& [shard, example] : first_tensor_of_shard) {
    const fs::path path = dir / shard;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return not_found(where + ": shard '" + shard + "' (holding " + tensor_label(example) + ") does not exist at " +
                       path.string());
    }
    K2_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(path));
    opened[shard] = file.get();
    shards.push_back(std::move(file));
  }
  for (const auto& [name, shard] : shard_of) {
    const SafetensorsFile* file = opened.at(shard);
    if (!file->has(name)) {
      return corrupt(where + ": " + tensor_label(name) + " is mapped to " + file->path().string() +
                     ", which does not contain it");
    }
    tensors.emplace(name, file);
  }
  return Status::ok_status();
}

Status Checkpoint::Impl::open_single(const fs::path& file_path) {
  K2_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(file_path));
  for (const auto& entry : file->header().tensors) tensors.emplace(entry.first, file.get());
  shards.push_back(std::move(file));
  return Status::ok_status();
}

Result<Checkpoint> Checkpoint::open(const fs::path& dir, std::string tensor_prefix) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->prefix = std::move(tensor_prefix);
  std::error_code ec;
  if (fs::exists(dir / kIndexName, ec)) {
    impl->where = dir / kIndexName;
    K2_RETURN_IF_ERROR(impl->open_index(impl->where));
  } else if (fs::exists(dir / kSingleName, ec)) {
    impl->where = dir / kSingleName;
    K2_RETURN_IF_ERROR(impl->open_single(impl->where));
  } else {
    return not_found(dir.string() + ": neither " + kIndexName + " nor " + kSingleName + " exists");
  }
  return Checkpoint(std::move(impl));
}

Result<Checkpoint> Checkpoint::open(const fs::path& dir, const ModelConfig& config) {
  K2_ASSIGN_OR_RETURN(Checkpoint ckpt, open(dir, config.tensor_prefix));
  ckpt.impl_->fp8_block_out = config.fp8_block_out;
  ckpt.impl_->fp8_block_in = config.fp8_block_in;
  ckpt.impl_->int4_group = config.int4_group_size;
  return ckpt;
}

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

bool Checkpoint::has(const std::string& name) const { return impl_->find(name) != nullptr; }

Result<TensorView> Checkpoint::view(const std::string& name) const {
  const SafetensorsFile* file = impl_->find(name);
  if (!file) return not_found(impl_->where.string() + ": " + tensor_label(impl_->prefix + name) + " not found");
  return file->view(impl_->prefix + name);
}

fs::path Checkpoint::file_of(const std::string& name) const {
  const SafetensorsFile* file = impl_->find(name);
  return file ? file->path() : fs::path();
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  for (const auto& entry : impl_->tensors) {
    if (entry.first.compare(0, impl_->prefix.size(), impl_->prefix) == 0) {
      names.push_back(entry.first.substr(impl_->prefix.size()));
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<TensorF32> Checkpoint::tensor_f32(const std::string& name) const {
  K2_ASSIGN_OR_RETURN(TensorView v, view(name));
  auto t = to_f32(v);
  if (!t.ok()) return t.status().with_context(file_of(name).string());
  return t;
}

Result<std::vector<int64_t>> Checkpoint::tensor_i64(const std::string& name) const {
  K2_ASSIGN_OR_RETURN(TensorView v, view(name));
  auto t = to_i64(v);
  if (!t.ok()) return t.status().with_context(file_of(name).string());
  return t;
}

Result<TensorF32> Checkpoint::linear_f32(const std::string& module) const {
  const std::string packed_name = module + ".weight_packed";
  if (has(packed_name)) {
    K2_ASSIGN_OR_RETURN(TensorView packed, view(packed_name));
    K2_ASSIGN_OR_RETURN(TensorView scale, view(module + ".weight_scale"));
    K2_ASSIGN_OR_RETURN(TensorView shape, view(module + ".weight_shape"));
    auto t = dequant_int4_packed(packed, scale, shape, impl_->int4_group);
    if (!t.ok()) return t.status().with_context(file_of(packed_name).string());
    return t;
  }
  const std::string weight_name = module + ".weight";
  K2_ASSIGN_OR_RETURN(TensorView weight, view(weight_name));
  const std::string where = file_of(weight_name).string();
  if (weight.dtype == DType::kF8E4M3) {
    const std::string scale_name = weight_name + "_scale_inv";
    if (!has(scale_name)) {
      return not_found(where + ": FP8 " + tensor_label(weight.name) + " has no " + tensor_label(impl_->prefix + scale_name));
    }
    K2_ASSIGN_OR_RETURN(TensorView scale, view(scale_name));
    auto t = dequant_fp8_block(weight, scale, impl_->fp8_block_out, impl_->fp8_block_in);
    if (!t.ok()) return t.status().with_context(where);
    return t;
  }
  if (weight.shape.size() != 2) {
    return invalid_argument(where + ": " + tensor_label(weight.name) + " has rank " + std::to_string(weight.shape.size()) +
                            ", a Linear weight has rank 2");
  }
  auto t = to_f32(weight);
  if (!t.ok()) return t.status().with_context(where);
  return t;
}

uint64_t Checkpoint::linear_bytes(const std::string& module) const {
  uint64_t total = 0;
  for (const char* suffix : {".weight", ".weight_scale_inv", ".weight_packed", ".weight_scale", ".weight_shape"}) {
    if (const SafetensorsFile* file = impl_->find(module + suffix)) {
      const TensorEntry& e = file->header().tensors.at(impl_->prefix + module + suffix);
      total += e.end - e.begin;
    }
  }
  return total;
}

Status Checkpoint::prefault(const LoadProgress& on_progress) const {
  const auto start = std::chrono::steady_clock::now();
  const uint64_t total = total_bytes();
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t done = 0;
  uint64_t sink = 0;  // volatile reads through `bytes` below fault every page in
  for (const auto& shard : impl_->shards) {
    // Readahead hint only; failure just means slower page faults below.
    (void)::madvise(const_cast<uint8_t*>(shard->mapping()), shard->size(), MADV_WILLNEED);
    const volatile uint8_t* bytes = shard->mapping();
    for (uint64_t chunk = 0; chunk < shard->size(); chunk += kPrefaultChunk) {
      const uint64_t end = std::min(shard->size(), chunk + kPrefaultChunk);
      for (uint64_t off = chunk; off < end; off += page) sink += bytes[off];
      done += end - chunk;
      if (on_progress) {
        on_progress(done, total, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    }
  }
  (void)sink;  // the reads themselves are volatile, so they happen; the sum is not needed
  return Status::ok_status();
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& shard : impl_->shards) total += shard->size();
  return total;
}

const fs::path& Checkpoint::dir() const { return impl_->dir; }
const std::string& Checkpoint::tensor_prefix() const { return impl_->prefix; }

std::vector<const SafetensorsFile*> Checkpoint::shards() const {
  std::vector<const SafetensorsFile*> out;
  for (const auto& shard : impl_->shards) out.push_back(shard.get());
  return out;
}

}  // namespace k2
