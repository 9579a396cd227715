#include "frontend/api_server_group.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/dp_transport.h"

namespace k2 {
namespace {

using Clock = std::chrono::steady_clock;

Result<int64_t> parse_int(const std::string& flag, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return invalid_argument(flag + ": not an integer: " + text);
  return v;
}

Result<std::vector<pid_t>> parse_pids(const std::string& text) {
  std::vector<pid_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    K2_ASSIGN_OR_RETURN(int64_t pid, parse_int("--internal-engine-pids", text.substr(start, comma - start)));
    if (pid < 0) return invalid_argument("--internal-engine-pids: bad pid");  // 0: on another node
    out.push_back(static_cast<pid_t>(pid));
    start = comma + 1;
  }
  return out;
}

std::string join_pids(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    if (!out.empty()) out.push_back(',');
    out.append(std::to_string(p));
  }
  return out;
}

// The user's flags without --port (the children get the port API server 0 bound).
std::vector<std::string> without_port(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--port") {
      ++i;
      continue;
    }
    if (args[i].starts_with("--port=")) continue;
    out.push_back(args[i]);
  }
  return out;
}

}  // namespace

int attached_signal() { return SIGRTMIN; }

Result<InternalServeFlags> take_internal_flags(std::vector<std::string>& args) {
  InternalServeFlags flags;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!a.starts_with("--internal-")) {
      rest.push_back(a);
      continue;
    }
    if (i + 1 >= args.size()) return invalid_argument(a + " needs a value");
    const std::string& v = args[++i];
    if (a == "--internal-api-server-index") {
      K2_ASSIGN_OR_RETURN(flags.index, parse_int(a, v));
    } else if (a == "--internal-api-server-input") {
      flags.input_address = v;
    } else if (a == "--internal-api-server-output") {
      flags.output_address = v;
    } else if (a == "--internal-api-server-tcp-input") {
      flags.tcp_input_address = v;
    } else if (a == "--internal-api-server-tcp-output") {
      flags.tcp_output_address = v;
    } else if (a == "--internal-engine-pids") {
      K2_ASSIGN_OR_RETURN(flags.engine_pids, parse_pids(v));
    } else if (a == "--internal-parent-pid") {
      K2_ASSIGN_OR_RETURN(int64_t pid, parse_int(a, v));
      flags.parent_pid = static_cast<pid_t>(pid);
    } else {
      return invalid_argument("unknown flag " + a);
    }
  }
  if (flags.index != 0 && (flags.index < 0 || flags.input_address.empty() || flags.output_address.empty() ||
                           flags.engine_pids.empty() || flags.parent_pid <= 0 ||
                           flags.tcp_input_address.empty() != flags.tcp_output_address.empty()))
    return invalid_argument("an internal API server needs all of its --internal-* flags (k2serve serve starts it)");
  args = std::move(rest);
  return flags;
}

Result<ApiServerAddresses> ApiServerAddresses::create(int64_t count, const std::string& tcp_host, int64_t rpc_port) {
  K2_ASSIGN_OR_RETURN(protocol::RunDir dir, protocol::RunDir::create());
  ApiServerAddresses a(std::move(dir));
  for (int64_t k = 1; k < count; ++k) {
    K2_ASSIGN_OR_RETURN(std::string in, a.dir_.ipc_address("api" + std::to_string(k) + "-input"));
    K2_ASSIGN_OR_RETURN(std::string out, a.dir_.ipc_address("api" + std::to_string(k) + "-output"));
    a.inputs_.push_back(std::move(in));
    a.outputs_.push_back(std::move(out));
    if (tcp_host.empty()) continue;
    K2_ASSIGN_OR_RETURN(protocol::DpPorts ports, protocol::api_server_ports(rpc_port, k));
    a.tcp_inputs_.push_back(protocol::tcp_address(tcp_host, ports.requests));
    a.tcp_outputs_.push_back(protocol::tcp_address(tcp_host, ports.outputs));
  }
  return a;
}

Result<ApiServerGroup> ApiServerGroup::spawn(const std::vector<std::string>& serve_args, uint16_t port,
                                             const ApiServerAddresses& addresses,
                                             const std::vector<pid_t>& engine_pids) {
  ApiServerGroup group;
  const std::vector<std::string> user = without_port(serve_args);
  for (size_t k = 0; k < addresses.inputs().size(); ++k) {
    std::vector<std::string> args{"serve"};
    args.insert(args.end(), user.begin(), user.end());
    args.insert(args.end(), {"--port", std::to_string(port), "--internal-api-server-index", std::to_string(k + 1),
                             "--internal-api-server-input", addresses.inputs()[k], "--internal-api-server-output",
                             addresses.outputs()[k], "--internal-engine-pids", join_pids(engine_pids),
                             "--internal-parent-pid", std::to_string(::getpid())});
    if (!addresses.tcp_inputs().empty())
      args.insert(args.end(), {"--internal-api-server-tcp-input", addresses.tcp_inputs()[k],
                               "--internal-api-server-tcp-output", addresses.tcp_outputs()[k]});
    K2_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::spawn(self_exe_dir() / "k2serve", args));
    spdlog::info("API server {} started: pid {}", k + 1, child.pid());
    group.children_.push_back(std::move(child));
  }
  return group;
}

Result<bool> ApiServerGroup::await_attached(const sigset_t& signals, std::chrono::milliseconds timeout,
                                            const std::function<bool()>& keep_waiting) {
  std::vector<bool> attached(children_.size(), false);
  size_t left = children_.size();
  const auto deadline = Clock::now() + timeout;
  const timespec tick{0, 100'000'000};
  while (left > 0) {
    if (Clock::now() > deadline) return unavailable("not every API server attached to the engines in time");
    if (auto gone = exited()) return unavailable(*gone);
    if (!keep_waiting()) return unavailable("the engines went away while the API servers started");
    siginfo_t info{};
    const int sig = sigtimedwait(&signals, &info, &tick);
    if (sig == SIGTERM || sig == SIGINT) return false;
    if (sig != attached_signal()) continue;
    const int index = info.si_value.sival_int;
    if (index < 1 || static_cast<size_t>(index) > children_.size() || children_[index - 1].pid() != info.si_pid)
      continue;  // not one of ours
    if (!attached[index - 1]) {
      attached[index - 1] = true;
      --left;
      spdlog::info("API server {} attached", index);
    }
  }
  return true;
}

void ApiServerGroup::go() {
  for (auto& c : children_) c.signal(attached_signal());
}

void ApiServerGroup::ask_to_stop() {
  for (auto& c : children_) c.signal(SIGTERM);
}

std::optional<std::string> ApiServerGroup::exited() {
  for (size_t k = 0; k < children_.size(); ++k) {
    if (auto st = children_[k].try_wait())
      return "API server " + std::to_string(k + 1) + " (pid " + std::to_string(children_[k].pid()) + ") exited (" +
             describe_wait_status(*st) + ")";
  }
  return std::nullopt;
}

void ApiServerGroup::terminate(std::chrono::milliseconds grace) {
  for (auto& c : children_) c.signal(SIGTERM);
  for (auto& c : children_) (void)c.terminate(grace);
}

std::vector<pid_t> ApiServerGroup::pids() const {
  std::vector<pid_t> out;
  for (const auto& c : children_) out.push_back(c.pid());
  return out;
}

}  // namespace k2
