#include "frontend/engine/zmq_engine_client.h"

#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/token_payload.h"
#include "shm/segment.h"

namespace k2::frontend {
namespace {

constexpr uint64_t kPromptArenaId = 1;
constexpr size_t kPromptArenaBytes = size_t{256} << 20;
constexpr uint64_t kMediaArenaId = 2;
constexpr size_t kMediaArenaBytes = size_t{1} << 30;

using namespace std::chrono_literals;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

openai::FinishReason to_openai(protocol::FinishReason r) {
  switch (r) {
    case protocol::FinishReason::kNone: return openai::FinishReason::kNone;
    case protocol::FinishReason::kStop: return openai::FinishReason::kStop;
    case protocol::FinishReason::kLength: return openai::FinishReason::kLength;
    case protocol::FinishReason::kAbort: return openai::FinishReason::kAbort;
    case protocol::FinishReason::kError: return openai::FinishReason::kError;
  }
  return openai::FinishReason::kError;
}

std::vector<openai::PositionLogprobs> to_positions(const protocol::TokenLogprobs& lp) {
  std::vector<openai::PositionLogprobs> out;
  for (uint32_t p = 0; p < lp.num_positions; ++p) {
    const size_t base = size_t{p} * lp.width;
    openai::PositionLogprobs pos;
    if (lp.width > 0) pos.chosen = {lp.token_ids[base], lp.logprobs[base], lp.ranks[p]};
    for (uint32_t k = 1; k < lp.width; ++k)
      pos.top.push_back({lp.token_ids[base + k], lp.logprobs[base + k], static_cast<int32_t>(k)});
    out.push_back(std::move(pos));
  }
  return out;
}

void drain_eventfd(int fd) {
  uint64_t value = 0;
  while (::read(fd, &value, sizeof(value)) == static_cast<ssize_t>(sizeof(value))) {
  }
}

}  // namespace

Result<protocol::SamplingParams> to_protocol_params(const openai::SamplingParams& s) {
  if (s.n != 1) return invalid_argument("the engine takes n = 1 per request (the frontend fans out n > 1)");
  if (s.allowed_token_ids) return unimplemented("allowed_token_ids is not supported by the engine yet");
  if (s.max_tokens < 0 || s.min_tokens < 0) return invalid_argument("max_tokens and min_tokens must be >= 0");
  protocol::SamplingParams p;
  p.temperature = static_cast<float>(s.temperature);
  p.top_p = static_cast<float>(s.top_p);
  p.top_k = s.top_k;
  p.min_p = static_cast<float>(s.min_p);
  p.seed = s.seed;
  p.max_tokens = static_cast<uint32_t>(s.max_tokens);
  p.min_tokens = static_cast<uint32_t>(s.min_tokens);
  p.ignore_eos = s.ignore_eos;
  p.stop_token_ids = s.stop_token_ids;
  if (s.logprobs) {
    if (*s.logprobs < 0) return invalid_argument("logprobs must be >= 0");
    p.logprobs = static_cast<uint32_t>(*s.logprobs);
  }
  if (s.prompt_logprobs) {
    if (*s.prompt_logprobs < 0) return invalid_argument("prompt_logprobs must be >= 0");
    p.prompt_logprobs = static_cast<uint32_t>(*s.prompt_logprobs);
  }
  p.presence_penalty = static_cast<float>(s.presence_penalty);
  p.frequency_penalty = static_cast<float>(s.frequency_penalty);
  p.repetition_penalty = static_cast<float>(s.repetition_penalty);
  for (const auto& [token, bias] : s.logit_bias)
    p.logit_bias.push_back(protocol::LogitBias{token, static_cast<float>(bias)});
  p.n = 1;
  return p;
}

openai::EngineOutput to_engine_output(const protocol::RequestOutput& o, double engine_time) {
  openai::EngineOutput out;
  out.engine_time = engine_time;
  for (const protocol::RequestEvent& e : o.events) {
    if (e.type == protocol::RequestEventType::kQueued) out.queued_time = e.timestamp;
    // A preempted request is scheduled again; vLLM's scheduled_ts is the first time.
    if (e.type == protocol::RequestEventType::kScheduled && out.scheduled_time == 0) out.scheduled_time = e.timestamp;
  }
  out.new_token_ids = o.new_token_ids;
  if (o.new_logprobs) out.logprobs = to_positions(*o.new_logprobs);
  if (o.new_prompt_logprobs) out.prompt_logprobs = to_positions(*o.new_prompt_logprobs);
  out.finish_reason = to_openai(o.finish_reason);
  if (o.finish_reason == protocol::FinishReason::kStop) out.stop_token_id = o.stop_token;
  out.num_cached_tokens = static_cast<int32_t>(o.num_cached_tokens);
  if (o.finish_reason == protocol::FinishReason::kError)
    out.error = "the engine refused the request (it cannot fit max_model_len or the KV cache)";
  return out;
}

Result<std::unique_ptr<ZmqEngineClient>> ZmqEngineClient::start(const ZmqEngineClientOptions& options) {
  std::unique_ptr<ZmqEngineClient> client(new ZmqEngineClient());
  Status s = client->launch(options);
  if (!s.ok()) {
    client->shutdown();
    return s;
  }
  return client;
}

Status ZmqEngineClient::launch(const ZmqEngineClientOptions& options) {
  if (auto removed = cleanup_stale_segments(); removed.ok() && *removed > 0)
    spdlog::info("removed {} shm segments of dead processes", *removed);
  K2_ASSIGN_OR_RETURN(protocol::RunDir dir, protocol::RunDir::create());
  run_dir_.emplace(std::move(dir));
  run_id_ = make_run_id();
  // Address space only: tmpfs pages exist once a prompt is written, and a full arena sends
  // the prompt inline instead.
  ArenaOptions arena;
  arena.run_id = run_id_;
  arena.name = "prompts";
  arena.arena_id = kPromptArenaId;
  arena.bytes = kPromptArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena prompts, Arena::create(arena));
  prompt_arena_.emplace(std::move(prompts));
  arena.name = "media";
  arena.arena_id = kMediaArenaId;
  arena.bytes = kMediaArenaBytes;
  K2_ASSIGN_OR_RETURN(Arena media, Arena::create(arena));
  media_arena_.emplace(std::move(media));
  ShmHandle vocabulary{};
  if (!options.vocabulary.empty()) {
    K2_ASSIGN_OR_RETURN(vocabulary, protocol::store_vocabulary(options.vocabulary, *prompt_arena_));
  }
  K2_ASSIGN_OR_RETURN(std::string input_addr, run_dir_->ipc_address("input"));
  K2_ASSIGN_OR_RETURN(std::string output_addr, run_dir_->ipc_address("output"));
  context_ = std::make_unique<zmq::context_t>(1);
  K2_ASSIGN_OR_RETURN(zmq::socket_t router, protocol::make_socket(*context_, zmq::socket_type::router));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(router, input_addr));
  K2_ASSIGN_OR_RETURN(zmq::socket_t pull, protocol::make_socket(*context_, zmq::socket_type::pull));
  K2_RETURN_IF_ERROR(protocol::bind_endpoint(pull, output_addr));
  router_.emplace(std::move(router));
  pull_.emplace(std::move(pull));
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return io_error(std::string("eventfd: ") + std::strerror(errno));

  const std::filesystem::path binary = options.enginecore_binary.empty() ? self_exe_dir() / "k2serve-enginecore"
                                                                         : options.enginecore_binary;
  std::vector<std::string> args = {"--handshake", input_addr, "--rank", "0", "--parent-pid",
                                   std::to_string(::getpid())};
  if (!options.worker_binary.empty()) args.insert(args.end(), {"--worker-binary", options.worker_binary.string()});
  K2_ASSIGN_OR_RETURN(engine_, ChildProcess::spawn(binary, args));
  engine_pid_ = engine_.pid();

  protocol::HandshakeOptions hs;
  hs.expected_peers = 1;
  hs.expected_kind = protocol::ProcessKind::kEngineCore;
  hs.hello_timeout = options.hello_timeout;
  hs.ready_timeout = options.ready_timeout;
  hs.peers_alive = [this]() -> Status {
    if (auto st = engine_.try_wait()) return unavailable("the enginecore exited during startup (" + describe_wait_status(*st) + ")");
    return Status::ok_status();
  };
  const std::string config_json = engine_config_table().to_json(options.config).dump();
  std::vector<std::string> inputs{input_addr}, outputs{output_addr};
  inputs.insert(inputs.end(), options.extra_inputs.begin(), options.extra_inputs.end());
  outputs.insert(outputs.end(), options.extra_outputs.begin(), options.extra_outputs.end());
  auto config_for = [&](const protocol::Hello& hello) -> Result<protocol::EngineConfigMsg> {
    return protocol::EngineConfigMsg{config_json, run_id_, inputs, outputs, hello.rank,
                                     prompt_arena_->name(), vocabulary, "", ""};
  };
  K2_ASSIGN_OR_RETURN(std::vector<protocol::HandshakePeer> peers, protocol::handshake_serve(*router_, hs, config_for));
  const protocol::ReadyMsg& ready = peers[0].ready;
  engine_identity_ = peers[0].routing_id;
  capacities_ = EngineCapacities{ready.max_model_len, ready.num_kv_blocks, ready.block_size, ready.max_num_seqs,
                                 ready.max_num_batched_tokens, {}};
  segments_ = ready.shm_segments;
  nlohmann::json facts = nlohmann::json::parse(ready.config_json, nullptr, false);
  if (facts.is_object()) {
    for (const auto& p : facts.value("worker_pids", nlohmann::json::array()))
      if (p.is_number_integer()) worker_pids_.push_back(p.get<pid_t>());
    for (const auto& e : facts.value("eos_token_ids", nlohmann::json::array()))
      if (e.is_number_integer()) capacities_.eos_token_ids.push_back(e.get<int32_t>());
  }
  healthy_ = true;
  io_thread_ = std::thread([this] { io_loop(); });
  spdlog::info("engine ready: pid {}, {} KV blocks of {} tokens, max_model_len {}", engine_pid_,
               capacities_.num_kv_blocks, capacities_.block_size, capacities_.max_model_len);
  return Status::ok_status();
}

