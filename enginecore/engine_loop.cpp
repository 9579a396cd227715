#include "enginecore/engine_loop.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <spdlog/spdlog.h>
#include <thread>

#include "enginecore/coordinator.h"
#include "enginecore/dp_setup.h"
#include "enginecore/dp_wave.h"
#include "enginecore/engine_core.h"
#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/heartbeat_thread.h"
#include "enginecore/protocol/option_table.h"
#include "enginecore/protocol/tp_nodes.h"
#include "enginecore/protocol/token_payload.h"
#include "enginecore/protocol/zmq_channel.h"
#include "enginecore/remote_workers.h"
#include "enginecore/stop_ids.h"
#include "enginecore/tp_roll_call.h"
#include "shm/arena.h"
#include "enginecore/client_router.h"
#include "shm/numa.h"
#include "shm/ring.h"
#include "shm/segment.h"

namespace k2::engine {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kRingSlotBytes = size_t{8} << 20;  // a plan carries chunk and cached-prefix ids
constexpr int64_t kMaxTensorParallel = 64;
constexpr uint32_t kRingSlots = 4;
constexpr auto kStepTimeout = std::chrono::minutes(30);
constexpr auto kIdlePoll = 1000ms;
constexpr auto kHandshakeTimeout = std::chrono::minutes(5);  // vLLM's HANDSHAKE_TIMEOUT_MINS
constexpr int kDefaultMaxBatchedTokens = 2048;  // vLLM's default for an API server

struct EngineArgs {
  std::string handshake;
  int64_t rank = 0;
  int64_t parent_pid = 0;
  std::string worker_binary;
  // This engine's place among the data-parallel ranks of its node (CPU/NUMA placement of
  // its workers: local rank l of L takes the l-th share, as vLLM maps devices).
  int64_t dp_local_index = 0;
  int64_t dp_local_size = 1;
  bool remote = false;  // on another node than the API server (--headless)
  std::string control_plane_key_file;
};

std::string cpu_list_text(const std::vector<int>& cpus) {
  std::string out;
  for (int c : cpus) {
    if (!out.empty()) out.push_back(',');
    out.append(std::to_string(c));
  }
  return out;
}

// The id of the dummy request of a dummy step; the workers drop it in the same plan.
constexpr const char* kDummyRequestId = "__k2_dp_dummy__";

const OptionTable<EngineArgs>& engine_table() {
  static const auto table = [] {
    OptionTable<EngineArgs> t;
    t.add("--handshake", &EngineArgs::handshake, "the frontend's input ROUTER address")
        .add("--rank", &EngineArgs::rank, "data-parallel rank")
        .add("--parent-pid", &EngineArgs::parent_pid, "the frontend's pid")
        .add("--worker-binary", &EngineArgs::worker_binary, "k2serve-worker (default: next to this binary)")
        .add("--dp-local-index", &EngineArgs::dp_local_index, "index of this rank among its node's ranks")
        .add("--dp-local-size", &EngineArgs::dp_local_size, "data-parallel ranks on this node")
        .add("--remote", &EngineArgs::remote, "the API server is on another node (tcp://, heartbeats)")
        .add("--control-plane-key-file", &EngineArgs::control_plane_key_file, "CURVE keys of the deployment");
    return t;
  }();
  return table;
}

// What the workers told us in their READY messages.
struct WorkerFacts {
  int64_t num_blocks = 0;
  std::vector<int64_t> eos_ids;
  int64_t max_position_embeddings = 0;
  int64_t vocab_size = 0;  // the model's logit count
  std::vector<std::string> segments;
};

class EngineProcess {
 public:
  explicit EngineProcess(EngineArgs args) : args_(std::move(args)), rank_(static_cast<uint32_t>(args_.rank)) {
    const char* timing = std::getenv("K2_STEP_TIMING");
    if (timing != nullptr && *timing != '\0' && std::strcmp(timing, "0") != 0) step_timing_.emplace();
  }
  ~EngineProcess() {
    stop_heartbeats();
    shutdown_workers();
    if (signal_fd_ >= 0) ::close(signal_fd_);
  }

  Status start();
  int run();

 private:
  Status connect_frontend();
  Status setup_data_parallel(const protocol::EngineConfigMsg& msg);
  Status load_deployment_keys();
  Status set_worker_placement(uint32_t num_workers);
  void start_heartbeats(const std::vector<std::string>& output_addresses);
  void stop_heartbeats();
  Status run_dummy_step();
  Status dp_after_step();
  Status check_master_alive();
  Status start_workers();
  Status listen_for_workers(const TpNodes& nodes, zmq::socket_t& router, zmq::socket_t& results);
  Result<WorkerFacts> handshake_workers(const TpNodes& nodes, zmq::socket_t& router);
  Status build_core(const WorkerFacts& facts, protocol::ReadyMsg& ready);
  Status poll_events(std::chrono::milliseconds timeout, zmq::socket_t* socket, bool* readable,
                     zmq::socket_t* socket2 = nullptr, bool* readable2 = nullptr);
  Status connect_extra_clients(const protocol::EngineConfigMsg& msg);
  Status drain_input();
  Status drain_socket(uint32_t client, zmq::socket_t& socket);
  void take_prompt_from_arena(protocol::AddRequest& add);
  Status run_step(const protocol::StepPlan& plan, StepTimingLog::Marks& marks);
  void log_step_timing();
  Status write_plan(const protocol::StepPlan& plan);
  Result<protocol::StepResult> wait_results(uint64_t step_id);
  Status send_outputs();
  void shutdown_workers();

