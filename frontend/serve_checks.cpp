#include "frontend/serve_checks.h"

#include "enginecore/protocol/dp_lb_mode.h"
#include "enginecore/protocol/dp_transport.h"
#include "enginecore/protocol/tp_nodes.h"

namespace k2 {

Status check_supported(const EngineConfig& cfg) {
  K2_ASSIGN_OR_RETURN(const TpNodes nodes, tp_nodes_of(cfg));
  if (nodes.spans_nodes() && cfg.headless) {  // workers only (headless.h)
    if (cfg.api_server_count > 1) return invalid_argument("--headless runs no API server: drop --api-server-count");
    return Status::ok_status();
  }
  const int64_t size = cfg.data_parallel_size;
  const int64_t local = cfg.data_parallel_size_local.value_or(size);
  K2_ASSIGN_OR_RETURN(const DpLayout layout, dp_layout(cfg));
  // Across nodes, or between API servers of their own (hybrid and external load balancing),
  // the experts' group meets at --data-parallel-rpc-port + 3 (workers/expert_group.h) and the
  // request waves' coordinator is at P + 2 (enginecore/dp_setup.h).
  const bool ranks_apart = cfg.headless || local != size || layout.api_server_per_node();
  if (cfg.enable_expert_parallel && size > 1 && ranks_apart && cfg.data_parallel_rpc_port + 3 > 65535)
    return invalid_argument("--enable-expert-parallel across nodes or API servers (hybrid or external load "
                            "balancing) needs --data-parallel-rpc-port + 3 <= 65535");
  if (cfg.headless) {
    if (cfg.api_server_count > 1) return invalid_argument("--headless runs no API server: drop --api-server-count");
    if (size < 2) return invalid_argument("--headless joins a data-parallel master: give --data-parallel-size > 1");
    // S = 0 only behind an API-only head (--data-parallel-size-local 0); a head with ranks of
    // its own refuses a remote rank 0 in the handshake, naming it.
    const int64_t start = cfg.data_parallel_start_rank.value_or(0);
    if (start < 0 || start + local > size)
      return invalid_argument("--headless needs --data-parallel-start-rank S with 0 <= S and S + "
                              "--data-parallel-size-local <= --data-parallel-size (ranks 0..L-1 are the head's "
                              "when it runs L of them)");
  }
  // An API-only head: DP rank 0's first worker would serve the expert group's store at the
  // head's address (workers/expert_group.h), where it does not run.
  if (!cfg.headless && cfg.enable_expert_parallel && size > 1 && local == 0)
    return unimplemented("--enable-expert-parallel with an API-only head (--data-parallel-size-local 0) is not "
                         "implemented: give the head rank 0");
  if (cfg.api_server_count < 1) return invalid_argument("--api-server-count must be >= 1");
  if (cfg.api_server_count > 1 && layout.mode == DpLbMode::kExternal)
    return invalid_argument("--data-parallel-rank (external load balancing) runs one API server per rank: drop "
                            "--api-server-count");
  if (cfg.api_server_count > 1 && layout.mode == DpLbMode::kHybrid)
    return unimplemented("--api-server-count > 1 with hybrid load balancing is not implemented yet");
  // Ranks on other nodes reach API servers 1..N-1 at fixed ports after P + 3 (dp_transport.h).
  if (cfg.api_server_count > 1 && local < size)
    K2_RETURN_IF_ERROR(protocol::api_server_ports(cfg.data_parallel_rpc_port, cfg.api_server_count - 1).status());
  return Status::ok_status();
}

}  // namespace k2