ZmqEngineClient::~ZmqEngineClient() { shutdown(); }

Status ZmqEngineClient::add_request(openai::GenerateRequest request, openai::OutputCallback on_output) {
  K2_ASSIGN_OR_RETURN(protocol::SamplingParams params, to_protocol_params(request.sampling));
  if (request.prompt_ids.empty()) return invalid_argument("the prompt is empty");
  protocol::AddRequest add;
  add.request_id = request.request_id;
  if (Result<protocol::TokenIds> placed = protocol::place_tokens(request.prompt_ids, &*prompt_arena_); placed.ok()) {
    add.prompt = std::move(placed).value();
    if (add.prompt.location == protocol::DataLocation::kShm) ++num_prompts_in_shm_;
  } else {
    spdlog::debug("request {}: prompt sent inline ({})", request.request_id, placed.status().to_string());
    add.prompt = protocol::inline_tokens(std::move(request.prompt_ids));
  }
  add.params = std::move(params);
  add.arrival_time = now_seconds();
  add.priority = request.priority;
  add.cache_salt = request.cache_salt.value_or("");
  add.group_id = request.group_id.value_or("");
  if (request.structured) {
    add.structured = protocol::StructuredOutputParams{request.structured->json_schema, request.structured->json_object,
                                                      request.structured->reasoning_end_token_id};
  }
  std::vector<ShmHandle> media_blocks;
  if (!request.media.empty()) {
    auto placed = place_media(request.media, media_blocks);
    if (!placed.ok()) {
      if (add.prompt.location == protocol::DataLocation::kShm) (void)prompt_arena_->free(add.prompt.handle);
      return placed.status();
    }
    add.media = std::move(placed).value();
  }
  {
    std::lock_guard lock(mu_);
    Status refused;
    if (!healthy_) {
      refused = unavailable("the engine is not running: " + dead_reason_);
    } else if (in_flight_.contains(add.request_id)) {
      refused = invalid_argument("request id " + add.request_id + " is already in flight");
    }
    if (!refused.ok()) {
      if (add.prompt.location == protocol::DataLocation::kShm) (void)prompt_arena_->free(add.prompt.handle);
      free_media(media_blocks);
      return refused;
    }
    in_flight_[add.request_id] = InFlight{std::make_shared<openai::OutputCallback>(std::move(on_output)),
                                          add.params.logprobs.has_value(), std::move(media_blocks)};
    send_queue_.push_back(std::move(add));
  }
  wake();
  return Status::ok_status();
}

