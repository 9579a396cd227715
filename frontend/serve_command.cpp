#include "frontend/serve_command.h"

#include <signal.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/log.h"
#include "frontend/engine/zmq_engine_client.h"
#include "frontend/openai/api_server.h"
#include "frontend/openai/server_config.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {
namespace {

constexpr const char* kUsage = "k2serve serve MODEL_DIR [options]";

// SIGTERM/SIGINT are blocked in every thread and taken synchronously by the main loop, so
// no handler runs in the middle of a request thread.
// What each id decodes to, for the engine's grammars; special tokens can never be part of
// constrained text.
std::vector<std::string> grammar_vocabulary(const Tokenizer& tokenizer) {
  std::vector<std::string> out(static_cast<size_t>(tokenizer.vocab_size()));
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    if (!tokenizer.is_special(id)) out[static_cast<size_t>(id)] = std::string(tokenizer.token_bytes(id));
  }
  return out;
}

// vLLM flags this build parses but cannot honour yet: a clear error, never a silent single
// engine. An external rank (--data-parallel-rank) is one independent engine and is fine.
Status check_supported(const EngineConfig& cfg) {
  if (cfg.data_parallel_size > 1 && !cfg.data_parallel_rank) {
    return unimplemented("--data-parallel-size " + std::to_string(cfg.data_parallel_size) +
                         " in one deployment (one enginecore per rank) is not implemented yet; run external ranks: "
                         "k2serve launch-dp --dp-size N ... with k2serve proxy in front");
  }
  if (cfg.data_parallel_rank && cfg.enable_expert_parallel && cfg.data_parallel_size > 1) {
    return unimplemented("expert parallelism across data-parallel ranks is not implemented yet");
  }
  if (cfg.headless) return unimplemented("--headless (joining a master over the network) is not implemented yet");
  if (cfg.api_server_count != 1) return unimplemented("--api-server-count other than 1 is not implemented yet");
  return Status::ok_status();
}

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Waits for a shutdown signal or the engine's death. True: a signal asked us to stop.
bool wait_for_stop(const sigset_t& signals, const frontend::ZmqEngineClient& engine) {
  const timespec tick{0, 100'000'000};
  while (engine.healthy()) {
    int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return true;
    }
  }
  return false;
}

int run_server(const EngineConfig& cfg) {
  auto server_cfg = openai::make_server_config(cfg);
  if (!server_cfg.ok()) {
    spdlog::error("{}", server_cfg.status().to_string());
    return 2;
  }
  auto tokenizer = Tokenizer::load(cfg.tokenizer);
  if (!tokenizer.ok()) {
    spdlog::error("loading the tokenizer: {}", tokenizer.status().to_string());
    return 1;
  }
  frontend::ZmqEngineClientOptions engine_opts;
  engine_opts.config = cfg;
  engine_opts.vocabulary = grammar_vocabulary(**tokenizer);
  auto engine = frontend::ZmqEngineClient::start(engine_opts);
  if (!engine.ok()) {
    spdlog::error("starting the engine: {}", engine.status().to_string());
    return 1;
  }
  std::shared_ptr<frontend::ZmqEngineClient> client(std::move(*engine));
  server_cfg->max_model_len = client->capacities().max_model_len;
  auto server = openai::OpenAiServer::create(*server_cfg, openai::make_http_options(cfg), *tokenizer, client);
  if (!server.ok() || !(*server)->start().ok()) {
    spdlog::error("starting the API server: {}",
                  server.ok() ? "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port)
                              : server.status().to_string());
    client->shutdown();
    return 1;
  }
  (*server)->set_ready(true);
  spdlog::info("serving {} on http://{}:{} (try: curl http://{}:{}/v1/models)", server_cfg->served_model_names[0],
               cfg.host, (*server)->port(), cfg.host, (*server)->port());

  const bool asked_to_stop = wait_for_stop(shutdown_signals(), *client);
  (*server)->set_ready(false);
  if (!asked_to_stop) {
    spdlog::error("engine died: {}", client->dead_reason());
    // In-flight requests already got their error; give the HTTP threads a moment to send it.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    (*server)->stop();
    client->shutdown();
    return 1;
  }
  const auto timeout = std::chrono::seconds(cfg.shutdown_timeout);
  size_t left = (*server)->drain(timeout);
  if (left > 0) spdlog::warn("{} requests still open after the {} s shutdown timeout", left, cfg.shutdown_timeout);
  (*server)->stop();
  client->shutdown();
  return 0;
}

}  // namespace

int serve_command(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << engine_config_table().help(EngineConfig{}, kUsage);
      return 0;
    }
  }
  auto cfg = parse_engine_config(args);
  if (!cfg.ok()) {
    std::cerr << "k2serve serve: " << cfg.status().message() << "\n";
    return 2;
  }
  if (Status st = check_supported(*cfg); !st.ok()) {
    std::cerr << "k2serve serve: " << st.message() << "\n";
    return 2;
  }
  init_logging("api_server", cfg->uvicorn_log_level);
  // Block the shutdown signals before any thread exists so every thread inherits the mask.
  sigset_t signals = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return run_server(*cfg);
}

}  // namespace k2