  EngineArgs args_;
  uint32_t rank_;
  EngineConfig config_;
  std::string run_id_;
  std::optional<protocol::RunDir> run_dir_;
  zmq::context_t context_{1};
  // Declared after the context and before every socket: destroyed between them.
  std::unique_ptr<protocol::ControlPlaneSecurity> security_;
  std::optional<zmq::socket_t> input_, output_, results_;
  // --api-server-count > 1: API server k >= 1's input DEALER and output PUSH at index k - 1
  // (API server 0's are input_ and output_). The router keeps their requests apart.
  std::vector<zmq::socket_t> extra_inputs_, extra_outputs_;
  ClientRouter clients_{1};
  std::optional<RingWriter> ring_;
  std::unique_ptr<RemoteWorkers> remote_;  // tensor parallelism across nodes (tp_nodes.h)
  std::optional<Arena> prompt_arena_;  // the frontend's; we free each prompt block once read
  std::vector<std::string> vocabulary_;  // token bytes from the frontend, until the core exists
  std::vector<ChildProcess> workers_;
  std::vector<pid_t> worker_pids_;
  std::unique_ptr<EngineCore> core_;
  int signal_fd_ = -1;
  bool stop_ = false;
  std::optional<StepTimingLog> step_timing_;  // K2_STEP_TIMING set
  // Request waves (MoE with data parallelism); the coordinator runs in rank 0's process when
  // it is on the head node.
  std::unique_ptr<DpCoordinator> coordinator_;
  std::unique_ptr<DpWave> dp_;
  uint64_t dummy_steps_ = 0;
  uint64_t next_dummy_id_ = 0;
  // Remote engines: heartbeats to every API server on their own sockets and threads (a long
  // step must not look like a dead node), and the last time the API server was heard from.
  std::vector<std::unique_ptr<protocol::HeartbeatThread>> heartbeats_;
  Clock::time_point master_seen_ = Clock::now();
};

Status EngineProcess::start() {
  // Signals become readable events. Blocked before the first socket is made, which is when
  // the zmq context starts its threads, so those inherit the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0) return io_error(std::string("signalfd: ") + std::strerror(errno));
  if (auto removed = cleanup_stale_segments(); removed.ok() && *removed > 0)
    spdlog::info("removed {} shm segments of dead processes", *removed);
  K2_ASSIGN_OR_RETURN(security_, protocol::ControlPlaneSecurity::load(args_.control_plane_key_file));
  K2_RETURN_IF_ERROR(connect_frontend());
  return Status::ok_status();
}

Status EngineProcess::connect_frontend() {
  protocol::SocketOptions dealer_options;
  dealer_options.routing_id = protocol::rank_identity(rank_);
  K2_ASSIGN_OR_RETURN(zmq::socket_t dealer, protocol::make_socket(context_, zmq::socket_type::dealer, dealer_options));
  K2_RETURN_IF_ERROR(security_->secure_client(dealer));
  // A master that refuses this node (another CURVE key, or none) is told apart from one that
  // is not up yet: the first fails within seconds, the second is waited for.
  K2_RETURN_IF_ERROR(protocol::connect_and_await_handshake(context_, dealer, args_.handshake, kHandshakeTimeout)
                         .with_context("joining the API server"));
  input_.emplace(std::move(dealer));
  protocol::Hello hello;
  hello.kind = protocol::ProcessKind::kEngineCore;
  hello.rank = rank_;
  hello.pid = ::getpid();
  hello.local = !args_.remote;
  hello.headless = args_.remote;
  K2_ASSIGN_OR_RETURN(protocol::EngineConfigMsg msg, protocol::handshake_hello(*input_, hello, kHandshakeTimeout));
  nlohmann::json j = nlohmann::json::parse(msg.config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return invalid_argument("the frontend sent a config that is not JSON");
  K2_RETURN_IF_ERROR(engine_config_table().apply_json(j, config_));
  if (msg.output_addresses.empty()) return invalid_argument("the frontend sent no output address");
  run_id_ = msg.run_id;
  if (!msg.prompt_arena.empty()) {
    K2_ASSIGN_OR_RETURN(Arena prompts, Arena::open(msg.prompt_arena));
    prompt_arena_.emplace(std::move(prompts));
    if (msg.vocabulary.valid()) {
      K2_ASSIGN_OR_RETURN(vocabulary_, protocol::read_vocabulary(msg.vocabulary, *prompt_arena_));
      (void)prompt_arena_->free(msg.vocabulary);
    }
  }
  if (vocabulary_.empty() && !msg.vocabulary_inline.empty()) {
    K2_ASSIGN_OR_RETURN(vocabulary_, protocol::decode_vocabulary(msg.vocabulary_inline));
  }
  protocol::SocketOptions push_options;
  push_options.linger_ms = 4000;  // EngineDead must get out before the process exits
  K2_ASSIGN_OR_RETURN(zmq::socket_t push, protocol::make_socket(context_, zmq::socket_type::push, push_options));
  K2_RETURN_IF_ERROR(security_->secure_client(push));
  K2_RETURN_IF_ERROR(protocol::connect_endpoint(push, msg.output_addresses[0]));
  output_.emplace(std::move(push));
  if (args_.remote) start_heartbeats(msg.output_addresses);
  K2_RETURN_IF_ERROR(connect_extra_clients(msg));
  K2_RETURN_IF_ERROR(setup_data_parallel(msg));
  if (config_.tensor_parallel_size < 1 || config_.tensor_parallel_size > kMaxTensorParallel) {
    return invalid_argument("--tensor-parallel-size must be in [1, " + std::to_string(kMaxTensorParallel) + "]");
  }
  K2_RETURN_IF_ERROR(start_workers());
  return Status::ok_status();
}

// vLLM: the engine connects a DEALER to every API server's input ROUTER and a PUSH to every
// output PULL. The other API servers may not be listening yet: zmq queues until they are.
Status EngineProcess::connect_extra_clients(const protocol::EngineConfigMsg& msg) {
  if (msg.input_addresses.size() != msg.output_addresses.size())
    return invalid_argument("the frontend sent " + std::to_string(msg.input_addresses.size()) + " input and " +
                            std::to_string(msg.output_addresses.size()) + " output addresses");
  clients_ = ClientRouter(static_cast<uint32_t>(msg.input_addresses.size()));
  for (size_t k = 1; k < msg.input_addresses.size(); ++k) {
    protocol::SocketOptions dealer_options;
    dealer_options.routing_id = protocol::rank_identity(rank_);
    K2_ASSIGN_OR_RETURN(zmq::socket_t dealer, protocol::make_socket(context_, zmq::socket_type::dealer, dealer_options));
    K2_RETURN_IF_ERROR(security_->secure_client(dealer));
    K2_RETURN_IF_ERROR(protocol::connect_endpoint(dealer, msg.input_addresses[k]));
    protocol::SocketOptions push_options;
    push_options.linger_ms = 4000;
    K2_ASSIGN_OR_RETURN(zmq::socket_t push, protocol::make_socket(context_, zmq::socket_type::push, push_options));
    K2_RETURN_IF_ERROR(security_->secure_client(push));
    K2_RETURN_IF_ERROR(protocol::connect_endpoint(push, msg.output_addresses[k]));
    extra_inputs_.push_back(std::move(dealer));
    extra_outputs_.push_back(std::move(push));
  }
  if (!extra_inputs_.empty())
    spdlog::info("enginecore {}: serving {} API servers", rank_, msg.input_addresses.size());
  return Status::ok_status();
}

Status EngineProcess::setup_data_parallel(const protocol::EngineConfigMsg& msg) {
  K2_ASSIGN_OR_RETURN(const std::optional<WavePlan> plan,
                      plan_request_waves(config_, msg.coordinator_address, rank_, model_is_moe(config_.model),
                                         args_.remote));
  if (!plan) return Status::ok_status();
  // A hybrid or external rank's coordinator is on TCP; its API server gave this engine no key file.
  if (plan->watch) K2_RETURN_IF_ERROR(load_deployment_keys());
  K2_ASSIGN_OR_RETURN(RequestWaves waves, join_request_waves(context_, *plan, *security_));
  coordinator_ = std::move(waves.coordinator);
  dp_ = std::move(waves.wave);
  spdlog::info("enginecore {}: MoE model, data-parallel rank {} of {}: request waves through {}{}", rank_, plan->rank,
               plan->num_ranks, plan->address, plan->serve ? " (served here)" : "");
  return Status::ok_status();
}

// A single engine's API server is on this node and talks to it without CURVE, so the key
// file only arrives with the config; until then nothing has been secured with security_.
Status EngineProcess::load_deployment_keys() {
  if (security_->curve() || !config_.control_plane_key_file) return Status::ok_status();
  K2_ASSIGN_OR_RETURN(security_, protocol::ControlPlaneSecurity::load(*config_.control_plane_key_file));
  return Status::ok_status();
}

// Local DP rank l of L on a node gives its workers the l-th share of the placement the
// node's L * tp workers would get (VLLM_CPU_OMP_THREADS_BIND "auto" or explicit lists),
// written as an explicit list per worker for the workers to apply by their TP rank.
Status EngineProcess::set_worker_placement(uint32_t num_workers) {
  if (args_.dp_local_size <= 1) return Status::ok_status();
  const char* env = std::getenv("VLLM_CPU_OMP_THREADS_BIND");
  const std::string spec = env != nullptr && *env != '\0' ? env : "auto";
  const int world = static_cast<int>(args_.dp_local_size) * static_cast<int>(num_workers);
  std::string lists;
  for (uint32_t r = 0; r < num_workers; ++r) {
    const int placement_rank = static_cast<int>(args_.dp_local_index) * static_cast<int>(num_workers) + static_cast<int>(r);
    K2_ASSIGN_OR_RETURN(NumaPlacement p, plan_numa_placement(spec, placement_rank, world));
    if (p.cpus.empty()) return Status::ok_status();  // unbound: nothing to split
    if (r > 0) lists.push_back('|');
    lists.append(cpu_list_text(p.cpus));
  }
  ::setenv("VLLM_CPU_OMP_THREADS_BIND", lists.c_str(), 1);
  spdlog::info("enginecore {}: local data-parallel rank {} of {}: workers on CPUs {}", rank_, args_.dp_local_index,
               args_.dp_local_size, lists);
  return Status::ok_status();
}

// Every API server watches the remote ranks itself (a kill -9 of their node must turn each
// to 503); this engine itself only listens for API server 0's.
void EngineProcess::start_heartbeats(const std::vector<std::string>& output_addresses) {
  for (const std::string& address : output_addresses)
    heartbeats_.push_back(std::make_unique<protocol::HeartbeatThread>(
        context_, *security_, address, protocol::DpControl{protocol::DpControlKind::kHeartbeat, rank_, 0, 0, false, -1},
        "enginecore " + std::to_string(rank_)));
}

void EngineProcess::stop_heartbeats() { heartbeats_.clear(); }

// A remote engine whose API server went silent (its node died) gives up instead of waiting
// forever; the API server sends it a heartbeat every second.
Status EngineProcess::check_master_alive() {
  if (!args_.remote || Clock::now() - master_seen_ < protocol::kDpMasterTimeout) return Status::ok_status();
  return unavailable("no word from the API server for " +
                     std::to_string(std::chrono::duration_cast<std::chrono::seconds>(protocol::kDpMasterTimeout).count()) +
                     " s");
}

// One forward of one token through every worker, so that collectives inside the model are
// entered as on the busy ranks. The token is written to the null block 0 (never handed to a
// request) and nothing is sampled; the plan also finishes the dummy request, so the workers
// keep no state for it.
Status EngineProcess::run_dummy_step() {
  protocol::StepPlan plan;
  plan.step_id = protocol::kDummyStepBit | next_dummy_id_++;
  protocol::ScheduledRequest r;
  r.request_id = kDummyRequestId;
  r.token_ids = protocol::inline_tokens({0});
  r.num_tokens = 1;
  r.blocks.block_ids = {0};
  r.params_index = 0;
  r.num_prompt_tokens = 1;
  plan.requests.push_back(std::move(r));
  plan.sampling_params.emplace_back();
  plan.finished_request_ids = {kDummyRequestId};
  plan.total_num_tokens = 1;
  K2_RETURN_IF_ERROR(write_plan(plan));
  K2_ASSIGN_OR_RETURN(protocol::StepResult result, wait_results(plan.step_id));
  (void)result;
  ++dummy_steps_;
  return Status::ok_status();
}

// After every step of a running wave: every kSyncInterval steps, the all-reduce of "has
// unfinished requests" across ranks (blocking, as vLLM's), which may end the wave. The others
// are at most a step behind; a rank (or coordinator) that died between two collectives never
// answers, and nothing else would end the wait (external ranks have no frontend watching all).
Status EngineProcess::dp_after_step() {
  if (!dp_ || !dp_->count_step()) return Status::ok_status();
  K2_RETURN_IF_ERROR(dp_->begin_sync(core_->has_unfinished_requests()));
  const auto deadline = Clock::now() + kStepTimeout;
  while (dp_->sync_pending() && !stop_) {
    if (Clock::now() > deadline) return unavailable("no data-parallel sync result in time: a rank or the coordinator is gone");
    bool readable = false, input_readable = false;
    K2_RETURN_IF_ERROR(poll_events(100ms, &dp_->socket(), &readable, &*input_, &input_readable));
    if (readable) K2_RETURN_IF_ERROR(dp_->drain());
    if (input_readable) K2_RETURN_IF_ERROR(drain_input());
    K2_RETURN_IF_ERROR(dp_->check_coordinator());
    K2_RETURN_IF_ERROR(check_master_alive());
  }
  if (!dp_->running()) {
    spdlog::debug("enginecore {}: wave over ({} dummy steps so far)", rank_, dummy_steps_);
  }
  return Status::ok_status();
}

// The workers' handshake ROUTER and results PULL: ipc:// for this node's workers, and with
// a group across nodes also tcp:// for the others (CURVE servers with the key file).
Status EngineProcess::listen_for_workers(const TpNodes& nodes, zmq::socket_t& router, zmq::socket_t& results) {
  if (nodes.spans_nodes()) {
    K2_RETURN_IF_ERROR(load_deployment_keys());
    K2_RETURN_IF_ERROR(security_->secure_server(context_, router, "worker handshake"));
    K2_RETURN_IF_ERROR(security_->secure_server(context_, results, "worker results"));
  }
  K2_ASSIGN_OR_RETURN(std::string hs_addr, run_dir_->ipc_address("workers"));
  K2_ASSIGN_OR_RETURN(std::string results_addr, run_dir_->ipc_address("results"));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, hs_addr));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(results, results_addr));
  if (!nodes.spans_nodes()) return Status::ok_status();
  K2_ASSIGN_OR_RETURN(remote_, RemoteWorkers::start(context_, *security_, nodes, router, results));
  return Status::ok_status();
}

