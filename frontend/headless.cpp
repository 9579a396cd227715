#include "frontend/headless.h"

#include <signal.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/tp_nodes.h"
#include "enginecore/protocol/zmq_channel.h"

namespace k2 {
namespace {

// Waits for SIGTERM/SIGINT or a child's exit, then stops the others. `name` says which child
// index i is in log lines. Returns the process exit code: 1 when a child exited, unless it
// exited 0 and `clean_exit_ok` (workers whose engine closed them).
int supervise(std::vector<ChildProcess>& children, const std::function<std::string(size_t)>& name,
              bool clean_exit_ok) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  const timespec tick{0, 100'000'000};
  int code = 0;
  while (true) {
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) break;
    bool exited = false;
    for (size_t i = 0; i < children.size(); ++i) {
      if (auto st = children[i].try_wait()) {
        const bool clean = clean_exit_ok && WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
        if (clean) {
          spdlog::info("headless: {} exited ({})", name(i), describe_wait_status(*st));
        } else {
          spdlog::error("headless: {} exited ({})", name(i), describe_wait_status(*st));
          code = 1;
        }
        exited = true;
      }
    }
    if (exited) break;
  }
  for (auto& c : children) c.signal(SIGTERM);
  for (auto& c : children) (void)c.terminate(std::chrono::seconds(10));
  return code;
}

// Checked here too, so that a bad key file is one clear error before any child starts.
bool key_file_usable(const std::string& key_file) {
  if (auto security = protocol::ControlPlaneSecurity::load(key_file); !security.ok()) {
    spdlog::error("--control-plane-key-file: {}", security.status().to_string());
    return false;
  }
  return true;
}

int run_headless_engines(const EngineConfig& cfg) {
  auto ports = protocol::dp_ports(cfg.data_parallel_rpc_port);
  if (!ports.ok()) {
    spdlog::error("{}", ports.status().to_string());
    return 2;
  }
  const std::string master = protocol::tcp_address(cfg.data_parallel_address, ports->requests);
  const std::string key_file = cfg.control_plane_key_file.value_or("");
  if (!key_file_usable(key_file)) return 2;
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
  return supervise(
      engines, [&](size_t i) { return "the enginecore of rank " + std::to_string(start + static_cast<int64_t>(i)); },
      false);
}

int run_headless_workers(const EngineConfig& cfg, const TpNodes& nodes) {
  const std::string key_file = cfg.control_plane_key_file.value_or("");
  if (!key_file_usable(key_file)) return 2;
  std::vector<ChildProcess> workers;
  for (int64_t r = nodes.first_rank(); r < nodes.first_rank() + nodes.per_node; ++r) {
    std::vector<std::string> args = {"worker", "--handshake", nodes.handshake_address(), "--rank", std::to_string(r),
                                     "--parent-pid", std::to_string(::getpid()), "--tp-size", std::to_string(nodes.tp)};
    if (!key_file.empty()) args.insert(args.end(), {"--control-plane-key-file", key_file});
    auto child = ChildProcess::spawn(self_exe_dir() / "k2serve-worker", args);
    if (!child.ok()) {
      spdlog::error("starting the worker of tensor-parallel rank {}: {}", r, child.status().to_string());
      return 1;
    }
    workers.push_back(std::move(*child));
  }
  spdlog::info("headless: tensor-parallel ranks {}..{} of {} (node {} of {}) joining the engine at {}{}",
               nodes.first_rank(), nodes.first_rank() + nodes.per_node - 1, nodes.tp, nodes.node_rank, nodes.nnodes,
               nodes.handshake_address(), key_file.empty() ? "" : " (CURVE control plane)");
  return supervise(
      workers,
      [&](size_t i) { return "the worker of tensor-parallel rank " + std::to_string(nodes.first_rank() + static_cast<int64_t>(i)); },
      true);
}

}  // namespace

int run_headless(const EngineConfig& cfg) {
  auto nodes = tp_nodes_of(cfg);
  if (!nodes.ok()) {
    spdlog::error("{}", nodes.status().to_string());
    return 2;
  }
  return nodes->spans_nodes() ? run_headless_workers(cfg, *nodes) : run_headless_engines(cfg);
}

}  // namespace k2
