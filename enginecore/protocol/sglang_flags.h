// SGLang's launch flags (--nnodes, --node-rank, --dist-init-addr, --tp-size/--tp,
// --dp-size/--dp, --ep-size/--ep, --enable-dp-attention) mapped onto the vLLM-style
// parallel fields the rest of k2serve reads, so an SGLang recipe runs the same machinery as
// the equivalent vLLM one (a master plus --headless nodes).
//
// SGLang's meaning (python/sglang/srt/server_args.py, layers/dp_attention.py): --tp is the
// tensor-parallel size over ALL nodes; --nnodes splits those GPUs evenly over the nodes.
//   * With --enable-dp-attention, --dp D cuts the tp ranks into D attention groups of tp/D
//     ranks (SGLang's attn_tp_size) and MoE layers run over all ranks, expert-parallel with
//     --ep. Here: D engines (data_parallel_size D) of tp/D workers (tensor_parallel_size),
//     enable_expert_parallel when ep > 1 (vLLM's EP = TP x DP: ep must equal tp).
//   * Without it, --dp D is D full replicas of tp ranks each (data parallelism, no EP across
//     replicas); --tp spanning nodes is tensor parallelism across nodes.
// Nodes: each node must hold whole engines (D divisible by nnodes): data_parallel_size_local
// D/nnodes, data_parallel_start_rank node_rank*D/nnodes, --headless on node_rank > 0, and
// data_parallel_address / data_parallel_rpc_port from --dist-init-addr.
//
// One engine (dp 1) over several nodes is tensor parallelism across nodes (tp_nodes.h): the
// vLLM fields --nnodes / --node-rank stay set, --dist-init-addr becomes --master-addr /
// --master-port and node_rank > 0 runs --headless.
// What this build cannot run the way SGLang would is an error naming why (EP over part of the ranks, EP inside each of several replicas), never a
// silently different topology. So is a vLLM flag given with a value that contradicts what
// its SGLang twin maps to. Combinations the serve command refuses for vLLM flags (EP with
// more than one engine, today) are left set, so that the same check refuses them.
//
// Stateless functions; thread-safe.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "enginecore/protocol/engine_config.h"
#include "shm/status.h"

namespace k2 {

struct HostPort {
  std::string host;  // IPv6 without brackets, as --data-parallel-address takes it
  int64_t port = 0;
};

// "HOST:PORT" or "[IPv6]:PORT" (a bare IPv6 address is ambiguous and refused).
Result<HostPort> parse_host_port(const std::string& text);

bool has_sglang_flags(const EngineConfig& cfg);

// Maps the SGLang fields of `cfg` onto its vLLM fields and clears them. `given` holds the
// canonical names of the options the user set (OptionTableBase::parse), to tell a vLLM
// twin's explicit value from its default. No SGLang flag: nothing changes.
Status apply_sglang_flags(EngineConfig& cfg, const std::set<std::string>& given);

}  // namespace k2