Status EngineProcess::start_workers() {
  K2_ASSIGN_OR_RETURN(const TpNodes nodes, tp_nodes_of(config_));
  const uint32_t num_workers = static_cast<uint32_t>(nodes.per_node);  // on this node
  K2_ASSIGN_OR_RETURN(protocol::RunDir dir, protocol::RunDir::create());
  run_dir_.emplace(std::move(dir));
  K2_ASSIGN_OR_RETURN(std::string hs_addr, run_dir_->ipc_address("workers"));
  K2_ASSIGN_OR_RETURN(zmq::socket_t router, protocol::make_socket(context_, zmq::socket_type::router));
  K2_ASSIGN_OR_RETURN(zmq::socket_t pull, protocol::make_socket(context_, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(listen_for_workers(nodes, router, pull));
  results_.emplace(std::move(pull));
  RingOptions ring_options;
  ring_options.run_id = run_id_;
  ring_options.name = "plans-e" + std::to_string(rank_);
  ring_options.num_slots = kRingSlots;
  ring_options.slot_bytes = kRingSlotBytes;
  ring_options.num_readers = num_workers;
  K2_ASSIGN_OR_RETURN(RingWriter ring, RingWriter::create(ring_options));
  ring_.emplace(std::move(ring));
  K2_RETURN_IF_ERROR(set_worker_placement(num_workers));
  const std::filesystem::path binary =
      args_.worker_binary.empty() ? self_exe_dir() / "k2serve-worker" : std::filesystem::path(args_.worker_binary);
  K2_ASSIGN_OR_RETURN(const uint32_t dp_rank, global_dp_rank(config_, rank_));
  for (uint32_t r = 0; r < num_workers; ++r) {
    std::vector<std::string> args = {"worker", "--handshake", hs_addr, "--rank", std::to_string(r), "--parent-pid",
                                     std::to_string(::getpid()), "--tp-size", std::to_string(nodes.tp),
                                     "--dp-rank", std::to_string(dp_rank)};
    if (remote_ && security_->curve())
      args.insert(args.end(), {"--control-plane-key-file", config_.control_plane_key_file.value_or(args_.control_plane_key_file)});
    // Rank 0 creates the tensor-parallel group's segment; the others find it by its pid.
    if (r > 0) args.insert(args.end(), {"--tp-leader-pid", std::to_string(worker_pids_[0])});
    K2_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::spawn(binary, args));
    worker_pids_.push_back(child.pid());
    workers_.push_back(std::move(child));
  }
  K2_ASSIGN_OR_RETURN(WorkerFacts facts, handshake_workers(nodes, router));
  protocol::ReadyMsg ready;
  K2_RETURN_IF_ERROR(build_core(facts, ready));
  // The other API servers learn our identity and capacities from this first message.
  for (auto& dealer : extra_inputs_) K2_RETURN_IF_ERROR(protocol::send(dealer, ready));
  return protocol::handshake_ready(*input_, ready);
}

Result<WorkerFacts> EngineProcess::handshake_workers(const TpNodes& nodes, zmq::socket_t& router) {
  K2_ASSIGN_OR_RETURN(std::string results_addr, run_dir_->ipc_address("results"));
  protocol::HandshakeOptions options;
  options.expected_peers = static_cast<uint32_t>(config_.tensor_parallel_size);  // other nodes' too
  options.expected_kind = protocol::ProcessKind::kWorker;
  // Other nodes' workers are started by hand: the roll call names those that never come.
  TpRollCall roll_call(nodes, protocol::engine_ready_timeout(), Clock::now());
  if (remote_) options.hello_timeout = roll_call.timeout() + 2 * kIdlePoll;  // the roll call's error comes first
  options.peers_alive = [&]() -> Status {
    for (auto& w : workers_) {
      const auto st = w.try_wait();
      if (!st) continue;
      const std::string missing = remote_ ? roll_call.missing() : "";
      return unavailable("worker pid " + std::to_string(w.pid()) + " exited during startup (" +
                         describe_wait_status(*st) + ")" + (missing.empty() ? "" : "; still missing: " + missing));
    }
    if (!remote_) return Status::ok_status();
    const auto now = Clock::now();
    if (auto line = roll_call.progress(now)) spdlog::info("enginecore {}: {}", rank_, *line);
    return roll_call.check(now);
  };
  auto config_for = [&](const protocol::Hello& hello) -> Result<protocol::EngineConfigMsg> {
    protocol::EngineConfigMsg msg{engine_config_table().to_json(config_).dump(), run_id_, {ring_->name()},
                                  {results_addr}, hello.rank, "", {}, "", ""};
    if (remote_) remote_->address(hello.rank, msg);
    roll_call.joined(hello.rank);
    return msg;
  };
  K2_ASSIGN_OR_RETURN(std::vector<protocol::HandshakePeer> peers, protocol::handshake_serve(router, options, config_for));
  if (remote_) K2_RETURN_IF_ERROR(remote_->await_subscriptions(std::chrono::seconds(30)));
  WorkerFacts facts;
  facts.num_blocks = INT64_MAX;
  for (const auto& p : peers) {
    facts.num_blocks = std::min<int64_t>(facts.num_blocks, static_cast<int64_t>(p.ready.num_kv_blocks));
    facts.segments.insert(facts.segments.end(), p.ready.shm_segments.begin(), p.ready.shm_segments.end());
  }
  nlohmann::json j = nlohmann::json::parse(peers[0].ready.config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("max_position_embeddings"))
    return corrupt("worker 0 sent no model facts in READY");
  if (j.contains("eos_token_ids") && j["eos_token_ids"].is_array())
    for (const auto& e : j["eos_token_ids"])
      if (e.is_number_integer()) facts.eos_ids.push_back(e.get<int64_t>());
  facts.max_position_embeddings = j["max_position_embeddings"].get<int64_t>();
  if (j.contains("vocab_size") && j["vocab_size"].is_number_integer()) facts.vocab_size = j["vocab_size"].get<int64_t>();
  return facts;
}

Status EngineProcess::build_core(const WorkerFacts& facts, protocol::ReadyMsg& ready) {
  const int64_t max_model_len = config_.max_model_len.value_or(facts.max_position_embeddings);
  if (max_model_len <= 0 || max_model_len > facts.max_position_embeddings)
    return invalid_argument("--max-model-len " + std::to_string(max_model_len) +
                            " exceeds the model's max_position_embeddings " +
                            std::to_string(facts.max_position_embeddings));
  EngineCoreConfig cc;
  cc.scheduler.max_model_len = static_cast<int32_t>(max_model_len);
  cc.scheduler.max_num_seqs = static_cast<int32_t>(config_.max_num_seqs);
  cc.scheduler.enable_chunked_prefill = config_.enable_chunked_prefill;
  int64_t batched = config_.max_num_batched_tokens.value_or(
      config_.enable_chunked_prefill ? kDefaultMaxBatchedTokens : std::max<int64_t>(kDefaultMaxBatchedTokens, max_model_len));
  cc.scheduler.max_num_batched_tokens = static_cast<int32_t>(std::min<int64_t>(batched, INT32_MAX));
  // Items other requests hold are free only while the workers keep an encoder cache to find them in.
  cc.scheduler.encoder.shared_cache = config_.mm_processor_cache_gb > 0;
  cc.kv.block_size = static_cast<int32_t>(config_.block_size);
  cc.kv.num_blocks = static_cast<int32_t>(std::min<int64_t>(facts.num_blocks, INT32_MAX));
  cc.kv.enable_prefix_caching = config_.enable_prefix_caching;
  cc.kv.hash_seed = static_cast<uint64_t>(config_.seed);
  const std::string tokenizer = config_.tokenizer.empty() ? config_.model : config_.tokenizer;
  cc.eos_token_ids = model_stop_ids(config_.model, tokenizer, facts.eos_ids);
  cc.seed = static_cast<uint64_t>(config_.seed);
  cc.engine_index = rank_;
  K2_ASSIGN_OR_RETURN(core_, EngineCore::create(cc));
  if (!vocabulary_.empty()) {
    // Without it the engine still serves; structured requests are refused one by one.
    if (Status st = core_->set_vocabulary(std::move(vocabulary_), facts.vocab_size); !st.ok()) {
      spdlog::warn("enginecore {}: structured outputs disabled: {}", rank_, st.to_string());
    }
    vocabulary_ = {};
  }
  nlohmann::json extra = {{"worker_pids", worker_pids_}, {"eos_token_ids", cc.eos_token_ids}, {"pid", ::getpid()},
                          {"dp_waves", dp_ != nullptr}};
  ready.rank = rank_;
  ready.num_kv_blocks = static_cast<uint64_t>(cc.kv.num_blocks);
  ready.block_size = static_cast<uint32_t>(cc.kv.block_size);
  ready.max_model_len = static_cast<uint32_t>(max_model_len);
  ready.max_num_seqs = static_cast<uint32_t>(cc.scheduler.max_num_seqs);
  ready.max_num_batched_tokens = static_cast<uint32_t>(cc.scheduler.max_num_batched_tokens);
  ready.config_json = extra.dump();
  ready.shm_segments = facts.segments;
  ready.shm_segments.push_back(ring_->name());
  spdlog::info("enginecore {}: ready: {} KV blocks of {}, max_model_len {}, max_num_seqs {}, "
               "max_num_batched_tokens {}, stop ids {}", rank_, cc.kv.num_blocks, cc.kv.block_size, max_model_len,
               cc.scheduler.max_num_seqs, cc.scheduler.max_num_batched_tokens, extra["eos_token_ids"].dump());
  return Status::ok_status();
}

// Waits up to `timeout` for `socket` input, a signal or a worker exit. A worker exit is an
// error; a signal sets stop_.
Status EngineProcess::poll_events(std::chrono::milliseconds timeout, zmq::socket_t* socket, bool* readable,
                                 zmq::socket_t* socket2, bool* readable2) {
  std::vector<zmq::pollitem_t> items;
  if (socket) items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
  if (socket2) items.push_back({socket2->handle(), 0, ZMQ_POLLIN, 0});
  const size_t first_extra = items.size();
  const bool with_extra = socket != nullptr && socket == &*input_;
  if (with_extra)
    for (auto& in : extra_inputs_) items.push_back({in.handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({nullptr, signal_fd_, ZMQ_POLLIN, 0});
  for (auto& w : workers_)
    if (w.pidfd() >= 0) items.push_back({nullptr, w.pidfd(), ZMQ_POLLIN, 0});
  if (remote_) items.push_back({remote_->heartbeat_socket().handle(), 0, ZMQ_POLLIN, 0});
  try {
    zmq::poll(items.data(), items.size(), timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) return io_error(std::string("poll: ") + e.what());
  }
  if (remote_) K2_RETURN_IF_ERROR(remote_->tick());
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (auto st = workers_[i].try_wait())
      return unavailable("worker " + std::to_string(i) + " (pid " + std::to_string(workers_[i].pid()) + ") died: " +
                         describe_wait_status(*st));
  }
  signalfd_siginfo info;
  while (::read(signal_fd_, &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    spdlog::info("enginecore {}: signal {}, shutting down", rank_, info.ssi_signo);
    stop_ = true;
  }
  if (readable) *readable = socket && (items[0].revents & ZMQ_POLLIN);
  if (readable && with_extra)
    for (size_t i = 0; i < extra_inputs_.size(); ++i) *readable = *readable || (items[first_extra + i].revents & ZMQ_POLLIN);
  if (readable2) *readable2 = socket2 && (items[socket ? 1 : 0].revents & ZMQ_POLLIN);
  return Status::ok_status();
}

Status EngineProcess::drain_input() {
  K2_RETURN_IF_ERROR(drain_socket(0, *input_));
  for (size_t k = 0; k < extra_inputs_.size(); ++k) K2_RETURN_IF_ERROR(drain_socket(static_cast<uint32_t>(k + 1), extra_inputs_[k]));
  return Status::ok_status();
}

// Only API server 0's prompts may travel through the prompt arena (the one the handshake
// named); the others send theirs inline.
Status EngineProcess::drain_socket(uint32_t client, zmq::socket_t& socket) {
  while (true) {
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got, protocol::receive_valid(socket, 0ms, /*routed=*/false));
    if (!got) return Status::ok_status();
    if (client == 0) master_seen_ = Clock::now();
    if (std::holds_alternative<protocol::DpControl>(got->message)) continue;  // the API server's heartbeat
    if (auto* add = std::get_if<protocol::AddRequest>(&got->message)) {
      if (client == 0) take_prompt_from_arena(*add);
      clients_.on_add(client, *add);
      core_->add_request(*add);
    } else if (auto* abort = std::get_if<protocol::AbortRequests>(&got->message)) {
      clients_.on_abort(client, *abort);
      core_->abort(abort->request_ids);
    } else if (auto* call = std::get_if<protocol::Utility>(&got->message)) {
      clients_.on_utility(client, *call);
      core_->utility(*call);
    } else {
      spdlog::warn("enginecore {}: dropped an unexpected {}", rank_,
                   protocol::message_type_name(protocol::message_type(got->message)));
    }
  }
}

// A prompt that travelled through the arena becomes inline (and its block free). One that
// cannot be read stays in the arena's form, which the core refuses with an error output
// for that request alone.
void EngineProcess::take_prompt_from_arena(protocol::AddRequest& add) {
  if (add.prompt.location != protocol::DataLocation::kShm) return;
  Result<std::vector<int32_t>> ids = protocol::read_tokens(add.prompt, prompt_arena_ ? &*prompt_arena_ : nullptr);
  if (prompt_arena_) {
    if (Status freed = prompt_arena_->free(add.prompt.handle); !freed.ok())
      spdlog::warn("request {}: prompt block not freed: {}", add.request_id, freed.to_string());
  }
  if (!ids.ok()) {
    spdlog::warn("request {}: prompt unreadable: {}", add.request_id, ids.status().to_string());
    return;
  }
  add.prompt = protocol::inline_tokens(std::move(ids).value());
}

Status EngineProcess::write_plan(const protocol::StepPlan& plan) {
  protocol::Frames frames = protocol::encode(plan);
  if (frames.size() != 2) return internal_error("a step plan encoded to " + std::to_string(frames.size()) + " frames");
  const size_t bytes = frames[0].size() + frames[1].size();
  if (bytes > ring_->slot_bytes())
    return out_of_range("step plan of " + std::to_string(bytes) + " bytes exceeds the ring slot");
  K2_ASSIGN_OR_RETURN(std::span<std::byte> slot, ring_->reserve(std::chrono::duration_cast<std::chrono::nanoseconds>(kStepTimeout)));
  std::memcpy(slot.data(), frames[0].data(), frames[0].size());
  std::memcpy(slot.data() + frames[0].size(), frames[1].data(), frames[1].size());
  K2_RETURN_IF_ERROR(ring_->commit(bytes));
  return remote_ ? remote_->publish(frames, plan) : Status::ok_status();
}

Result<protocol::StepResult> EngineProcess::wait_results(uint64_t step_id) {
  const auto deadline = Clock::now() + kStepTimeout;
  std::optional<protocol::StepResult> first;
  size_t received = 0;
  while (received < static_cast<size_t>(config_.tensor_parallel_size)) {
    if (Clock::now() > deadline) return unavailable("the workers did not finish step " + std::to_string(step_id) + " in time");
    bool readable = false;
    K2_RETURN_IF_ERROR(poll_events(100ms, &*results_, &readable));
    if (!readable) continue;
    K2_ASSIGN_OR_RETURN(std::optional<protocol::Received> got, protocol::receive_valid(*results_, 0ms, false));
    if (!got) continue;
    auto* result = std::get_if<protocol::StepResult>(&got->message);
    if (result == nullptr || (result->step_id != step_id && result->error.empty())) {
      spdlog::warn("enginecore {}: dropped a stray message from a worker", rank_);
      continue;
    }
    if (!result->error.empty()) return internal_error("worker " + std::to_string(result->worker_rank) + ": " + result->error);
    if (result->worker_rank == 0 || !first) first = std::move(*result);
    ++received;
  }
  return std::move(*first);
}

Status EngineProcess::run_step(const protocol::StepPlan& plan, StepTimingLog::Marks& marks) {
  K2_RETURN_IF_ERROR(write_plan(plan));
  marks.written = Clock::now();
  K2_ASSIGN_OR_RETURN(protocol::StepResult result, wait_results(plan.step_id));
  marks.received = Clock::now();
  return core_->finish_step(result);
}

void EngineProcess::log_step_timing() {
  for (const std::string& line : step_timing_->drain_lines()) spdlog::info("enginecore {}: {}", rank_, line);
}

Status EngineProcess::send_outputs() {
  while (core_->has_outputs()) {
    if (extra_outputs_.empty()) {
      K2_RETURN_IF_ERROR(protocol::send(*output_, core_->take_outputs()));
      continue;
    }
    // Every API server gets the stats (each balances by the queues it sees).
    std::vector<protocol::EngineOutputs> split = clients_.split(core_->take_outputs());
    K2_RETURN_IF_ERROR(protocol::send(*output_, split[0]));
    for (size_t k = 1; k < split.size(); ++k) K2_RETURN_IF_ERROR(protocol::send(extra_outputs_[k - 1], split[k]));
  }
  return Status::ok_status();
}

int EngineProcess::run() {
  Status s;
  bool stalled = false;  // requests exist but none could be scheduled: do not spin
  // Loading the model and waiting for the other ranks is not the API server's silence.
  master_seen_ = Clock::now();
  while (s.ok() && !stop_) {
    const bool wave = dp_ && dp_->running();
    const bool idle = !core_->has_unfinished_requests() && !wave;
    if (idle && step_timing_) log_step_timing();
    StepTimingLog::Marks marks;
    marks.start = Clock::now();
    bool readable = false, dp_readable = false;
    const auto wait = idle ? kIdlePoll : (stalled && !wave) ? 10ms : 0ms;
    s = poll_events(wait, &*input_, &readable, dp_ ? &dp_->socket() : nullptr, &dp_readable);
    if (wait.count() > 0) marks.start = Clock::now();  // time blocked waiting is not overhead
    if (s.ok() && readable) s = drain_input();
    if (s.ok() && dp_readable) s = dp_->drain();
    if (s.ok() && dp_) s = dp_->check_coordinator();
    if (s.ok() && dp_ && core_->has_unfinished_requests()) s = dp_->start_if_idle();
    if (s.ok()) s = send_outputs();
    if (s.ok()) s = check_master_alive();
    if (!s.ok() || stop_) break;
    marks.inputs_done = Clock::now();
    std::optional<protocol::StepPlan> plan = core_->plan_step();
    marks.planned = Clock::now();
    stalled = !plan;
    if (plan) s = run_step(*plan, marks);
    // One forward per wave step on every rank: a plan without a forward (an expert-load
    // report) is topped up with a dummy one, or the ranks' model collectives would pair up wrong.
    if (s.ok() && dp_ && dp_->running() && (!plan || plan->requests.empty())) s = run_dummy_step();
    if (s.ok() && dp_ && dp_->running()) s = dp_after_step();
    if (s.ok()) s = send_outputs();
    if (plan && s.ok() && step_timing_) {
      marks.updated = Clock::now();
      step_timing_->add(plan->requests.size(), marks);
    }
  }
  if (s.ok()) return 0;
  spdlog::error("enginecore {}: {}", rank_, s.to_string());
  (void)protocol::send(*output_, protocol::EngineDead{s.to_string(), rank_});
  for (auto& push : extra_outputs_) (void)protocol::send(push, protocol::EngineDead{s.to_string(), rank_});
  return 1;
}

void EngineProcess::shutdown_workers() {
  if (ring_) ring_->close();
  if (remote_) remote_->close();
  for (auto& w : workers_) {
    int st = w.terminate(3000ms);
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != 0)
      spdlog::info("enginecore {}: worker pid {} ended with {}", rank_, w.pid(), describe_wait_status(st));
  }
  for (pid_t pid : worker_pids_) (void)remove_segments_of(pid);
  workers_.clear();
  ring_.reset();
}

}  // namespace

