// EngineConfig: every option of `k2serve serve`, with vLLM's names, meanings and defaults.
// The table in engine_config.cpp is the one declaration of each option: it drives CLI
// parsing, --help and --config files. The frontend sends the parsed config to every
// enginecore and worker as JSON in the handshake. Plain value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/protocol/option_table.h"

namespace k2 {

struct EngineConfig {
  // Model
  std::string model;
  std::string tokenizer;
  std::vector<std::string> served_model_name;
  bool trust_remote_code = false;
  std::string dtype = "auto";
  std::optional<std::string> quantization;
  std::string load_format = "auto";
  std::optional<int64_t> max_model_len;
  int64_t seed = 0;
  std::string generation_config = "auto";

  // Scheduler and KV cache
  int64_t max_num_seqs = 256;
  std::optional<int64_t> max_num_batched_tokens;
  int64_t block_size = 16;
  std::string kv_cache_dtype = "auto";  // auto (bf16 on the fast path, float32 on the exact one), bfloat16, float32
  double gpu_memory_utilization = 0.9;
  std::optional<int64_t> kv_cache_memory;
  bool enable_prefix_caching = true;
  bool enable_chunked_prefill = true;
  bool enforce_eager = false;

  // Parallelism
  int64_t tensor_parallel_size = 1;
  int64_t data_parallel_size = 1;
  std::optional<int64_t> data_parallel_size_local;
  std::optional<int64_t> data_parallel_rank;
  std::optional<int64_t> data_parallel_start_rank;
  bool data_parallel_hybrid_lb = false;  // dp_lb_mode.h
  std::string data_parallel_address = "127.0.0.1";
  int64_t data_parallel_rpc_port = 29550;
  bool enable_expert_parallel = false;
  bool headless = false;
  int64_t api_server_count = 1;
  // ZeroMQ CURVE key pair shared by every node (k2serve keygen); absent: tcp:// control
  // sockets are unauthenticated, as vLLM.
  std::optional<std::string> control_plane_key_file;

  // Tensor parallelism across nodes (tp_nodes.h): node 0's address, where its engine takes
  // the workers of the other nodes (master_port) and its TP group meets (master_port + 1).
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29501;

  // SGLang's launch flags, as SGLang means them (see sglang_flags.h). parse_engine_config()
  // maps them onto the parallel fields above once and then clears them, so nothing past
  // parsing (and no peer receiving the config) ever reads them; except --nnodes and
  // --node-rank of one engine over several nodes, which are vLLM's flags too (tp_nodes.h).
  std::optional<int64_t> nnodes;
  std::optional<int64_t> node_rank;
  std::optional<std::string> dist_init_addr;  // HOST:PORT of node 0, [IPv6]:PORT
  std::optional<int64_t> tp_size;             // total over all nodes
  std::optional<int64_t> dp_size;
  std::optional<int64_t> ep_size;
  bool enable_dp_attention = false;

  // Server
  std::string host = "127.0.0.1";
  int64_t port = 8000;
  std::optional<std::string> api_key;
  std::optional<std::string> chat_template;
  bool enable_auto_tool_choice = false;
  std::optional<std::string> tool_call_parser;
  std::optional<std::string> reasoning_parser;
  std::string uvicorn_log_level = "info";
  bool disable_log_requests = false;
  bool disable_log_stats = false;
  bool enable_request_id_headers = false;
  int64_t shutdown_timeout = 0;
  std::optional<std::string> allowed_local_media_path;
  std::vector<std::string> allowed_media_domains;

  // Multimodal
  // vLLM's: GiB of encoder outputs each worker keeps, keyed by the media's content hash (0:
  // no cache, every item is encoded every time it is scheduled).
  double mm_processor_cache_gb = 4.0;
  // vLLM's JSON form, e.g. {"image": 2, "video": 0}: items of a modality one prompt may carry
  // (absent modality: no limit).
  std::optional<std::string> limit_mm_per_prompt;
  int64_t max_media_bytes = int64_t{20} << 20;  // encoded bytes of one media item
  // vLLM's: with tensor parallelism, "weights" shards the vision tower like the text model;
  // "data" keeps it whole on every rank, each encoding a share of the media items.
  std::string mm_encoder_tp_mode = "weights";
};

const OptionTable<EngineConfig>& engine_config_table();

// Parses `k2serve serve` arguments: MODEL positional or --model, VLLM_API_KEY from the
// environment when --api-key is absent, then range checks.
Result<EngineConfig> parse_engine_config(const std::vector<std::string>& args);
Status validate_engine_config(const EngineConfig& cfg);

}  // namespace k2
