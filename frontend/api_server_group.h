// --api-server-count N: the processes and signals that tie N API servers into one
// deployment (vLLM's APIServerProcessManager, reference/vllm-v1.md 1.1).
//
// API server 0 (the `serve` process) launches the enginecores, telling them the ipc://
// input and output addresses of API servers 1..N-1 (ApiServerAddresses, in a private run
// directory; for ranks on --headless nodes also tcp:// ones at fixed ports, dp_transport.h,
// which each API server watches through the heartbeats those ranks send to every API server,
// as it has no pidfd for them), listens on --host/--port, then starts the others (ApiServerGroup::spawn, a
// re-exec of `k2serve serve` with the same flags, the bound port and the internal flags of
// InternalServeFlags). Each binds its two sockets, waits for every engine's ready message,
// listens on the same port (SO_REUSEPORT) and reports "attached" to API server 0 with a
// queued real-time signal (kAttachedSignal, value = its index). Once all are attached API
// server 0 turns ready and sends each the same signal ("go"); only then do they turn ready,
// so /health is 200 nowhere before every API server is up.
//
// The children die with API server 0 (PR_SET_PDEATHSIG); API server 0 watches them, and one
// that exits takes the deployment down (503, then exit 1). SIGTERM on API server 0 is
// forwarded to them and each drains its own requests.
//
// ApiServerGroup owns the child processes and is not thread-safe (the main thread's).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "enginecore/protocol/child_process.h"
#include "enginecore/protocol/zmq_channel.h"
#include "shm/status.h"

namespace k2 {

// Child -> API server 0: attached (si_value = index); API server 0 -> child: go.
int attached_signal();

// The internal flags of API servers 1..N-1 (never typed by users).
struct InternalServeFlags {
  int64_t index = 0;  // 0: not an internal API server
  std::string input_address, output_address;
  std::string tcp_input_address, tcp_output_address;  // with ranks on other nodes
  std::vector<pid_t> engine_pids;  // 0: a rank on another node
  pid_t parent_pid = -1;
};

// Takes the --internal-* flags out of `args` (the rest is the normal serve command line).
Result<InternalServeFlags> take_internal_flags(std::vector<std::string>& args);

// The sockets of API servers 1..count-1, in a run directory that lives as long as this. With
// ranks on other nodes (`tcp_host` not empty) also on tcp://tcp_host at the fixed ports of
// protocol::api_server_ports(rpc_port, k).
class ApiServerAddresses {
 public:
  static Result<ApiServerAddresses> create(int64_t count, const std::string& tcp_host = "", int64_t rpc_port = 0);
  const std::vector<std::string>& inputs() const { return inputs_; }
  const std::vector<std::string>& outputs() const { return outputs_; }
  const std::vector<std::string>& tcp_inputs() const { return tcp_inputs_; }
  const std::vector<std::string>& tcp_outputs() const { return tcp_outputs_; }

 private:
  ApiServerAddresses(protocol::RunDir dir) : dir_(std::move(dir)) {}
  protocol::RunDir dir_;
  std::vector<std::string> inputs_, outputs_, tcp_inputs_, tcp_outputs_;
};

class ApiServerGroup {
 public:
  // Starts API servers 1..addresses.inputs().size(): `k2serve serve` with `serve_args` (the
  // user's flags), --port `port` instead of theirs, and the internal flags.
  static Result<ApiServerGroup> spawn(const std::vector<std::string>& serve_args, uint16_t port,
                                      const ApiServerAddresses& addresses, const std::vector<pid_t>& engine_pids);

  // Waits until every child reported attached. `signals` (blocked in every thread) holds the
  // shutdown signals and attached_signal(); `keep_waiting` is asked every 100 ms (false: stop
  // waiting, e.g. an engine died). True: all attached; false: SIGTERM/SIGINT came first.
  Result<bool> await_attached(const sigset_t& signals, std::chrono::milliseconds timeout,
                        const std::function<bool()>& keep_waiting);
  void go();
  // SIGTERM to all, without waiting (they drain meanwhile).
  void ask_to_stop();
  // A child that exited: its description; nullopt while all run.
  std::optional<std::string> exited();
  // SIGTERM to all (each drains), then waits up to `grace` for each before SIGKILL.
  void terminate(std::chrono::milliseconds grace);
  std::vector<pid_t> pids() const;

 private:
  std::vector<ChildProcess> children_;
};

}  // namespace k2
