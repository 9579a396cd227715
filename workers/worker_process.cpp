#include "workers/worker_process.h"

#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/option_table.h"
#include "enginecore/protocol/zmq_channel.h"
#include "shm/numa.h"
#include "shm/ring.h"
#include "shm/segment.h"
#include "workers/generate.h"
#include "workers/model_runner.h"

namespace k2 {
namespace {

using namespace std::chrono_literals;

struct WorkerArgs {
  std::string handshake;
  int64_t rank = 0;
  int64_t parent_pid = 0;
};

const OptionTable<WorkerArgs>& worker_table() {
  static const auto table = [] {
    OptionTable<WorkerArgs> t;
    t.add("--handshake", &WorkerArgs::handshake, "the enginecore's handshake ROUTER address")
        .add("--rank", &WorkerArgs::rank, "this worker's rank")
        .add("--parent-pid", &WorkerArgs::parent_pid, "the enginecore's pid");
    return t;
  }();
  return table;
}

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop.store(true); }

uint64_t shm_available_bytes() {
  struct statvfs st {};
  if (::statvfs("/dev/shm", &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Everything the worker holds once initialized; destroyed (segment unlinked) on return.
struct WorkerState {
  EngineConfig config;
  std::unique_ptr<DeepSeekV3> model;
  Segment kv_segment;
  std::optional<LatentKvCache> cache;
  int64_t num_blocks = 0;
  NumaPlacement placement;
};

// Before anything is allocated: the weights and the KV arena then land on the worker's node,
// and the model's thread pool (one thread per CPU it may use) on its CPUs.
Status place_worker(uint32_t rank, WorkerState& w) {
  const char* env = std::getenv("VLLM_CPU_OMP_THREADS_BIND");
  const std::string spec = env != nullptr && *env != '\0' ? env : "auto";
  K2_ASSIGN_OR_RETURN(w.placement, plan_numa_placement(spec, static_cast<int>(rank)));
  K2_RETURN_IF_ERROR(apply_numa_placement(w.placement));
  spdlog::info("worker {}: {} of {} NUMA node(s) (VLLM_CPU_OMP_THREADS_BIND={})", rank, describe(w.placement),
               numa_node_count(), spec);
  return Status::ok_status();
}

Result<EngineConfig> config_from_json(const std::string& text) {
  EngineConfig cfg;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("the engine config is not a JSON object");
  K2_RETURN_IF_ERROR(engine_config_table().apply_json(j, cfg));
  return cfg;
}

Status init_worker(const protocol::EngineConfigMsg& msg, uint32_t rank, WorkerState& w) {
  K2_ASSIGN_OR_RETURN(w.config, config_from_json(msg.config_json));
  const EngineConfig& cfg = w.config;
  K2_ASSIGN_OR_RETURN(WeightLayouts layouts, weight_layouts_for(cfg.dtype, cfg.quantization.value_or("")));
  spdlog::info("--dtype {}{}: dense weights {}, routed experts {}", cfg.dtype,
               cfg.quantization ? " --quantization " + *cfg.quantization : std::string(),
               weight_layout_name(layouts.dense), weight_layout_name(layouts.experts));
  K2_RETURN_IF_ERROR(place_worker(rank, w));
  K2_ASSIGN_OR_RETURN(w.model, load_model(cfg.model, ProgressStyle::kAuto, cfg.load_format == "dummy", layouts));
  const ModelConfig& mc = w.model->config();
  const int64_t row_dim = w.model->cache_row_dim();
  KvSizingInput in;
  in.bytes_per_block = LatentKvCache::bytes_needed(mc.num_hidden_layers, 1, cfg.block_size, row_dim);
  in.mem_available = mem_available_bytes();
  in.shm_available = shm_available_bytes();
  in.block_size = cfg.block_size;
  in.max_model_len = cfg.max_model_len.value_or(mc.max_position_embeddings);
  in.max_num_seqs = cfg.max_num_seqs;
  in.kv_cache_memory = cfg.kv_cache_memory;
  in.memory_utilization = cfg.gpu_memory_utilization;
  K2_ASSIGN_OR_RETURN(w.num_blocks, kv_cache_blocks(in));
  const uint64_t bytes = LatentKvCache::bytes_needed(mc.num_hidden_layers, w.num_blocks, cfg.block_size, row_dim);
  K2_ASSIGN_OR_RETURN(w.kv_segment, Segment::create(msg.run_id, "kv-worker" + std::to_string(rank), bytes,
                                                      w.placement.node));
  K2_ASSIGN_OR_RETURN(LatentKvCache cache,
                      LatentKvCache::create_in(std::span<std::byte>(w.kv_segment.data(), w.kv_segment.size()),
                                               mc.num_hidden_layers, w.num_blocks, cfg.block_size, row_dim));
  w.cache.emplace(std::move(cache));
  spdlog::info("worker {}: KV cache of {} blocks x {} tokens ({:.1f} MiB) in {}", rank, w.num_blocks,
               cfg.block_size, static_cast<double>(bytes) / (1 << 20), w.kv_segment.name());
  return Status::ok_status();
}

protocol::ReadyMsg ready_message(uint32_t rank, const WorkerState& w) {
  const ModelConfig& mc = w.model->config();
  nlohmann::json facts = {{"eos_token_ids", mc.eos_token_ids},
                          {"max_position_embeddings", mc.max_position_embeddings},
                          {"vocab_size", mc.vocab_size},
                          {"pid", ::getpid()},
                          {"numa_node", w.placement.node},
                          {"kv_numa_bound", w.kv_segment.numa_bound()}};
  protocol::ReadyMsg ready;
  ready.rank = rank;
  ready.num_kv_blocks = static_cast<uint64_t>(w.num_blocks);
  ready.block_size = static_cast<uint32_t>(w.config.block_size);
  ready.config_json = facts.dump();
  ready.shm_segments = {w.kv_segment.name()};
  return ready;
}

// One plan from the ring: [frame 0 (2 bytes) | msgpack body], as codec.h frames it.
Result<protocol::StepPlan> decode_plan(std::span<const std::byte> bytes) {
  if (bytes.size() < 2) return corrupt("ring message too short");
  const char* p = reinterpret_cast<const char*>(bytes.data());
  std::string_view frames[2] = {std::string_view(p, 2), std::string_view(p + 2, bytes.size() - 2)};
  K2_ASSIGN_OR_RETURN(protocol::Message m, protocol::decode(std::span<const std::string_view>(frames, 2)));
  auto* plan = std::get_if<protocol::StepPlan>(&m);
  if (plan == nullptr) return corrupt("ring message is not a StepPlan");
  return std::move(*plan);
}

// Serves plans until the ring closes (0), SIGTERM (0) or the enginecore dies (1).
int serve_plans(RingReader& ring, zmq::socket_t& results, ModelRunner& runner, uint32_t rank, pid_t parent) {
  while (!g_stop.load()) {
    auto got = ring.acquire(500ms);
    if (!got.ok()) {
      if (got.status().code() != Code::kUnavailable) {
        spdlog::error("worker {}: {}", rank, got.status().to_string());
        return 1;
      }
      if (::getppid() != parent) return 1;
      if (got.status().message().ends_with(" closed")) return 0;
      continue;  // a timeout: idle
    }
    Result<protocol::StepPlan> plan = decode_plan(*got);
    ring.release();
    protocol::StepResult result;
    result.worker_rank = rank;
    if (!plan.ok()) {
      result.error = plan.status().to_string();
    } else {
      result.step_id = plan->step_id;
      Result<protocol::StepResult> r = runner.execute(*plan);
      if (r.ok()) result = std::move(*r);
      else result.error = r.status().to_string();
    }
    if (!result.error.empty()) spdlog::error("worker {}: step failed: {}", rank, result.error);
    Status s = protocol::send(results, result);
    if (!s.ok()) {
      spdlog::error("worker {}: cannot send a step result: {}", rank, s.to_string());
      return 1;
    }
  }
  return 0;
}

int run_worker(const WorkerArgs& a) {
  const uint32_t rank = static_cast<uint32_t>(a.rank);
  const pid_t parent = static_cast<pid_t>(a.parent_pid);
  zmq::context_t context(1);
  protocol::SocketOptions dealer_options;
  dealer_options.routing_id = protocol::rank_identity(rank);
  auto dealer = protocol::make_socket(context, zmq::socket_type::dealer, dealer_options);
  Status s = dealer.ok() ? protocol::connect_endpoint(*dealer, a.handshake) : dealer.status();
  if (!s.ok()) {
    spdlog::error("worker {}: {}", rank, s.to_string());
    return 1;
  }
  protocol::Hello hello;
  hello.kind = protocol::ProcessKind::kWorker;
  hello.rank = rank;
  hello.pid = ::getpid();
  auto msg = protocol::handshake_hello(*dealer, hello, std::chrono::minutes(5));
  if (!msg.ok()) {
    spdlog::error("worker {}: handshake: {}", rank, msg.status().to_string());
    return 1;
  }
  WorkerState w;
  s = init_worker(*msg, rank, w);
  if (s.ok() && (msg->input_addresses.empty() || msg->output_addresses.empty()))
    s = invalid_argument("the enginecore sent no ring or result address");
  Result<RingReader> ring = s.ok() ? RingReader::open(msg->input_addresses[0], rank) : Result<RingReader>(s);
  protocol::SocketOptions push_options;
  push_options.linger_ms = 2000;
  auto results = protocol::make_socket(context, zmq::socket_type::push, push_options);
  if (ring.ok() && results.ok()) s = protocol::connect_endpoint(*results, msg->output_addresses[0]);
  else s = ring.ok() ? results.status() : ring.status();
  if (s.ok()) s = protocol::handshake_ready(*dealer, ready_message(rank, w));
  if (!s.ok()) {
    spdlog::error("worker {}: initialization failed: {}", rank, s.to_string());
    return 1;
  }
  ModelRunner runner(*w.model, *w.cache, rank);
  return serve_plans(*ring, *results, runner, rank, parent);
}

}  // namespace

uint64_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return value * 1024;
  }
  return 0;
}

Result<int64_t> kv_cache_blocks(const KvSizingInput& in) {
  if (in.bytes_per_block == 0 || in.block_size <= 0 || in.max_model_len <= 0)
    return invalid_argument("kv cache sizing: bad model or block size");
  uint64_t budget = in.kv_cache_memory
                        ? static_cast<uint64_t>(std::max<int64_t>(*in.kv_cache_memory, 0))
                        : static_cast<uint64_t>(in.memory_utilization * static_cast<double>(in.mem_available));
  if (in.shm_available > 0) budget = std::min(budget, in.shm_available / 10 * 9);
  int64_t blocks = static_cast<int64_t>(budget / in.bytes_per_block);
  const int64_t per_seq = (in.max_model_len + in.block_size - 1) / in.block_size;
  const int64_t useful = per_seq * std::max<int64_t>(in.max_num_seqs, 1) + 1;  // + the null block
  blocks = std::min(blocks, useful);
  if (blocks < per_seq + 1)
    return out_of_range("the KV cache budget (" + std::to_string(budget) + " bytes) holds " + std::to_string(blocks) +
                        " blocks, fewer than one sequence of max_model_len " + std::to_string(in.max_model_len) +
                        " needs (" + std::to_string(per_seq + 1) +
                        "); raise --kv-cache-memory / --gpu-memory-utilization or lower --max-model-len");
  return blocks;
}

int worker_main(const std::vector<std::string>& args) {
  WorkerArgs a;
  std::vector<std::string> positionals;
  Status s = worker_table().parse(args, a, &positionals);
  if (s.ok() && (a.handshake.empty() || a.rank < 0 || a.parent_pid <= 0))
    s = invalid_argument("worker needs --handshake, --rank and --parent-pid (it is started by k2serve-enginecore)");
  if (!s.ok()) {
    spdlog::error("worker: {}", s.to_string());
    return 2;
  }
  s = die_with_parent(static_cast<pid_t>(a.parent_pid));
  if (!s.ok()) {
    spdlog::error("worker: {}", s.to_string());
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  return run_worker(a);
}

}  // namespace k2
