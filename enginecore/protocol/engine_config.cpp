#include "enginecore/protocol/engine_config.h"

#include <cstdlib>
#include <set>

#include "enginecore/protocol/sglang_flags.h"

namespace k2 {

namespace {

OptionTable<EngineConfig> build_table() {
  using C = EngineConfig;
  OptionTable<C> t;
  t.add("--model,--model-path", &C::model, "model directory (also the first positional argument)", "model")
      .add("--tokenizer", &C::tokenizer, "tokenizer directory (default: the model directory)", "model")
      .add("--served-model-name", &C::served_model_name, "model name(s) reported by the API; the first is used in responses", "model")
      .add("--trust-remote-code", &C::trust_remote_code, "accepted for vLLM compatibility; no remote code is ever run", "model")
      .add("--dtype", &C::dtype, "activation dtype: auto, bfloat16, float32 (float32 runs the exact reference path)", "model")
      .add("--quantization,-q", &C::quantization, "quantize routed experts at load: int8, int4", "model")
      .add("--load-format", &C::load_format, "auto (safetensors) or dummy (random weights in the checkpoint's shapes)", "model")
      .add("--max-model-len", &C::max_model_len, "context length (default: the model's max_position_embeddings)", "model")
      .add("--seed", &C::seed, "random seed for sampling of requests without their own seed", "model")
      .add("--generation-config", &C::generation_config, "auto: take default sampling params from generation_config.json; vllm: ignore it", "model");
  t.add("--max-num-seqs", &C::max_num_seqs, "maximum sequences per step", "scheduler")
      .add("--max-num-batched-tokens", &C::max_num_batched_tokens, "token budget per step (default: 2048, or max-model-len without chunked prefill)", "scheduler")
      .add("--block-size", &C::block_size, "tokens per KV cache block (a power of two)", "scheduler")
      .add("--kv-cache-dtype", &C::kv_cache_dtype, "latent KV cache element type: auto (float32), bfloat16, float32, fp8 (= fp8_e4m3, a scale per 64 values)", "scheduler")
      .add("--gpu-memory-utilization", &C::gpu_memory_utilization, "fraction of device memory for weights + KV cache (CPU: of free RAM)", "scheduler")
      .add("--kv-cache-memory", &C::kv_cache_memory, "KV cache size in bytes (overrides --gpu-memory-utilization)", "scheduler")
      .add("--enable-prefix-caching", &C::enable_prefix_caching, "reuse KV blocks of shared prompt prefixes", "scheduler")
      .add("--enable-chunked-prefill", &C::enable_chunked_prefill, "split long prompts across steps within the token budget", "scheduler")
      .add("--enforce-eager", &C::enforce_eager, "accepted for vLLM compatibility (no graph capture on CPU)", "scheduler");
  t.add("--tensor-parallel-size,-tp", &C::tensor_parallel_size, "workers per engine, sharding heads and MLP widths", "parallel")
      .add("--data-parallel-size,-dp", &C::data_parallel_size, "number of engine replicas (data-parallel ranks)", "parallel")
      .add("--data-parallel-size-local,-dpl", &C::data_parallel_size_local, "data-parallel ranks on this node", "parallel")
      .add("--data-parallel-rank,-dpn", &C::data_parallel_rank, "run one externally load-balanced rank", "parallel")
      .add("--data-parallel-start-rank,-dpr", &C::data_parallel_start_rank, "first rank on this node", "parallel")
      .add("--data-parallel-hybrid-lb,-dph", &C::data_parallel_hybrid_lb, "hybrid load balancing: this node's API "
           "server balances over its own ranks only (implied by --data-parallel-start-rank without --headless)",
           "parallel")
      .add("--data-parallel-address,-dpa", &C::data_parallel_address, "address of the data-parallel master", "parallel")
      .add("--data-parallel-rpc-port,-dpp", &C::data_parallel_rpc_port, "handshake port of the data-parallel master", "parallel")
      .add("--enable-expert-parallel", &C::enable_expert_parallel, "partition routed experts over ranks", "parallel")
      .add("--headless", &C::headless, "run engines (or, with --nnodes, tensor-parallel workers) only and join the master", "parallel")
      .add("--master-addr", &C::master_addr, "with --nnodes: node 0's address (its engine and the tensor-parallel group's rendezvous)", "parallel")
      .add("--master-port", &C::master_port, "with --nnodes: node 0's worker port P (P + 1: the group's rendezvous)", "parallel")
      .add("--api-server-count", &C::api_server_count, "number of API server processes", "parallel")
      .add("--control-plane-key-file", &C::control_plane_key_file,
           "key file from `k2serve keygen` (the same on every node, mode 0600): authenticates and encrypts the "
           "tcp:// sockets between nodes with ZeroMQ CURVE; peers without the key are refused and logged",
           "parallel");
  const std::string sglang = "SGLang-style launch (mapped once onto the parallel options above)";
  t.add("--nnodes", &C::nnodes, "nodes of the deployment; one engine (vLLM, SGLang --dp 1): its tensor-parallel "
           "group spans them; several (SGLang): each node holds whole engines", sglang)
      .add("--node-rank", &C::node_rank, "this node's index in [0, --nnodes); node 0 serves the API, the others "
           "run --headless", sglang)
      .add("--dist-init-addr", &C::dist_init_addr, "HOST:PORT ([IPv6]:PORT) of node 0: becomes "
           "--data-parallel-address and --data-parallel-rpc-port", sglang)
      .add("--tp-size,--tp", &C::tp_size, "SGLang's tensor-parallel size: the total over all nodes (with "
           "--enable-dp-attention split into --dp-size engines of tp/dp workers)", sglang)
      .add("--dp-size,--dp", &C::dp_size, "with --enable-dp-attention: attention data-parallel ranks (engines); "
           "without: full replicas", sglang)
      .add("--ep-size,--ep,--expert-parallel-size", &C::ep_size, "expert-parallel size: 1, or --tp-size "
           "(experts spread over every rank, vLLM's --enable-expert-parallel)", sglang)
      .add("--enable-dp-attention", &C::enable_dp_attention, "data-parallel attention: --dp-size engines of "
           "--tp-size/--dp-size workers each", sglang);
  t.add("--host", &C::host, "address to listen on", "server")
      .add("--port", &C::port, "port to listen on", "server")
      .add("--api-key", &C::api_key, "require this bearer key on /v1 routes (also VLLM_API_KEY)", "server")
      .add("--chat-template", &C::chat_template, "chat template file (default: the tokenizer's)", "server")
      .add("--enable-auto-tool-choice", &C::enable_auto_tool_choice, "let the model decide to call tools (needs --tool-call-parser)", "server")
      .add("--tool-call-parser", &C::tool_call_parser, "tool-call parser: kimi_k2", "server")
      .add("--reasoning-parser", &C::reasoning_parser, "reasoning parser: kimi_k2", "server")
      .add("--uvicorn-log-level", &C::uvicorn_log_level, "log level: debug, info, warning, error", "server")
      .add("--disable-log-requests", &C::disable_log_requests, "no access-log line per request", "server")
      .add("--disable-log-stats", &C::disable_log_stats, "no periodic throughput log lines", "server")
      .add("--enable-request-id-headers", &C::enable_request_id_headers, "echo X-Request-Id in responses", "server")
      .add("--shutdown-timeout", &C::shutdown_timeout, "seconds to drain in-flight requests on SIGTERM", "server")
      .add("--allowed-local-media-path", &C::allowed_local_media_path, "directory file:// media may be read from", "server")
      .add("--allowed-media-domains", &C::allowed_media_domains, "domains media URLs may be fetched from", "server");
  t.add("--mm-processor-cache-gb", &C::mm_processor_cache_gb, "GiB of encoder outputs cached per worker by media content hash (0: off)", "multimodal")
      .add("--limit-mm-per-prompt", &C::limit_mm_per_prompt, "JSON, e.g. '{\"image\": 2}': media items per prompt and modality", "multimodal")
      .add("--max-media-bytes", &C::max_media_bytes, "largest encoded media item in bytes", "multimodal")
      .add("--mm-encoder-tp-mode", &C::mm_encoder_tp_mode, "with -tp > 1: weights (shard the vision tower) or data (each rank encodes a share of the media)", "multimodal");
  return t;
}

bool is_power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

}  // namespace

const OptionTable<EngineConfig>& engine_config_table() {
  static const OptionTable<EngineConfig> table = build_table();
  return table;
}

Status validate_engine_config(const EngineConfig& c) {
  if (c.model.empty()) return invalid_argument("no model given: k2serve serve MODEL_DIR [options]");
  if (!is_power_of_two(c.block_size)) return invalid_argument("--block-size must be a power of two");
  if (c.max_num_seqs < 1) return invalid_argument("--max-num-seqs must be >= 1");
  if (c.max_num_batched_tokens && *c.max_num_batched_tokens < 1)
    return invalid_argument("--max-num-batched-tokens must be >= 1");
  if (c.max_model_len && *c.max_model_len < 1) return invalid_argument("--max-model-len must be >= 1");
  if (c.gpu_memory_utilization <= 0.0 || c.gpu_memory_utilization > 1.0)
    return invalid_argument("--gpu-memory-utilization must be in (0, 1]");
  if (c.port < 0 || c.port > 65535) return invalid_argument("--port must be in [0, 65535]");
  if (c.tensor_parallel_size < 1 || c.data_parallel_size < 1)
    return invalid_argument("parallel sizes must be >= 1");
  if (c.dtype != "auto" && c.dtype != "bfloat16" && c.dtype != "float32" && c.dtype != "float")
    return invalid_argument("--dtype must be auto, bfloat16 or float32, got " + c.dtype);
  if (c.load_format != "auto" && c.load_format != "safetensors" && c.load_format != "dummy")
    return invalid_argument("--load-format must be auto, safetensors or dummy, got " + c.load_format);
  if (c.quantization && *c.quantization != "int8" && *c.quantization != "int4" && *c.quantization != "fp8")
    return invalid_argument("--quantization must be int8, int4 or fp8, got " + *c.quantization);
  if (c.tool_call_parser && *c.tool_call_parser != "kimi_k2")
    return invalid_argument("--tool-call-parser: only kimi_k2 is supported, got " + *c.tool_call_parser);
  if (c.reasoning_parser && *c.reasoning_parser != "kimi_k2")
    return invalid_argument("--reasoning-parser: only kimi_k2 is supported, got " + *c.reasoning_parser);
  if (c.mm_processor_cache_gb < 0) return invalid_argument("--mm-processor-cache-gb must be >= 0");
  if (c.max_media_bytes < 1) return invalid_argument("--max-media-bytes must be >= 1");
  if (c.mm_encoder_tp_mode != "data" && c.mm_encoder_tp_mode != "weights")
    return invalid_argument("--mm-encoder-tp-mode must be data or weights, got " + c.mm_encoder_tp_mode);
  if (c.enable_auto_tool_choice && !c.tool_call_parser)
    return invalid_argument("--enable-auto-tool-choice needs --tool-call-parser");
  return {};
}

Result<EngineConfig> parse_engine_config(const std::vector<std::string>& args) {
  EngineConfig cfg;
  std::vector<std::string> positionals;
  std::set<std::string> given;
  K2_RETURN_IF_ERROR(engine_config_table().parse(args, cfg, &positionals, &given));
  K2_RETURN_IF_ERROR(apply_sglang_flags(cfg, given));
  if (positionals.size() > 1) return invalid_argument("unexpected argument '" + positionals[1] + "'");
  if (!positionals.empty()) {
    if (!cfg.model.empty() && cfg.model != positionals[0])
      return invalid_argument("model given twice: '" + positionals[0] + "' and --model '" + cfg.model + "'");
    cfg.model = positionals[0];
  }
  if (cfg.tokenizer.empty()) cfg.tokenizer = cfg.model;
  if (cfg.served_model_name.empty() && !cfg.model.empty()) cfg.served_model_name.push_back(cfg.model);
  if (!cfg.api_key) {
    if (const char* env = std::getenv("VLLM_API_KEY"); env && *env) cfg.api_key = std::string(env);
  }
  K2_RETURN_IF_ERROR(validate_engine_config(cfg));
  return cfg;
}

}  // namespace k2
