#include "frontend/serve_command.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <iostream>
#include <thread>

#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/log.h"
#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_lb_mode.h"
#include "frontend/api_server_group.h"
#include "frontend/headless.h"
#include "frontend/serve_checks.h"
#include "frontend/engine/zmq_engine_client.h"
#include "frontend/openai/api_server.h"
#include "frontend/openai/expert_metrics.h"
#include "frontend/openai/server_config.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2 {
namespace {

using frontend::ZmqEngineClient;

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

sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

// Also the API servers' attached/go signal (see api_server_group.h).
sigset_t serve_signals() {
  sigset_t set = shutdown_signals();
  sigaddset(&set, attached_signal());
  return set;
}

enum class StopCause { kSignal, kEngineDied, kApiServerDied };

// Waits for a shutdown signal, the engine's death or (API server 0) another API server's.
// `on_go`: the go signal of API server 0 (API servers 1..N-1 only).
StopCause wait_for_stop(const ZmqEngineClient& engine, ApiServerGroup* group, const std::function<void()>& on_go = {}) {
  const sigset_t signals = serve_signals();
  const timespec tick{0, 100'000'000};
  while (engine.healthy()) {
    if (group != nullptr) {
      if (auto gone = group->exited()) {
        spdlog::error("{}: the deployment is down", *gone);
        return StopCause::kApiServerDied;
      }
    }
    int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      return StopCause::kSignal;
    }
    if (sig == attached_signal() && on_go) on_go();
  }
  return StopCause::kEngineDied;
}

// Per-rank series (vLLM labels its metrics by engine): what each data-parallel rank
// published and what this API server sent it, labelled by deployment-wide rank.
void add_rank_metrics(http::MetricsRegistry& registry, const std::string& model,
                      std::shared_ptr<ZmqEngineClient> client) {
  const std::vector<std::string> labels{"model_name", "engine"};
  auto& routed = registry.counter("k2:engine_requests_routed_total", "Requests the API server sent to the engine.", labels);
  auto& finished = registry.counter("k2:engine_requests_finished_total", "Requests the engine finished.", labels);
  auto& running = registry.gauge("k2:engine_num_requests_running", "Requests running on the engine.", labels);
  auto& waiting = registry.gauge("k2:engine_num_requests_waiting", "Requests waiting on the engine.", labels);
  auto& alive = registry.gauge("k2:engine_healthy", "1 while the data-parallel rank is alive.", labels);
  registry.add_collector([=, &routed, &finished, &running, &waiting, &alive] {
    for (const frontend::DpRankStatus& r : client->rank_status()) {
      const http::LabelValues l{model, std::to_string(r.rank)};
      routed.set_total(l, static_cast<double>(r.requests_routed));
      finished.set_total(l, static_cast<double>(r.requests_finished));
      running.set(l, static_cast<double>(r.stats.num_running));
      waiting.set(l, static_cast<double>(r.stats.num_waiting));
      alive.set(l, r.alive ? 1 : 0);
    }
  });
}

// API server 0's engines: one, every rank (internal load balancing) or this node's (hybrid); the
// client counts them from the config (dp_lb_mode.h).
Result<std::shared_ptr<ZmqEngineClient>> start_engine(const EngineConfig& cfg, std::vector<std::string> vocab,
                                                                const ApiServerAddresses* others) {
  frontend::ZmqEngineClientOptions engine_opts;
  engine_opts.config = cfg;
  engine_opts.vocabulary = std::move(vocab);
  if (others != nullptr) {
    engine_opts.extra_inputs = others->inputs();
    engine_opts.extra_outputs = others->outputs();
    engine_opts.extra_tcp_inputs = others->tcp_inputs();
    engine_opts.extra_tcp_outputs = others->tcp_outputs();
  }
  if (auto layout = dp_layout(cfg); layout.ok() && layout->mode == DpLbMode::kInternal) {
    engine_opts.control_plane_key_file = cfg.control_plane_key_file.value_or("");
    engine_opts.hello_timeout = protocol::engine_ready_timeout();
  }
  K2_ASSIGN_OR_RETURN(auto engine, ZmqEngineClient::start(engine_opts));
  return std::shared_ptr<ZmqEngineClient>(std::move(engine));
}

// Data-parallel ranks behind the client (per-rank /metrics, a dead rank degrades to 503).
size_t num_ranks(const ZmqEngineClient& client) { return client.rank_status().size(); }

std::vector<pid_t> engine_pids(const ZmqEngineClient& client) {
  std::vector<pid_t> pids;
  for (const auto& r : client.rank_status()) pids.push_back(r.local ? r.pid : 0);  // 0: another node's
  return pids;
}

