// Every message that crosses a process boundary in k2serve, in one place.
//
// Plain value structs (thread-compatible, own their data) with positional msgpack encodings
// (MSGPACK_DEFINE packs each as an array in field order). Rules for changing this file:
// append new fields at the end of a struct (older decoders ignore extra trailing fields and
// newer decoders default missing trailing ones); never reorder or remove; anything else bumps
// kProtocolVersion, which travels as the first byte of every message (see codec.h).
// Modelled on vLLM V1's EngineCoreRequest / EngineCoreOutputs / SchedulerOutput.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <msgpack.hpp>

#include "shm/handle.h"

namespace k2::protocol {

inline constexpr uint8_t kProtocolVersion = 4;

// StepPlan ids outside the scheduler's (which count from 1): a dummy forward of an idle
// data-parallel rank in a running wave (engine_loop.cpp), whose routed tokens are no request's
// and stay out of the expert-load statistics; and a plan without requests that only collects
// the expert load (EngineCore, when it falls idle).
inline constexpr uint64_t kDummyStepBit = uint64_t{1} << 63;
inline constexpr uint64_t kExpertLoadStepBit = uint64_t{1} << 62;

// The second byte of frame 0; also the index + 1 of the type in Message.
enum class MsgType : uint8_t {
  kHello = 1,
  kEngineConfig = 2,
  kReady = 3,
  kAddRequest = 4,
  kAbortRequests = 5,
  kUtility = 6,
  kEngineOutputs = 7,
  kStepPlan = 8,
  kStepResult = 9,
  kEngineDead = 10,
  kDpControl = 11,
};

enum class ProcessKind : uint8_t { kFrontend = 0, kEngineCore = 1, kWorker = 2 };
enum class FinishReason : uint8_t { kNone = 0, kStop = 1, kLength = 2, kAbort = 3, kError = 4 };
enum class DataLocation : uint8_t { kInline = 0, kShm = 1, kFrame = 2 };
enum class RequestEventType : uint8_t { kQueued = 0, kScheduled = 1, kPreempted = 2 };
// Data-parallel control traffic (see DpControl).
enum class DpControlKind : uint8_t {
  kJoin = 0,          // engine -> coordinator, first message: learn the engine's identity
  kStartWave = 1,     // engine -> coordinator: a request reached me while the wave was idle
  kStartDpWave = 2,   // coordinator -> engines: step (dummy steps if idle) until the wave ends
  kSync = 3,          // engine -> coordinator: my part of the all-reduce of "has unfinished"
  kSyncResult = 4,    // coordinator -> engines: the all-reduce's result
  kHeartbeat = 5,     // remote engine -> frontend output socket, every second
};

}  // namespace k2::protocol

MSGPACK_ADD_ENUM(k2::protocol::ProcessKind);
MSGPACK_ADD_ENUM(k2::protocol::FinishReason);
MSGPACK_ADD_ENUM(k2::protocol::DataLocation);
MSGPACK_ADD_ENUM(k2::protocol::RequestEventType);
MSGPACK_ADD_ENUM(k2::protocol::DpControlKind);

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
namespace adaptor {
// ShmHandle lives in shm/ (which knows nothing of msgpack): [arena_id, offset, bytes, generation].
template <>
struct pack<k2::ShmHandle> {
  template <class Stream>
  packer<Stream>& operator()(packer<Stream>& pk, const k2::ShmHandle& h) const {
    pk.pack_array(4);
    pk.pack(h.arena_id);
    pk.pack(h.offset);
    pk.pack(h.bytes);
    pk.pack(h.generation);
    return pk;
  }
};
template <>
struct convert<k2::ShmHandle> {
  const msgpack::object& operator()(const msgpack::object& o, k2::ShmHandle& h) const {
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 4) throw msgpack::type_error();
    h.arena_id = o.via.array.ptr[0].as<uint64_t>();
    h.offset = o.via.array.ptr[1].as<uint64_t>();
    h.bytes = o.via.array.ptr[2].as<uint64_t>();
    h.generation = o.via.array.ptr[3].as<uint64_t>();
    return o;
  }
};
}  // namespace adaptor
}  // MSGPACK_API_VERSION_NAMESPACE
}  // namespace msgpack

