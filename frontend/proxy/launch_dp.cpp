// `k2serve launch-dp`: what the Kimi deployment guides' launch_online_dp.py does. It starts
// --dp-size-local externally load-balanced data-parallel ranks on this node, rank
// dp-rank-start + i serving its own API on port vllm-start-port + i, each `k2serve serve`
// with the remaining (serve) flags plus --data-parallel-size/-rank/-address/-rpc-port and
// --tensor-parallel-size. A `k2serve proxy --backends ...` in front balances them.
//
// The ranks die with the launcher (PR_SET_PDEATHSIG); SIGTERM/SIGINT is passed on to every
// rank, which drains. A rank that exits on its own is reported and the others keep serving
// (the proxy routes around it); the launcher exits when no rank is left, non-zero if any
// rank failed.
#include "frontend/proxy/launch_dp.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <iostream>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/log.h"
#include "enginecore/protocol/option_table.h"

namespace k2::proxy {

namespace {

struct LaunchOptions {
  int64_t dp_size = 1;
  int64_t tp_size = 1;
  int64_t dp_size_local = 0;  // 0: all of dp-size on this node
  int64_t dp_rank_start = 0;
  std::string dp_address = "127.0.0.1";
  int64_t dp_rpc_port = 12345;
  int64_t vllm_start_port = 9000;
};

const OptionTable<LaunchOptions>& launch_table() {
  static const auto table = [] {
    using O = LaunchOptions;
    OptionTable<O> t;
    t.add("--dp-size", &O::dp_size, "data-parallel ranks in the whole deployment")
        .add("--tp-size", &O::tp_size, "tensor-parallel size of each rank")
        .add("--dp-size-local", &O::dp_size_local, "ranks on this node (default: --dp-size)")
        .add("--dp-rank-start", &O::dp_rank_start, "rank of this node's first rank")
        .add("--dp-address", &O::dp_address, "the data-parallel master's address")
        .add("--dp-rpc-port", &O::dp_rpc_port, "the data-parallel master's RPC port")
        .add("--vllm-start-port", &O::vllm_start_port, "API port of this node's first rank (then +1 per rank)");
    return t;
  }();
  return table;
}

// The launcher's own options are the known leading flags; the rest go to every `serve`.
Status split_args(const std::vector<std::string>& args, LaunchOptions& options, std::vector<std::string>& serve) {
  std::vector<std::string> own;
  for (size_t i = 0; i < args.size(); ++i) {
    const bool mine = std::any_of(launch_table().options().begin(), launch_table().options().end(),
                                  [&](const OptionDef& d) { return d.names[0] == args[i]; });
    if (mine && i + 1 < args.size()) {
      own.push_back(args[i]);
      own.push_back(args[++i]);
    } else {
      serve.push_back(args[i]);
    }
  }
  K2_RETURN_IF_ERROR(launch_table().parse(own, options, nullptr));
  if (options.dp_size_local == 0) options.dp_size_local = options.dp_size;
  if (options.dp_size < 1 || options.tp_size < 1 || options.dp_size_local < 1) {
    return invalid_argument("--dp-size, --tp-size and --dp-size-local must be >= 1");
  }
  if (options.dp_rank_start < 0 || options.dp_rank_start + options.dp_size_local > options.dp_size) {
    return invalid_argument("ranks " + std::to_string(options.dp_rank_start) + ".." +
                            std::to_string(options.dp_rank_start + options.dp_size_local - 1) +
                            " do not fit --dp-size " + std::to_string(options.dp_size));
  }
  if (options.vllm_start_port < 1 || options.vllm_start_port + options.dp_size_local - 1 > 65535) {
    return invalid_argument("--vllm-start-port leaves no room for " + std::to_string(options.dp_size_local) + " ports");
  }
  return Status::ok_status();
}

std::vector<std::string> rank_args(const LaunchOptions& o, const std::vector<std::string>& serve, int64_t i) {
  std::vector<std::string> a = {"serve"};
  a.insert(a.end(), serve.begin(), serve.end());
  for (const auto& [flag, value] :
       std::vector<std::pair<std::string, std::string>>{{"--data-parallel-size", std::to_string(o.dp_size)},
                                                        {"--data-parallel-rank", std::to_string(o.dp_rank_start + i)},
                                                        {"--data-parallel-address", o.dp_address},
                                                        {"--data-parallel-rpc-port", std::to_string(o.dp_rpc_port)},
                                                        {"--tensor-parallel-size", std::to_string(o.tp_size)},
                                                        {"--port", std::to_string(o.vllm_start_port + i)}}) {
    a.push_back(flag);
    a.push_back(value);
  }
  return a;
}

// Waits for a signal or a rank's exit; returns the failures seen.
int supervise(std::vector<ChildProcess>& ranks, const sigset_t& signals) {
  int failures = 0;
  bool stopping = false;
  const timespec tick{0, 100'000'000};
  while (true) {
    size_t alive = 0;
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (ranks[i].pid() <= 0) continue;
      if (auto st = ranks[i].try_wait()) {
        const bool ok = WIFEXITED(*st) && WEXITSTATUS(*st) == 0;
        if (!ok) ++failures;
        if (ok) {
          spdlog::info("launch-dp: rank {} exited ({})", i, describe_wait_status(*st));
        } else {
          spdlog::error("launch-dp: rank {} exited ({})", i, describe_wait_status(*st));
        }
        ranks[i] = ChildProcess();
      } else {
        ++alive;
      }
    }
    if (alive == 0) return failures;
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
      stopping = true;
      spdlog::info("launch-dp: signal {}, stopping {} rank(s)", sig, alive);
      for (auto& r : ranks) r.signal(SIGTERM);
    }
  }
}

}  // namespace

int launch_dp_command(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << launch_table().help(LaunchOptions{}, "k2serve launch-dp [launcher options] MODEL [serve options]");
      return 0;
    }
  }
  LaunchOptions options;
  std::vector<std::string> serve;
  if (Status st = split_args(args, options, serve); !st.ok()) {
    std::cerr << "k2serve launch-dp: " << st.message() << "\n";
    return 2;
  }
  init_logging("launch_dp", "info");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<ChildProcess> ranks;
  for (int64_t i = 0; i < options.dp_size_local; ++i) {
    auto child = ChildProcess::spawn(self_exe_dir() / "k2serve", rank_args(options, serve, i));
    if (!child.ok()) {
      spdlog::error("launch-dp: rank {}: {}", options.dp_rank_start + i, child.status().to_string());
      for (auto& r : ranks) r.terminate(std::chrono::seconds(10));
      return 1;
    }
    spdlog::info("launch-dp: rank {} (pid {}) on port {}", options.dp_rank_start + i, child->pid(),
                 options.vllm_start_port + i);
    ranks.push_back(std::move(child).value());
  }
  return supervise(ranks, signals) == 0 ? 0 : 1;
}

}  // namespace k2::proxy