// The HTTP side of one API server: the OpenAI server on the engine client, listening, with
// its /metrics collectors; not ready yet.
Result<std::unique_ptr<openai::OpenAiServer>> start_http(const EngineConfig& cfg, openai::ServerConfig server_cfg,
                                                          std::shared_ptr<const Tokenizer> tokenizer,
                                                          std::shared_ptr<ZmqEngineClient> client) {
  server_cfg.max_model_len = client->capacities().max_model_len;
  http::ServerOptions http_opts = openai::make_http_options(cfg);
  http_opts.reuse_port = cfg.api_server_count > 1;
  auto server = openai::OpenAiServer::create(server_cfg, http_opts, tokenizer, client);
  if (!server.ok()) return server.status();
  if (!(*server)->start().ok()) return io_error("cannot listen on " + cfg.host + ":" + std::to_string(cfg.port));
  if (num_ranks(*client) > 1) add_rank_metrics((*server)->metrics(), server_cfg.served_model_names[0], client);
  openai::add_expert_load_metrics((*server)->metrics(), server_cfg.served_model_names[0], client);
  return std::move(*server);
}

// After the engines or an API server died (asked_to_stop false) or a signal: drains, stops.
// With data parallelism a dead rank leaves the deployment serving 503 until SIGTERM.
int finish_serving(const EngineConfig& cfg, openai::OpenAiServer& server, ZmqEngineClient& client, StopCause cause,
                   ApiServerGroup* group) {
  if (cause == StopCause::kEngineDied && num_ranks(client) > 1) {
    // The deployment lost a rank: keep answering (/health 503, requests refused) so the
    // operator and the load balancer see it, until told to stop.
    spdlog::error("data-parallel deployment degraded: {}; serving 503 until SIGTERM", client.dead_reason());
    const sigset_t signals = shutdown_signals();
    while (sigwaitinfo(&signals, nullptr) < 0) {
    }
    cause = StopCause::kSignal;
  }
  server.set_ready(false);
  const auto grace = std::chrono::seconds(cfg.shutdown_timeout) + std::chrono::seconds(5);
  if (cause != StopCause::kSignal) {
    if (cause == StopCause::kEngineDied) spdlog::error("engine died: {}", client.dead_reason());
    if (group != nullptr) group->terminate(grace);
    // In-flight requests already got their error; give the HTTP threads a moment to send it.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    server.stop();
    client.shutdown();
    return 1;
  }
  if (group != nullptr) group->ask_to_stop();  // they drain theirs while we drain ours
  const auto timeout = std::chrono::seconds(cfg.shutdown_timeout);
  size_t left = server.drain(timeout);
  if (left > 0) spdlog::warn("{} requests still open after the {} s shutdown timeout", left, cfg.shutdown_timeout);
  if (group != nullptr) group->terminate(grace);
  server.stop();
  client.shutdown();
  return 0;
}

// API server 0: launches the engines (and, with --api-server-count N > 1, API servers
// 1..N-1 once it listens), turns ready when all are.
int run_server(const EngineConfig& cfg, const std::vector<std::string>& serve_args) {
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
  std::optional<ApiServerAddresses> others;
  if (cfg.api_server_count > 1) {
    // Ranks on other nodes (--headless) reach API servers 1.. over tcp:// too.
    const int64_t size = cfg.data_parallel_size;
    const bool remote_ranks = cfg.data_parallel_size_local.value_or(size) < size;
    auto made = ApiServerAddresses::create(cfg.api_server_count, remote_ranks ? cfg.data_parallel_address : "",
                                           cfg.data_parallel_rpc_port);
    if (!made.ok()) {
      spdlog::error("{}", made.status().to_string());
      return 1;
    }
    others.emplace(std::move(*made));
  }
  auto engine = start_engine(cfg, grammar_vocabulary(**tokenizer), others ? &*others : nullptr);
  if (!engine.ok()) {
    spdlog::error("starting the engine: {}", engine.status().to_string());
    return 1;
  }
  std::shared_ptr<ZmqEngineClient> client = std::move(*engine);
  auto server = start_http(cfg, *server_cfg, *tokenizer, client);
  if (!server.ok()) {
    spdlog::error("starting the API server: {}", server.status().to_string());
    client->shutdown();
    return 1;
  }
  std::optional<ApiServerGroup> group;
  if (others) {
    auto spawned = ApiServerGroup::spawn(serve_args, (*server)->port(), *others, engine_pids(*client));
    Result<bool> attached = spawned.ok() ? Result<bool>(true) : Result<bool>(spawned.status());
    if (spawned.ok()) {
      group.emplace(std::move(*spawned));
      attached = group->await_attached(serve_signals(), std::chrono::minutes(10), [&] { return client->healthy(); });
    }
    if (!attached.ok() || !*attached) {
      if (!attached.ok()) spdlog::error("starting the API servers: {}", attached.status().to_string());
      return finish_serving(cfg, **server, *client, attached.ok() ? StopCause::kSignal : StopCause::kApiServerDied,
                            group ? &*group : nullptr);
    }
  }
  (*server)->set_ready(true);
  if (group) group->go();
  spdlog::info("serving {} on http://{}:{} (try: curl http://{}:{}/v1/models){}", server_cfg->served_model_names[0],
               cfg.host, (*server)->port(), cfg.host, (*server)->port(),
               group ? " with " + std::to_string(cfg.api_server_count) + " API servers" : "");
  const StopCause cause = wait_for_stop(*client, group ? &*group : nullptr);
  return finish_serving(cfg, **server, *client, cause, group ? &*group : nullptr);
}

