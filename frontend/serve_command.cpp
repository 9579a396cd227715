#include "frontend/serve_command.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <type_traits>
#include <thread>

#include "enginecore/protocol/engine_config.h"
#include "enginecore/protocol/log.h"
#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "frontend/engine/dp_engine_client.h"
#include "frontend/engine/zmq_engine_client.h"
#include "frontend/openai/api_server.h"
#include "frontend/openai/expert_metrics.h"
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

// vLLM's data-parallel flag rules (reference/vllm-v1.md 2.1) and what this build cannot
// honour yet: a clear error, never a silent single engine.
Status check_supported(const EngineConfig& cfg) {
  const int64_t size = cfg.data_parallel_size;
  const int64_t local = cfg.data_parallel_size_local.value_or(size);
  if (cfg.enable_expert_parallel && size > 1)
    return unimplemented("expert parallelism across data-parallel ranks is not implemented yet");
  if (cfg.data_parallel_rank) {
    if (cfg.headless) return invalid_argument("--headless and --data-parallel-rank exclude each other");
    if (cfg.data_parallel_size_local && *cfg.data_parallel_size_local != 1)
      return invalid_argument("--data-parallel-rank (external load balancing) needs --data-parallel-size-local 1");
  }
  if (local < 0 || local > size)
    return invalid_argument("--data-parallel-size-local must be in [0, --data-parallel-size]");
  if (cfg.headless) {
    if (cfg.api_server_count > 1) return invalid_argument("--headless runs no API server: drop --api-server-count");
    if (size < 2) return invalid_argument("--headless joins a data-parallel master: give --data-parallel-size > 1");
    const int64_t start = cfg.data_parallel_start_rank.value_or(0);
    if (start < 1 || start + local > size)
      return invalid_argument("--headless needs --data-parallel-start-rank S with 1 <= S and S + "
                              "--data-parallel-size-local <= --data-parallel-size (ranks 0.. are the master's)");
  } else if (cfg.data_parallel_start_rank && !cfg.data_parallel_rank && size > 1) {
    return unimplemented("--data-parallel-start-rank on a node with an API server (hybrid load balancing) is not "
                         "implemented yet; run the other nodes with --headless");
  }
  if (!cfg.headless && !cfg.data_parallel_rank && size > 1 && local == 0)
    return unimplemented("--data-parallel-size-local 0 (an API-only head node) is not implemented yet");
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
template <class Client>
bool wait_for_stop(const sigset_t& signals, const Client& engine) {
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

// Per-rank series (vLLM labels its metrics by engine): what each data-parallel rank
// published and what this API server sent it.
void add_rank_metrics(http::MetricsRegistry& registry, const std::string& model,
                      std::shared_ptr<frontend::DpEngineClient> client) {
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

Result<std::shared_ptr<frontend::ZmqEngineClient>> start_engine(const EngineConfig& cfg, std::vector<std::string> vocab,
                                                                frontend::ZmqEngineClient*) {
  frontend::ZmqEngineClientOptions engine_opts;
  engine_opts.config = cfg;
  engine_opts.vocabulary = std::move(vocab);
  K2_ASSIGN_OR_RETURN(auto engine, frontend::ZmqEngineClient::start(engine_opts));
  return std::shared_ptr<frontend::ZmqEngineClient>(std::move(engine));
}

Result<std::shared_ptr<frontend::DpEngineClient>> start_engine(const EngineConfig& cfg, std::vector<std::string> vocab,
                                                               frontend::DpEngineClient*) {
  frontend::DpEngineClientOptions engine_opts;
  engine_opts.config = cfg;
  engine_opts.vocabulary = std::move(vocab);
  engine_opts.control_plane_key_file = cfg.control_plane_key_file.value_or("");
  if (const char* t = std::getenv("VLLM_ENGINE_READY_TIMEOUT_S"); t != nullptr && std::atoi(t) > 0)
    engine_opts.hello_timeout = std::chrono::seconds(std::atoi(t));
  K2_ASSIGN_OR_RETURN(auto engine, frontend::DpEngineClient::start(engine_opts));
  return std::shared_ptr<frontend::DpEngineClient>(std::move(engine));
}

template <class Client>
int run_server(const EngineConfig& cfg) {
  constexpr bool kDataParallel = std::is_same_v<Client, frontend::DpEngineClient>;
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
  auto engine = start_engine(cfg, grammar_vocabulary(**tokenizer), static_cast<Client*>(nullptr));
  if (!engine.ok()) {
    spdlog::error("starting the engine: {}", engine.status().to_string());
    return 1;
  }
  std::shared_ptr<Client> client = std::move(*engine);
  server_cfg->max_model_len = client->capacities().max_model_len;
  auto server = openai::OpenAiServer::create(*server_cfg, openai::make_http_options(cfg), *tokenizer, client);
  if (!server.ok() || !(*server)->start().ok()) {
    spdlog::error("starting the API server: {}",
                  server.ok() ? "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port)
                              : server.status().to_string());
    client->shutdown();
    return 1;
  }
  if constexpr (kDataParallel) add_rank_metrics((*server)->metrics(), server_cfg->served_model_names[0], client);
  openai::add_expert_load_metrics((*server)->metrics(), server_cfg->served_model_names[0], client);
  (*server)->set_ready(true);
  spdlog::info("serving {} on http://{}:{} (try: curl http://{}:{}/v1/models)", server_cfg->served_model_names[0],
               cfg.host, (*server)->port(), cfg.host, (*server)->port());

  bool asked_to_stop = wait_for_stop(shutdown_signals(), *client);
  if constexpr (kDataParallel) {
    if (!asked_to_stop) {
      // The deployment lost a rank: keep answering (/health 503, requests refused) so the
      // operator and the load balancer see it, until told to stop.
      spdlog::error("data-parallel deployment degraded: {}; serving 503 until SIGTERM", client->dead_reason());
      const sigset_t signals = shutdown_signals();
      while (sigwaitinfo(&signals, nullptr) < 0) {
      }
      asked_to_stop = true;
    }
  }
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

// --headless: this node's enginecores (ranks start .. start + local - 1) join the master at
// --data-parallel-address:--data-parallel-rpc-port over tcp://. Runs until a signal (0) or
// until one of them exits (1; the others are stopped: the deployment lost a rank anyway).
int run_headless(const EngineConfig& cfg) {
  auto ports = protocol::dp_ports(cfg.data_parallel_rpc_port);
  if (!ports.ok()) {
    spdlog::error("{}", ports.status().to_string());
    return 2;
  }
  const std::string master = protocol::tcp_address(cfg.data_parallel_address, ports->requests);
  const std::string key_file = cfg.control_plane_key_file.value_or("");
  // Checked here too, so that a bad key file is one clear error before any enginecore starts.
  if (auto security = protocol::ControlPlaneSecurity::load(key_file); !security.ok()) {
    spdlog::error("--control-plane-key-file: {}", security.status().to_string());
    return 2;
  }
  const int64_t start = cfg.data_parallel_start_rank.value_or(0);
  const int64_t local = cfg.data_parallel_size_local.value_or(cfg.data_parallel_size);
  std::vector<ChildProcess> engines;
  for (int64_t i = 0; i < local; ++i) {
    std::vector<std::string> args = {"--handshake", master, "--rank", std::to_string(start + i), "--parent-pid",
                                     std::to_string(::getpid()), "--dp-local-index", std::to_string(i),
                                     "--dp-local-size", std::to_string(local), "--remote"};
    if (!key_file.empty()) args.insert(args.end(), {"--control-plane-key-file", key_file});
    auto child = ChildProcess::spawn(self_exe_dir() / "k2serve-enginecore", args);
    if (!child.ok()) {
      spdlog::error("starting the enginecore of rank {}: {}", start + i, child.status().to_string());
      return 1;
    }
    engines.push_back(std::move(*child));
  }
  spdlog::info("headless: ranks {}..{} of {} joining {}{}", start, start + local - 1, cfg.data_parallel_size, master,
               key_file.empty() ? "" : " (CURVE control plane)");
  const sigset_t signals = shutdown_signals();
  const timespec tick{0, 100'000'000};
  int code = 0;
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
    bool exited = false;
    for (size_t i = 0; i < engines.size(); ++i) {
      if (auto st = engines[i].try_wait()) {
        spdlog::error("headless: the enginecore of rank {} exited ({})", start + static_cast<int64_t>(i),
                      describe_wait_status(*st));
        exited = true;
      }
    }
    if (exited) {
      code = 1;
      break;
    }
  }
  for (auto& e : engines) e.signal(SIGTERM);
  for (auto& e : engines) (void)e.terminate(std::chrono::seconds(10));
  return code;
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
  if (cfg->headless) return run_headless(*cfg);
  if (cfg->data_parallel_size > 1 && !cfg->data_parallel_rank) {
    spdlog::info("data parallelism: {} ranks behind this API server, {} on this node (internal load balancing)",
                 cfg->data_parallel_size, cfg->data_parallel_size_local.value_or(cfg->data_parallel_size));
    return run_server<frontend::DpEngineClient>(*cfg);
  }
  return run_server<frontend::ZmqEngineClient>(*cfg);
}

}  // namespace k2