Result<std::vector<protocol::MediaItem>> ZmqEngineClient::place_media(const std::vector<openai::MediaInput>& media,
                                                                       std::vector<ShmHandle>& blocks) {
  std::vector<protocol::MediaItem> items;
  for (const auto& m : media) {
    if (!m.pixel_values) return invalid_argument("a media item has no pixel values");
    const std::span<const std::byte> bytes = std::as_bytes(std::span<const float>(*m.pixel_values));
    Result<ShmHandle> h = media_arena_->store(bytes);
    if (!h.ok()) {
      free_media(blocks);
      blocks.clear();
      return unavailable("no room for the request's media in shared memory: " + h.status().message());
    }
    blocks.push_back(*h);
    protocol::MediaItem item;
    item.arena = media_arena_->name();
    item.pixels = *h;
    item.grid_t = m.grid_t;
    item.grid_h = m.grid_h;
    item.grid_w = m.grid_w;
    item.hash_low = m.hash_low;
    item.hash_high = m.hash_high;
    item.offset = static_cast<uint32_t>(m.offset);
    item.num_tokens = static_cast<uint32_t>(m.num_tokens);
    items.push_back(std::move(item));
  }
  return items;
}

void ZmqEngineClient::free_media(const std::vector<ShmHandle>& blocks) {
  for (const auto& h : blocks) {
    if (Status s = media_arena_->free(h); !s.ok()) spdlog::warn("engine client: media block not freed: {}", s.to_string());
  }
}