namespace k2::protocol {

// ---------------------------------------------------------------- shared pieces

// Token ids that travel inline (small), in a shm arena (large, same node), or as an extra
// ZMQ frame (large, across nodes; the codec moves them and a decoded message never has
// kFrame). `count` is the number of ids in every case.
struct TokenIds {
  DataLocation location = DataLocation::kInline;
  std::vector<int32_t> ids;  // kInline
  ShmHandle handle{};        // kShm: `count` little-endian int32s
  uint32_t frame_index = 0;  // kFrame: index among the extra frames
  uint32_t count = 0;
  bool operator==(const TokenIds&) const = default;
  MSGPACK_DEFINE(location, ids, handle, frame_index, count);
};

TokenIds inline_tokens(std::vector<int32_t> ids);

struct LogitBias {
  int32_t token_id = 0;
  float bias = 0.f;
  bool operator==(const LogitBias&) const = default;
  MSGPACK_DEFINE(token_id, bias);
};

// What the sampler needs; OpenAI/vLLM range checks happen in the frontend, the codec only
// rejects what would break the engine (see validate()).
struct SamplingParams {
  float temperature = 1.f;  // 0 = greedy
  float top_p = 1.f;
  int32_t top_k = 0;  // 0 or -1 = disabled
  float min_p = 0.f;
  std::optional<int64_t> seed;
  uint32_t max_tokens = 16;
  uint32_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> stop_token_ids;
  std::vector<int32_t> eos_token_ids;
  std::optional<uint32_t> logprobs;         // number of top logprobs per sampled token
  std::optional<uint32_t> prompt_logprobs;  // same for prompt positions
  float presence_penalty = 0.f;
  float frequency_penalty = 0.f;
  float repetition_penalty = 1.f;
  std::vector<LogitBias> logit_bias;
  uint32_t n = 1;
  bool operator==(const SamplingParams&) const = default;
  MSGPACK_DEFINE(temperature, top_p, top_k, min_p, seed, max_tokens, min_tokens, ignore_eos, stop_token_ids,
                 eos_token_ids, logprobs, prompt_logprobs, presence_penalty, frequency_penalty, repetition_penalty,
                 logit_bias, n);
};

// Constrained decoding of one request (vLLM's structured outputs: tool_choice required or
// named, response_format). The enginecore compiles the grammar and sends each step's mask of
// allowed tokens with the plan.
struct StructuredOutputParams {
  std::string json_schema;   // the schema as JSON text (key order = property order); "" with json_object
  bool json_object = false;  // any JSON object
  // Reasoning models: the grammar applies from the token after this one (</think>); -1: from
  // the first generated token.
  int32_t reasoning_end_token_id = -1;
  bool operator==(const StructuredOutputParams&) const = default;
  MSGPACK_DEFINE(json_schema, json_object, reasoning_end_token_id);
};

// Logprobs of `num_positions` positions, `width` = 1 + top-k candidates each (the sampled
// token first), flattened row-major as vLLM's LogprobsLists.
struct TokenLogprobs {
  uint32_t num_positions = 0;
  uint32_t width = 0;
  std::vector<int32_t> token_ids;  // num_positions * width
  std::vector<float> logprobs;     // num_positions * width
  std::vector<int32_t> ranks;      // num_positions: rank of the sampled token
  bool operator==(const TokenLogprobs&) const = default;
  MSGPACK_DEFINE(num_positions, width, token_ids, logprobs, ranks);
};

// One preprocessed media item of a prompt (an image, or one video chunk): its float32
// pixel_values ([patches, 3, patch, patch]) sit in the frontend's media arena, which the
// frontend frees once the request has finished; the workers read them there in the step whose
// ScheduledRequest::encode_media lists the item and keep the encoder output under `hash`.
struct MediaItem {
  std::string arena;       // segment name of the arena `pixels` lives in
  ShmHandle pixels{};      // grid_t * grid_h * grid_w * 3 * patch * patch float32s
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;
  uint64_t hash_low = 0, hash_high = 0;  // XXH3-128 of pixels + grid: the encoder-cache key
  uint32_t offset = 0;      // first placeholder token of the item in the prompt
  uint32_t num_tokens = 0;  // placeholder tokens (= encoder output rows)
  bool operator==(const MediaItem&) const = default;
  MSGPACK_DEFINE(arena, pixels, grid_t, grid_h, grid_w, hash_low, hash_high, offset, num_tokens);
};

// ---------------------------------------------------------------- handshake

// First message of a peer (DEALER) to its parent (ROUTER).
struct Hello {
  ProcessKind kind = ProcessKind::kEngineCore;
  uint32_t rank = 0;
  uint32_t version = kProtocolVersion;
  bool local = true;
  bool headless = false;
  int32_t pid = 0;
  bool operator==(const Hello&) const = default;
  MSGPACK_DEFINE(kind, rank, version, local, headless, pid);
};

// Parent -> peer: the configuration and where to connect after the handshake.
struct EngineConfigMsg {
  std::string config_json;  // the typed EngineConfig as JSON
  std::string run_id;       // shm segment names of this run
  std::vector<std::string> input_addresses;
  std::vector<std::string> output_addresses;
  uint32_t rank = 0;
  // The sender's arena of large prompt arrays ("" = all inline); the receiver opens it and
  // frees each block once it has read it.
  std::string prompt_arena;
  // In prompt_arena: the bytes of every token id (a msgpack array of bin, "" for special
  // tokens), for structured outputs; invalid = none. The receiver frees it once read.
  ShmHandle vocabulary{};
  // Data parallelism with request waves: the coordinator's ROUTER; the engine of the first
  // rank binds it, every engine connects to it. "" = no coordination.
  std::string coordinator_address;
  // Engines that cannot open prompt_arena (another node): the vocabulary itself, as
  // store_vocabulary lays it out (a msgpack array of bin). "" = none.
  std::string vocabulary_inline;
  bool operator==(const EngineConfigMsg&) const = default;
  MSGPACK_DEFINE(config_json, run_id, input_addresses, output_addresses, rank, prompt_arena, vocabulary,
                 coordinator_address, vocabulary_inline);
};

// Peer -> parent once initialized (weights loaded, KV cache allocated).
struct ReadyMsg {
  uint32_t rank = 0;
  uint64_t num_kv_blocks = 0;
  uint32_t block_size = 0;
  uint32_t max_model_len = 0;
  uint32_t max_num_seqs = 0;
  uint32_t max_num_batched_tokens = 0;
  uint64_t config_hash = 0;
  std::string config_json;                // capacities and facts the parent did not know
  std::vector<std::string> shm_segments;  // segments this peer owns (for cleanup on its death)
  bool operator==(const ReadyMsg&) const = default;
  MSGPACK_DEFINE(rank, num_kv_blocks, block_size, max_model_len, max_num_seqs, max_num_batched_tokens, config_hash,
                 config_json, shm_segments);
};

// ---------------------------------------------------------------- frontend -> enginecore

struct AddRequest {
  std::string request_id;
  TokenIds prompt;
  SamplingParams params;
  uint32_t client_index = 0;  // which frontend's PULL socket gets the outputs
  double arrival_time = 0;    // seconds since the epoch, frontend clock
  int32_t priority = 0;
  std::string cache_salt;  // vLLM's cache_salt: prefix-cache blocks are shared only within a salt
  std::string group_id;    // the n > 1 siblings of one prompt (they share its KV blocks)
  std::optional<StructuredOutputParams> structured;
  std::vector<MediaItem> media;  // in prompt order; spans disjoint and inside the prompt
  bool operator==(const AddRequest&) const = default;
  MSGPACK_DEFINE(request_id, prompt, params, client_index, arrival_time, priority, cache_salt, group_id, structured,
                 media);
};

struct AbortRequests {
  std::vector<std::string> request_ids;
  bool operator==(const AbortRequests&) const = default;
  MSGPACK_DEFINE(request_ids);
};

// An RPC to the engine (reset_prefix_cache, ...); answered by EngineOutputs::utility_output.
struct Utility {
  uint32_t client_index = 0;
  uint64_t call_id = 0;
  std::string method;
  std::string args_json;
  bool operator==(const Utility&) const = default;
  MSGPACK_DEFINE(client_index, call_id, method, args_json);
};

// ---------------------------------------------------------------- enginecore -> frontend

struct UtilityOutput {
  uint64_t call_id = 0;
  std::optional<std::string> failure_message;
  std::string result_json;
  bool operator==(const UtilityOutput&) const = default;
  MSGPACK_DEFINE(call_id, failure_message, result_json);
};

struct RequestEvent {
  RequestEventType type = RequestEventType::kQueued;
  double timestamp = 0;  // engine clock, seconds
  bool operator==(const RequestEvent&) const = default;
  MSGPACK_DEFINE(type, timestamp);
};

struct RequestOutput {
  std::string request_id;
  std::vector<int32_t> new_token_ids;
  std::optional<TokenLogprobs> new_logprobs;
  std::optional<TokenLogprobs> new_prompt_logprobs;
  FinishReason finish_reason = FinishReason::kNone;
  std::optional<int32_t> stop_token;  // the stop_token_ids / EOS id that finished it
  uint32_t num_cached_tokens = 0;     // prefix-cache hit of the prompt
  std::vector<RequestEvent> events;
  bool operator==(const RequestOutput&) const = default;
  MSGPACK_DEFINE(request_id, new_token_ids, new_logprobs, new_prompt_logprobs, finish_reason, stop_token,
                 num_cached_tokens, events);
};

// Tokens routed to each routed expert of each MoE layer: the load balance of the experts,
// for /metrics. Row i counts model layer layers[i] (ascending), column e the global expert e.
// A StepResult carries the counts since the worker's previous report, SchedulerStats the
// engine's totals since it started (both only when asked / changed: a Kimi-K2 table is
// 60 x 384 counters, too much for every step).
struct ExpertLoad {
  uint32_t num_experts = 0;
  std::vector<uint32_t> layers;
  std::vector<uint64_t> tokens;  // [layers.size() x num_experts], row-major
  bool operator==(const ExpertLoad&) const = default;
  MSGPACK_DEFINE(num_experts, layers, tokens);
};

struct SchedulerStats {
  uint32_t num_running = 0;
  uint32_t num_waiting = 0;
  float kv_cache_usage = 0.f;  // 0..1
  uint64_t prefix_cache_queries = 0;
  uint64_t prefix_cache_hits = 0;
  uint64_t num_preemptions = 0;
  uint64_t step = 0;
  // The workers' encoder cache (worker 0), cumulative: media items looked up / found.
  uint64_t mm_cache_queries = 0;
  uint64_t mm_cache_hits = 0;
  // The engine's expert-load totals; present only in the first stats after they changed
  // (the receiver keeps the last ones it saw). Absent in frames of older builds.
  std::optional<ExpertLoad> expert_load;
  bool operator==(const SchedulerStats&) const = default;
  MSGPACK_DEFINE(num_running, num_waiting, kv_cache_usage, prefix_cache_queries, prefix_cache_hits, num_preemptions,
                 step, mm_cache_queries, mm_cache_hits, expert_load);
};

struct EngineOutputs {
  uint32_t engine_index = 0;
  std::vector<RequestOutput> outputs;
  std::optional<SchedulerStats> scheduler_stats;
  double timestamp = 0;
  std::optional<UtilityOutput> utility_output;
  std::vector<std::string> finished_requests;
  bool operator==(const EngineOutputs&) const = default;
  MSGPACK_DEFINE(engine_index, outputs, scheduler_stats, timestamp, utility_output, finished_requests);
};

// The engine is going away (sent on the output socket before exiting on a fatal error).
struct EngineDead {
  std::string reason;
  uint32_t engine_index = 0;  // the data-parallel rank that died
  bool operator==(const EngineDead&) const = default;
  MSGPACK_DEFINE(reason, engine_index);
};

// ---------------------------------------------------------------- data parallelism

// vLLM's DP wave protocol (v1/engine/coordinator.py, DPEngineCoreProc), over the
// coordinator's ROUTER (engines connect DEALERs with their rank identity). `wave` counts
// the running -> idle transitions of the whole deployment; `round` numbers the all-reduces
// of "has unfinished requests" within a wave (one every few steps on every rank).
struct DpControl {
  DpControlKind kind = DpControlKind::kJoin;
  uint32_t rank = 0;
  uint64_t wave = 0;
  uint64_t round = 0;
  bool unfinished = false;    // kSync: this rank has work; kSyncResult: some rank has
  int32_t exclude_rank = -1;  // kStartDpWave: the rank that started the wave (already running)
  bool operator==(const DpControl&) const = default;
  MSGPACK_DEFINE(kind, rank, wave, round, unfinished, exclude_rank);
};

// ---------------------------------------------------------------- enginecore <-> workers

// The block table of one request: replace=true carries the whole table (new or resumed
// request), replace=false only the blocks appended since the last step.
struct BlockTableUpdate {
  bool replace = true;
  std::vector<uint32_t> block_ids;
  bool operator==(const BlockTableUpdate&) const = default;
  MSGPACK_DEFINE(replace, block_ids);
};

struct ScheduledRequest {
  std::string request_id;
  uint32_t slot = 0;            // the request's row in the workers' persistent batch
  TokenIds token_ids;           // the tokens computed this step
  uint32_t start_position = 0;  // position of token_ids[0] (= tokens already computed)
  uint32_t num_tokens = 0;
  BlockTableUpdate blocks;
  bool sample = false;         // sample a token after this step (last prefill chunk or decode)
  int32_t params_index = -1;   // into StepPlan::sampling_params; -1: the worker already has them
  uint32_t num_output_tokens = 0;  // generated so far (seeded generators, penalties)
  // New or resumed requests only (blocks.replace): the ids of [0, start_position) whose KV
  // the prefix cache already holds, so the worker knows the whole sequence (penalties).
  std::vector<int32_t> cached_token_ids;
  uint32_t num_prompt_tokens = 0;  // splits the worker's token history into prompt / output
  // Structured outputs: bit (id % 32) of word (id / 32) set = id may be sampled this step;
  // ids past the mask are not allowed. Empty: no constraint.
  std::vector<uint32_t> allowed_token_mask;
  // New or resumed requests only (blocks.replace): the prompt's media items.
  std::vector<MediaItem> media;
  // Indices into `media` to encode in this step, before the chunk runs (the scheduler's
  // encoder budget decides). Every other item the chunk reaches is held by the worker since
  // the request (re)started, or has the content hash of one that is.
  std::vector<uint32_t> encode_media;
  bool operator==(const ScheduledRequest&) const = default;
  MSGPACK_DEFINE(request_id, slot, token_ids, start_position, num_tokens, blocks, sample, params_index,
                 num_output_tokens, cached_token_ids, num_prompt_tokens, allowed_token_mask, media, encode_media);
};

struct StepPlan {
  uint64_t step_id = 0;
  std::vector<ScheduledRequest> requests;
  std::vector<SamplingParams> sampling_params;
  std::vector<std::string> finished_request_ids;  // workers drop their state for these
  uint32_t total_num_tokens = 0;
  // Every worker reports the expert load routed since its last report after this step (the
  // enginecore asks at most once a second; the same plan reaches every rank, so expert-parallel
  // ranks can sum their counts in step).
  bool report_expert_load = false;
  bool operator==(const StepPlan&) const = default;
  MSGPACK_DEFINE(step_id, requests, sampling_params, finished_request_ids, total_num_tokens, report_expert_load);
};

struct SampledRequest {
  uint32_t slot = 0;
  std::vector<int32_t> token_ids;
  std::optional<TokenLogprobs> logprobs;
  std::optional<TokenLogprobs> prompt_logprobs;
  bool operator==(const SampledRequest&) const = default;
  MSGPACK_DEFINE(slot, token_ids, logprobs, prompt_logprobs);
};

struct StepResult {
  uint64_t step_id = 0;
  uint32_t worker_rank = 0;
  std::vector<SampledRequest> samples;
  std::optional<ShmHandle> logprobs_handle;  // bulk logprobs in an arena instead of inline
  std::string error;                         // non-empty: the step failed on this worker
  uint64_t mm_cache_queries = 0;             // the worker's encoder cache, cumulative
  uint64_t mm_cache_hits = 0;
  // With plan.report_expert_load, on rank 0: tokens routed since the previous report, summed
  // over the ranks that hold distinct experts. Absent in frames of older builds.
  std::optional<ExpertLoad> expert_load;
  bool operator==(const StepResult&) const = default;
  MSGPACK_DEFINE(step_id, worker_rank, samples, logprobs_handle, error, mm_cache_queries, mm_cache_hits, expert_load);
};

// ---------------------------------------------------------------- the union

// Alternative i has MsgType i + 1.
using Message = std::variant<Hello, EngineConfigMsg, ReadyMsg, AddRequest, AbortRequests, Utility, EngineOutputs,
                             StepPlan, StepResult, EngineDead, DpControl>;

inline MsgType message_type(const Message& m) { return static_cast<MsgType>(m.index() + 1); }
const char* message_type_name(MsgType type);

}  // namespace k2::protocol
