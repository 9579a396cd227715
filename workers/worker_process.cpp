#include "workers/worker_process.h"

#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/option_table.h"
#include "enginecore/protocol/tp_nodes.h"
#include "enginecore/protocol/zmq_channel.h"
#include "shm/numa.h"
#include "shm/segment.h"
#include "workers/cross_node_group.h"
#include "workers/expert_group.h"
#include "workers/generate.h"
#include "workers/model_runner.h"
#include "workers/parallel/shm_communicator.h"
#include "workers/plan_source.h"
#include "workers/vision/encoder_cache.h"
#include "workers/vision/moonvit.h"
#include "workers/vision/vision_encoder.h"

namespace k2 {
namespace {

using namespace std::chrono_literals;

struct WorkerArgs {
  std::string handshake;
  int64_t rank = 0;
  int64_t parent_pid = 0;
  int64_t tp_size = 1;        // workers of this engine (tensor/expert-parallel ranks)
  int64_t tp_leader_pid = 0;  // rank 0's pid: its segment holds the group's all-reduce
  int64_t dp_rank = 0;        // the engine's data-parallel rank (experts across DP ranks)
  std::string control_plane_key_file;  // a group across nodes with CURVE (tp_nodes.h)
};

const OptionTable<WorkerArgs>& worker_table() {
  static const auto table = [] {
    OptionTable<WorkerArgs> t;
    t.add("--handshake", &WorkerArgs::handshake, "the enginecore's handshake ROUTER address")
        .add("--rank", &WorkerArgs::rank, "this worker's rank")
        .add("--parent-pid", &WorkerArgs::parent_pid, "the enginecore's pid")
        .add("--tp-size", &WorkerArgs::tp_size, "tensor-parallel ranks of this engine")
        .add("--tp-leader-pid", &WorkerArgs::tp_leader_pid, "rank 0's pid (ranks > 0)")
        .add("--dp-rank", &WorkerArgs::dp_rank, "the enginecore's data-parallel rank")
        .add("--control-plane-key-file", &WorkerArgs::control_plane_key_file, "CURVE keys of the deployment");
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
  std::unique_ptr<Communicator> comm;  // tensor parallelism; outlives the model using it
  std::unique_ptr<Communicator> expert_comm;  // experts across DP ranks (expert_group.h)
  std::unique_ptr<DeepSeekV3> model;
  Segment kv_segment;
  std::optional<LatentKvCache> cache;
  int64_t num_blocks = 0;
  NumaPlacement placement;
  std::unique_ptr<MoonVit> vision;             // multimodal checkpoints only
  EncoderTpMode vision_mode = EncoderTpMode::kWeights;  // --mm-encoder-tp-mode
  std::optional<EncoderCache> encoder_cache;  // with the vision tower
};

// A checkpoint whose config.json has a vision_config gets its vision tower and an encoder
// cache of --mm-processor-cache-gb (never more than a quarter of the free /dev/shm).
Status init_vision(const protocol::EngineConfigMsg& msg, uint32_t rank, WorkerState& w) {
  const EngineConfig& cfg = w.config;
  std::ifstream in(std::filesystem::path(cfg.model) / "config.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("vision_config")) return Status::ok_status();
  K2_ASSIGN_OR_RETURN(VisionConfig vc, VisionConfig::from_dir(cfg.model));
  // weights: this rank's slice of the tower over the TP group; data: the whole tower.
  K2_ASSIGN_OR_RETURN(w.vision_mode, parse_encoder_tp_mode(cfg.mm_encoder_tp_mode));
  const int ranks = w.comm ? w.comm->size() : 1;
  const Shard shard = w.vision_mode == EncoderTpMode::kWeights && ranks > 1 ? Shard{static_cast<int>(rank), ranks}
                                                                             : Shard{};
  Communicator* comm = shard.sharded() ? w.comm.get() : nullptr;
  if (cfg.load_format == "dummy") {
    K2_ASSIGN_OR_RETURN(w.vision, MoonVit::load_dummy(vc, 0, shard, comm));
  } else {
    K2_ASSIGN_OR_RETURN(Checkpoint checkpoint, Checkpoint::open(cfg.model));  // vision_tower.* at the root
    K2_ASSIGN_OR_RETURN(w.vision, MoonVit::load(checkpoint, vc, ProgressStyle::kAuto, shard, comm));
  }
  uint64_t budget = static_cast<uint64_t>(cfg.mm_processor_cache_gb * static_cast<double>(uint64_t{1} << 30));
  if (const uint64_t shm = shm_available_bytes(); shm > 0) budget = std::min(budget, shm / 4);
  K2_ASSIGN_OR_RETURN(EncoderCache cache, EncoderCache::create(msg.run_id, "enc-worker" + std::to_string(rank), budget));
  w.encoder_cache.emplace(std::move(cache));
  spdlog::info("worker {}: vision tower loaded ({} layers, hidden {}, --mm-encoder-tp-mode {}); encoder cache {:.1f} MiB",
               rank, vc.num_layers, vc.hidden_size, encoder_tp_mode_name(w.vision_mode),
               static_cast<double>(budget) / (1 << 20));
  return Status::ok_status();
}

// Before anything is allocated: the weights and the KV arena then land on the worker's node,
// and the model's thread pool (one thread per CPU it may use) on its CPUs.
Status place_worker(uint32_t rank, int world, WorkerState& w) {
  const char* env = std::getenv("VLLM_CPU_OMP_THREADS_BIND");
  const std::string spec = env != nullptr && *env != '\0' ? env : "auto";
  K2_ASSIGN_OR_RETURN(w.placement, plan_numa_placement(spec, static_cast<int>(rank), world));
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

// Rank 0 creates the group's segment; the others open it by rank 0's pid as soon as it
// exists (rank 0 may still be starting).
Status join_tp_group(const protocol::EngineConfigMsg& msg, uint32_t rank, const WorkerArgs& a, WorkerState& w) {
  const int size = static_cast<int>(a.tp_size);
  if (size == 1) return Status::ok_status();
  if (!msg.coordinator_address.empty()) {  // the group spans nodes
    K2_ASSIGN_OR_RETURN(w.comm, join_cross_node_group({.name = "tp",
                                                       .label = "tensor-parallel",
                                                       .store_address = msg.coordinator_address,
                                                       .route_host = w.config.master_addr,
                                                       .route_port = w.config.master_port},
                                                      static_cast<int>(rank), size));
    return Status::ok_status();
  }
  if (rank == 0) {
    K2_ASSIGN_OR_RETURN(w.comm, ShmCommunicator::create(msg.run_id, "tp", size));
    return Status::ok_status();
  }
  K2_ASSIGN_OR_RETURN(std::string name, segment_name(static_cast<pid_t>(a.tp_leader_pid), msg.run_id, "tp"));
  const auto deadline = std::chrono::steady_clock::now() + 2min;
  while (true) {
    Result<std::unique_ptr<ShmCommunicator>> comm = ShmCommunicator::open(name, static_cast<int>(rank));
    if (comm.ok()) {
      w.comm = std::move(comm).value();
      return Status::ok_status();
    }
    if (comm.status().code() != Code::kNotFound || std::chrono::steady_clock::now() > deadline) {
      return comm.status().with_context("joining the tensor-parallel group");
    }
    std::this_thread::sleep_for(20ms);
  }
}

Status init_worker(const protocol::EngineConfigMsg& msg, uint32_t rank, const WorkerArgs& a, WorkerState& w) {
  K2_ASSIGN_OR_RETURN(w.config, config_from_json(msg.config_json));
  const EngineConfig& cfg = w.config;
  K2_ASSIGN_OR_RETURN(WeightLayouts layouts, weight_layouts_for(cfg.dtype, cfg.quantization.value_or("")));
  spdlog::info("--dtype {}{}: dense weights {}, routed experts {}", cfg.dtype,
               cfg.quantization ? " --quantization " + *cfg.quantization : std::string(),
               weight_layout_name(layouts.dense), weight_layout_name(layouts.experts));
  // Placement among this node's workers (the group may span nodes).
  K2_ASSIGN_OR_RETURN(const TpNodes nodes, tp_nodes_of(cfg));
  K2_RETURN_IF_ERROR(place_worker(static_cast<uint32_t>(rank % nodes.per_node), static_cast<int>(nodes.per_node), w));
  K2_RETURN_IF_ERROR(join_tp_group(msg, rank, a, w));
  K2_ASSIGN_OR_RETURN(const Shard shard, worker_shard(cfg, static_cast<int>(rank), static_cast<int>(a.tp_size),
                                                    static_cast<int>(a.dp_rank)));
  K2_ASSIGN_OR_RETURN(w.expert_comm, join_expert_group(cfg, msg.run_id, shard));
  K2_ASSIGN_OR_RETURN(w.model, load_model(cfg.model, ProgressStyle::kAuto, cfg.load_format == "dummy", layouts, shard,
                                          w.comm.get(), w.expert_comm.get()));
  if (shard.sharded() || shard.experts_across_dp()) spdlog::info("worker {}: {}", rank, shard.describe());
  const ModelConfig& mc = w.model->config();
  const int64_t row_dim = w.model->cache_row_dim();
  KvSizingInput in;
  K2_ASSIGN_OR_RETURN(const KvCacheDtype kv_dtype, kv_cache_dtype_for(cfg.kv_cache_dtype));
  in.bytes_per_block = LatentKvCache::bytes_needed(mc.num_hidden_layers, 1, cfg.block_size, row_dim, kv_dtype);
  in.mem_available = mem_available_bytes();
  in.shm_available = shm_available_bytes();
  in.block_size = cfg.block_size;
  in.max_model_len = cfg.max_model_len.value_or(mc.max_position_embeddings);
  in.max_num_seqs = cfg.max_num_seqs;
  in.kv_cache_memory = cfg.kv_cache_memory;
  in.memory_utilization = cfg.gpu_memory_utilization;
  K2_ASSIGN_OR_RETURN(w.num_blocks, kv_cache_blocks(in));
  const uint64_t bytes =
      LatentKvCache::bytes_needed(mc.num_hidden_layers, w.num_blocks, cfg.block_size, row_dim, kv_dtype);
  K2_ASSIGN_OR_RETURN(w.kv_segment, Segment::create(msg.run_id, "kv-worker" + std::to_string(rank), bytes,
                                                      w.placement.node));
  K2_ASSIGN_OR_RETURN(LatentKvCache cache,
                      LatentKvCache::create_in(std::span<std::byte>(w.kv_segment.data(), w.kv_segment.size()),
                                               mc.num_hidden_layers, w.num_blocks, cfg.block_size, row_dim, kv_dtype));
  w.cache.emplace(std::move(cache));
  K2_RETURN_IF_ERROR(init_vision(msg, rank, w));
  spdlog::info("worker {}: KV cache of {} blocks x {} tokens ({:.1f} MiB, {}) in {}", rank, w.num_blocks,
               cfg.block_size, static_cast<double>(bytes) / (1 << 20), kv_cache_dtype_name(kv_dtype),
               w.kv_segment.name());
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
  if (w.encoder_cache && !w.encoder_cache->segment_name().empty())
    ready.shm_segments.push_back(w.encoder_cache->segment_name());
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

// Serves plans until the engine closes their source (0), SIGTERM (0) or the enginecore dies (1).
int serve_plans(PlanSource& plans, zmq::socket_t& results, ModelRunner& runner, uint32_t rank, pid_t parent) {
  while (!g_stop.load()) {
    auto got = plans.acquire(500ms);
    if (!got.ok()) {
      if (is_closed(got.status())) return 0;
      spdlog::error("worker {}: {}", rank, got.status().to_string());
      return 1;
    }
    if (!*got) {
      if (::getppid() != parent) return 1;
      continue;  // idle
    }
    Result<protocol::StepPlan> plan = decode_plan(**got);
    const std::optional<std::vector<protocol::MediaPixels>> shipped = plans.take_media();  // this step's only
    plans.release();
    protocol::StepResult result;
    result.worker_rank = rank;
    if (!plan.ok()) {
      result.error = plan.status().to_string();
    } else {
      result.step_id = plan->step_id;
      Result<protocol::StepResult> r = runner.execute(*plan, shipped ? &*shipped : nullptr);
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
  auto security = protocol::ControlPlaneSecurity::load(a.control_plane_key_file);
  if (!security.ok()) {
    spdlog::error("worker {}: --control-plane-key-file: {}", rank, security.status().to_string());
    return 1;
  }
  protocol::SocketOptions dealer_options;
  dealer_options.routing_id = protocol::rank_identity(rank);
  auto dealer = protocol::make_socket(context, zmq::socket_type::dealer, dealer_options);
  Status s = dealer.ok() ? (*security)->secure_client(*dealer) : dealer.status();
  // With keys, an engine that refuses ours is told apart from one that is not up yet.
  if (s.ok())
    s = (*security)->curve() ? protocol::connect_and_await_handshake(context, *dealer, a.handshake, std::chrono::minutes(5))
                             : protocol::connect_endpoint(*dealer, a.handshake);
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
  s = init_worker(*msg, rank, a, w);
  if (s.ok() && (msg->input_addresses.empty() || msg->output_addresses.empty()))
    s = invalid_argument("the enginecore sent no ring or result address");
  Result<std::unique_ptr<PlanSource>> plans =
      s.ok() ? open_plan_source(context, **security, *msg, rank) : Result<std::unique_ptr<PlanSource>>(s);
  protocol::SocketOptions push_options;
  push_options.linger_ms = 2000;
  auto results = protocol::make_socket(context, zmq::socket_type::push, push_options);
  if (plans.ok() && results.ok()) s = (*security)->secure_client(*results);
  else s = plans.ok() ? results.status() : plans.status();
  if (s.ok()) s = protocol::connect_endpoint(*results, msg->output_addresses[0]);
  if (s.ok()) s = protocol::handshake_ready(*dealer, ready_message(rank, w));
  if (!s.ok()) {
    spdlog::error("worker {}: initialization failed: {}", rank, s.to_string());
    return 1;
  }
  ModelRunner runner(*w.model, *w.cache, rank);
  runner.set_vision(w.vision.get(), w.encoder_cache ? &*w.encoder_cache : nullptr, w.vision_mode, w.comm.get());
  runner.set_group(w.comm.get());
  return serve_plans(**plans, *results, runner, rank, parent);
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