void ZmqEngineClient::abort(const std::string& request_id) {
  {
    std::lock_guard lock(mu_);
    if (!in_flight_.contains(request_id)) return;
    send_queue_.push_back(protocol::AbortRequests{{request_id}});
  }
  wake();
}

openai::EngineStats ZmqEngineClient::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

size_t ZmqEngineClient::num_in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_.size();
}

bool ZmqEngineClient::drain(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return drained_.wait_for(lock, timeout, [this] { return in_flight_.empty(); });
}

std::string ZmqEngineClient::dead_reason() const {
  std::lock_guard lock(mu_);
  return dead_reason_;
}

void ZmqEngineClient::wake() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof(one));
}

void ZmqEngineClient::io_loop() {
  while (!stopping_.load()) {
    // After a death only the wake-up matters (the pidfd would stay readable).
    std::vector<zmq::pollitem_t> items = {{nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    if (healthy_) items.push_back({pull_->handle(), 0, ZMQ_POLLIN, 0});
    if (healthy_ && engine_.pidfd() >= 0) items.push_back({nullptr, engine_.pidfd(), ZMQ_POLLIN, 0});
    try {
      zmq::poll(items.data(), items.size(), 100ms);
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        mark_dead(std::string("poll failed: ") + e.what());
        return;
      }
    }
    if (items[0].revents & ZMQ_POLLIN) drain_eventfd(wake_fd_);
    if (healthy_) receive_outputs();
    if (healthy_) send_queued();
    if (healthy_) {
      if (auto st = engine_.try_wait()) mark_dead("the enginecore exited (" + describe_wait_status(*st) + ")");
    }
  }
}

void ZmqEngineClient::send_queued() {
  std::deque<protocol::Message> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(send_queue_);
  }
  for (const auto& m : batch) {
    Status s = protocol::send(*router_, m, engine_identity_);
    if (!s.ok()) {
      mark_dead("cannot reach the enginecore: " + s.to_string());
      return;
    }
  }
}