void StepTimingLog::add(size_t batch, const Marks& m) {
  auto us = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); };
  Totals& t = by_batch_[batch];
  ++t.steps;
  t.input_us += us(m.start, m.inputs_done);
  t.schedule_us += us(m.inputs_done, m.planned);
  t.write_us += us(m.planned, m.written);
  t.wait_us += us(m.written, m.received);
  t.update_us += us(m.received, m.updated);
  t.step_us.push_back(us(m.start, m.updated));
  t.overhead_us.push_back(t.step_us.back() - us(m.written, m.received));
}

std::vector<std::string> StepTimingLog::drain_lines() {
  auto median = [](std::vector<double>& v) {
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  std::vector<std::string> lines;
  for (auto& [batch, t] : by_batch_) {
    const double n = static_cast<double>(t.steps);
    char buf[320];
    std::snprintf(buf, sizeof(buf),
                  "step timing: batch=%zu steps=%llu input_us=%.2f schedule_us=%.2f write_us=%.2f wait_us=%.2f "
                  "update_us=%.2f overhead_p50_us=%.2f step_p50_us=%.2f",
                  batch, static_cast<unsigned long long>(t.steps), t.input_us / n, t.schedule_us / n, t.write_us / n,
                  t.wait_us / n, t.update_us / n, median(t.overhead_us), median(t.step_us));
    lines.emplace_back(buf);
  }
  by_batch_.clear();
  return lines;
}

int enginecore_main(const std::vector<std::string>& args) {
  EngineArgs a;
  std::vector<std::string> positionals;
  Status s = engine_table().parse(args, a, &positionals);
  if (s.ok() && (a.handshake.empty() || a.rank < 0 || a.parent_pid <= 0))
    s = invalid_argument("k2serve-enginecore needs --handshake, --rank and --parent-pid (k2serve starts it)");
  if (s.ok()) s = die_with_parent(static_cast<pid_t>(a.parent_pid));
  if (!s.ok()) {
    spdlog::error("enginecore: {}", s.to_string());
    return 2;
  }
  EngineProcess engine(std::move(a));
  s = engine.start();
  if (!s.ok()) {
    spdlog::error("enginecore: startup failed: {}", s.to_string());
    return 1;
  }
  return engine.run();
}

}  // namespace k2::engine