// API server k >= 1 of --api-server-count: attaches to the engines API server 0 launched,
// listens on the same port, reports attached, turns ready on API server 0's go.
int run_attached(const EngineConfig& cfg, const InternalServeFlags& internal) {
  if (Status s = die_with_parent(internal.parent_pid); !s.ok()) {
    spdlog::error("{}", s.to_string());
    return 1;
  }
  auto server_cfg = openai::make_server_config(cfg);
  auto tokenizer = server_cfg.ok() ? Tokenizer::load(cfg.tokenizer)
                                   : Result<std::shared_ptr<const Tokenizer>>(server_cfg.status());
  if (!tokenizer.ok()) {
    spdlog::error("API server {}: {}", internal.index, tokenizer.status().to_string());
    return 1;
  }
  frontend::EngineAttachOptions opts;
  opts.input_address = internal.input_address;
  opts.output_address = internal.output_address;
  opts.tcp_input_address = internal.tcp_input_address;
  opts.tcp_output_address = internal.tcp_output_address;
  opts.control_plane_key_file = cfg.control_plane_key_file.value_or("");
  opts.engine_pids = internal.engine_pids;
  auto attached = ZmqEngineClient::attach(opts);
  if (!attached.ok()) {
    spdlog::error("API server {}: attaching to the engines: {}", internal.index, attached.status().to_string());
    return 1;
  }
  std::shared_ptr<ZmqEngineClient> client = std::move(*attached);
  auto server = start_http(cfg, *server_cfg, *tokenizer, client);
  if (!server.ok()) {
    spdlog::error("API server {}: {}", internal.index, server.status().to_string());
    client->shutdown();
    return 1;
  }
  sigval value{};
  value.sival_int = static_cast<int>(internal.index);
  if (::sigqueue(internal.parent_pid, attached_signal(), value) != 0) {
    spdlog::error("API server {}: cannot reach API server 0: {}", internal.index, std::strerror(errno));
    client->shutdown();
    return 1;
  }
  auto on_go = [&] {
    (*server)->set_ready(true);
    spdlog::info("API server {} ready on port {}", internal.index, (*server)->port());
  };
  const StopCause cause = wait_for_stop(*client, nullptr, on_go);
  return finish_serving(cfg, **server, *client, cause, nullptr);
}

}  // namespace

int serve_command(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << engine_config_table().help(EngineConfig{}, kUsage);
      return 0;
    }
  }
  std::vector<std::string> serve_args = args;
  auto internal = take_internal_flags(serve_args);
  if (!internal.ok()) {
    std::cerr << "k2serve serve: " << internal.status().message() << "\n";
    return 2;
  }
  auto cfg = parse_engine_config(serve_args);
  if (!cfg.ok()) {
    std::cerr << "k2serve serve: " << cfg.status().message() << "\n";
    return 2;
  }
  if (Status st = check_supported(*cfg); !st.ok()) {
    std::cerr << "k2serve serve: " << st.message() << "\n";
    return 2;
  }
  init_logging(internal->index == 0 ? "api_server" : "api_server_" + std::to_string(internal->index),
               cfg->uvicorn_log_level);
  // Block the shutdown signals before any thread exists so every thread inherits the mask.
  sigset_t signals = serve_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (cfg->headless) return run_headless(*cfg);
  if (internal->index > 0) return run_attached(*cfg, *internal);
  if (auto layout = dp_layout(*cfg); layout->mode != DpLbMode::kNone)  // check_supported() accepted it
    spdlog::info("data parallelism: {}, {} on this node", describe(*layout),
                 cfg->data_parallel_size_local.value_or(layout->ranks_behind));
  return run_server(*cfg, serve_args);
}

}  // namespace k2