void ZmqEngineClient::receive_outputs() {
  while (healthy_) {
    auto got = protocol::receive_valid(*pull_, 0ms, /*routed=*/false);
    if (!got.ok()) {
      mark_dead("output socket failed: " + got.status().to_string());
      return;
    }
    if (!*got) return;
    if (auto* outputs = std::get_if<protocol::EngineOutputs>(&(*got)->message)) {
      dispatch(*outputs);
    } else if (auto* dead = std::get_if<protocol::EngineDead>(&(*got)->message)) {
      mark_dead("the engine died: " + dead->reason);
    } else {
      spdlog::warn("engine client: dropped an unexpected {}",
                   protocol::message_type_name(protocol::message_type((*got)->message)));
    }
  }
}

void ZmqEngineClient::dispatch(protocol::EngineOutputs& outputs) {
  std::vector<std::pair<std::shared_ptr<openai::OutputCallback>, openai::EngineOutput>> calls;
  {
    std::lock_guard lock(mu_);
    if (outputs.scheduler_stats) {
      const auto& st = *outputs.scheduler_stats;
      stats_ = openai::EngineStats{st.num_running,      st.num_waiting,     st.kv_cache_usage,
                                   st.prefix_cache_queries, st.prefix_cache_hits, st.num_preemptions,
                                   st.mm_cache_queries,  st.mm_cache_hits,
                                   openai::expert_load_after(stats_.expert_load, st.expert_load)};
    }
    for (const auto& o : outputs.outputs) {
      auto it = in_flight_.find(o.request_id);
      if (it == in_flight_.end()) continue;
      calls.emplace_back(it->second.callback, to_engine_output(o, outputs.timestamp));
      if (o.finish_reason != protocol::FinishReason::kNone) {
        free_media(it->second.media_blocks);
        in_flight_.erase(it);
      }
    }
    if (in_flight_.empty()) drained_.notify_all();
  }
  for (auto& [callback, output] : calls) (*callback)(std::move(output));
}

void ZmqEngineClient::fail_all(const std::string& reason) {
  std::unordered_map<std::string, InFlight> failed;
  {
    std::lock_guard lock(mu_);
    failed.swap(in_flight_);
    send_queue_.clear();
    drained_.notify_all();
  }
  for (auto& [id, f] : failed) {
    if (media_arena_) free_media(f.media_blocks);
    openai::EngineOutput out;
    out.finish_reason = openai::FinishReason::kError;
    out.error = reason;
    (*f.callback)(std::move(out));
  }
}

void ZmqEngineClient::mark_dead(const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (!healthy_) return;
    healthy_ = false;
    dead_reason_ = reason;
  }
  spdlog::error("engine client: {}", reason);
  fail_all(reason);
  // The enginecore exits by itself after EngineDead; give it time, then make sure.
  engine_.terminate(5000ms);
  remove_run_segments();
}

void ZmqEngineClient::remove_run_segments() {
  // Workers die with the enginecore (PR_SET_PDEATHSIG) and create no segment after startup,
  // so the names can go now, even while a dying worker still maps its segment.
  for (const auto& name : segments_) ::shm_unlink(name.c_str());
  if (engine_pid_ > 0) (void)remove_segments_of(engine_pid_);
  for (pid_t pid : worker_pids_) (void)remove_segments_of(pid);
}

void ZmqEngineClient::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stopping_ = true;
  wake();
  if (io_thread_.joinable()) io_thread_.join();
  const bool was_healthy = healthy_.exchange(false);
  if (engine_pid_ > 0) {
    const int st = engine_.terminate(10000ms);
    if (was_healthy && (WIFSIGNALED(st) || WEXITSTATUS(st) != 0))
      spdlog::warn("engine client: the enginecore ended with {}", describe_wait_status(st));
  }
  {
    std::lock_guard lock(mu_);
    if (dead_reason_.empty()) dead_reason_ = "the engine was shut down";
  }
  fail_all("the engine was shut down");
  remove_run_segments();
  router_.reset();
  pull_.reset();
  context_.reset();
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

}  // namespace k2::frontend
