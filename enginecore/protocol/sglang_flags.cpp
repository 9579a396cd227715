#include "enginecore/protocol/sglang_flags.h"

#include <spdlog/spdlog.h>

#include <optional>

namespace k2 {
namespace {

std::string text(int64_t v) { return std::to_string(v); }
std::string text(bool v) { return v ? "on" : "off"; }
std::string text(const std::string& v) { return v; }
template <class T>
std::string text(const std::optional<T>& v) {
  return v ? text(*v) : "(unset)";
}

// Sets a vLLM field to what the SGLang flags mean, unless the user gave that vLLM flag with
// another value: then neither can be trusted to be the one meant.
template <class Field, class Value>
Status set_twin(Field& field, const Value& value, const std::string& flag, const std::set<std::string>& given,
                const std::string& because) {
  const Field wanted(value);
  if (given.count(flag) != 0 && field != wanted)
    return invalid_argument(flag + " " + text(field) + " contradicts " + because + " (which means " + flag + " " +
                            text(wanted) + "); give one of them");
  field = wanted;
  return Status::ok_status();
}

struct Sizes {
  int64_t tp = 1;  // SGLang's total tensor-parallel size
  int64_t dp = 1;
  int64_t ep = 1;
  int64_t nnodes = 1;
  int64_t node_rank = 0;
};

Status check_ranges(const Sizes& s) {
  if (s.tp < 1 || s.dp < 1 || s.ep < 1 || s.nnodes < 1)
    return invalid_argument("--tp-size, --dp-size, --ep-size and --nnodes must be >= 1");
  if (s.node_rank < 0 || s.node_rank >= s.nnodes)
    return invalid_argument("--node-rank " + text(s.node_rank) + " must be in [0, --nnodes " + text(s.nnodes) + ")");
  return Status::ok_status();
}

// Experts are either replicated (ep 1) or spread over every rank of the deployment (vLLM's
// EP = TP x DP); SGLang's moe_tp_size = tp / ep in between has no counterpart here.
Status check_ep(const Sizes& s) {
  if (s.ep == 1 || s.ep == s.tp) return Status::ok_status();
  return unimplemented("--ep-size " + text(s.ep) + ": this build spreads routed experts over every rank (vLLM's EP = " +
                       "TP x DP) or none, so --ep-size must be 1 or --tp-size (" + text(s.tp) + ")");
}

// One engine whose tensor-parallel group spans the nodes (tp_nodes.h): --nnodes and
// --node-rank keep their meaning (vLLM's flags of the same names), node 0 serves the API and
// the others run --headless.
Status map_tp_nodes(EngineConfig& cfg, const Sizes& s, const std::set<std::string>& given) {
  const int64_t tp = cfg.tensor_parallel_size;
  if (tp % s.nnodes != 0)
    return invalid_argument("--tensor-parallel-size " + text(tp) + " does not divide over --nnodes " + text(s.nnodes) +
                            " (each node holds the same number of tensor-parallel ranks)");
  const std::string nodes = "--nnodes " + text(s.nnodes) + " --node-rank " + text(s.node_rank);
  return set_twin(cfg.headless, s.node_rank > 0, "--headless", given, nodes);
}

bool tp_spans_nodes(const Sizes& s) { return s.nnodes > 1 && s.dp == 1; }

// --ep-size sets vLLM's --enable-expert-parallel; without it that flag keeps its own value
// (vLLM's multi-node flags --nnodes / --node-rank pass through here too).
Status map_ep(EngineConfig& cfg, const Sizes& s, const std::set<std::string>& given) {
  if (!cfg.ep_size) return Status::ok_status();
  return set_twin(cfg.enable_expert_parallel, s.ep > 1, "--enable-expert-parallel", given, "--ep-size " + text(s.ep));
}

// Engines per node and where this node's start.
Status map_nodes(EngineConfig& cfg, const Sizes& s, int64_t engines, const std::set<std::string>& given,
                 const std::string& why) {
  if (engines == 1 && s.nnodes > 1) return map_tp_nodes(cfg, s, given);
  if (engines % s.nnodes != 0) {
    if (engines < s.nnodes)
      return unimplemented(why + " over --nnodes " + text(s.nnodes) + " would put one of several engines' " +
                           "tensor-parallel groups on several nodes: this build runs tensor parallelism across " +
                           "nodes for one engine only (--dp-size 1); use --enable-dp-attention with --dp-size a " +
                           "multiple of --nnodes, or vLLM's --data-parallel-size flags");
    return invalid_argument(why + ": " + text(engines) + " engines do not divide over --nnodes " + text(s.nnodes));
  }
  const int64_t local = engines / s.nnodes;
  const std::string nodes = "--nnodes " + text(s.nnodes) + " --node-rank " + text(s.node_rank);
  if (s.nnodes > 1 || given.count("--data-parallel-size-local") != 0)
    K2_RETURN_IF_ERROR(set_twin(cfg.data_parallel_size_local, local, "--data-parallel-size-local", given, nodes));
  // vLLM: a start rank on a node with an API server means hybrid load balancing, so node 0
  // gets none.
  if (s.node_rank > 0 || given.count("--data-parallel-start-rank") != 0) {
    const std::optional<int64_t> start =
        s.node_rank > 0 ? std::optional<int64_t>(s.node_rank * local) : std::nullopt;
    K2_RETURN_IF_ERROR(set_twin(cfg.data_parallel_start_rank, start, "--data-parallel-start-rank", given, nodes));
  }
  if (s.nnodes > 1 || given.count("--headless") != 0)
    K2_RETURN_IF_ERROR(set_twin(cfg.headless, s.node_rank > 0, "--headless", given, nodes));
  return Status::ok_status();
}

Status map_address(EngineConfig& cfg, const Sizes& s, const std::set<std::string>& given) {
  if (tp_spans_nodes(s)) {
    if (!cfg.dist_init_addr) return Status::ok_status();  // vLLM's --master-addr / --master-port
    K2_ASSIGN_OR_RETURN(HostPort hp, parse_host_port(*cfg.dist_init_addr));
    const std::string because = "--dist-init-addr " + *cfg.dist_init_addr;
    K2_RETURN_IF_ERROR(set_twin(cfg.master_addr, hp.host, "--master-addr", given, because));
    return set_twin(cfg.master_port, hp.port, "--master-port", given, because);
  }
  if (!cfg.dist_init_addr) {
    if (s.nnodes > 1) return invalid_argument("--nnodes > 1 needs --dist-init-addr HOST:PORT (node 0's address)");
    return Status::ok_status();
  }
  K2_ASSIGN_OR_RETURN(HostPort hp, parse_host_port(*cfg.dist_init_addr));
  const std::string because = "--dist-init-addr " + *cfg.dist_init_addr;
  K2_RETURN_IF_ERROR(set_twin(cfg.data_parallel_address, hp.host, "--data-parallel-address", given, because));
  return set_twin(cfg.data_parallel_rpc_port, hp.port, "--data-parallel-rpc-port", given, because);
}

Status map_dp_attention(EngineConfig& cfg, const Sizes& s, const std::set<std::string>& given) {
  if (!cfg.tp_size && given.count("--tensor-parallel-size") != 0)
    return invalid_argument("--enable-dp-attention needs --tp-size (SGLang's total over all nodes); "
                            "--tensor-parallel-size is vLLM's workers per engine");
  if (s.tp % s.dp != 0)
    return invalid_argument("--dp-size " + text(s.dp) + " must divide --tp-size " + text(s.tp) +
                            " (--enable-dp-attention makes dp groups of tp/dp ranks)");
  K2_RETURN_IF_ERROR(check_ep(s));
  const std::string because = "--tp-size " + text(s.tp) + " --dp-size " + text(s.dp) + " --enable-dp-attention";
  K2_RETURN_IF_ERROR(set_twin(cfg.data_parallel_size, s.dp, "--data-parallel-size", given, because));
  K2_RETURN_IF_ERROR(set_twin(cfg.tensor_parallel_size, s.tp / s.dp, "--tensor-parallel-size", given, because));
  K2_RETURN_IF_ERROR(map_ep(cfg, s, given));
  if (s.ep == 1 && s.dp > 1)
    spdlog::warn("--enable-dp-attention with --ep-size 1: SGLang would shard the MoE layers over all {} ranks; "
                 "here each of the {} engines holds its own tensor-parallel copy of them (same outputs, more "
                 "memory per engine); --ep-size {} spreads the experts instead",
                 s.tp, s.dp, s.tp);
  return map_nodes(cfg, s, s.dp, given, because);
}

Status map_replicas(EngineConfig& cfg, const Sizes& s, const std::set<std::string>& given) {
  K2_RETURN_IF_ERROR(check_ep(s));
  if (s.ep > 1 && s.dp > 1)
    return unimplemented("--ep-size " + text(s.ep) + " with --dp-size " + text(s.dp) +
                         " and no --enable-dp-attention: SGLang would run " + text(s.dp) +
                         " replicas, each with its own expert-parallel group; this build's expert parallelism "
                         "spans every data-parallel rank (vLLM's EP = TP x DP); add --enable-dp-attention "
                         "or drop --ep-size");
  const std::string because = "--tp-size " + text(s.tp) + " --dp-size " + text(s.dp);
  K2_RETURN_IF_ERROR(set_twin(cfg.data_parallel_size, s.dp, "--data-parallel-size", given, because));
  K2_RETURN_IF_ERROR(set_twin(cfg.tensor_parallel_size, s.tp, "--tensor-parallel-size", given, because));
  K2_RETURN_IF_ERROR(map_ep(cfg, s, given));
  return map_nodes(cfg, s, s.dp, given, because);
}

}  // namespace

Result<HostPort> parse_host_port(const std::string& t) {
  HostPort out;
  std::string port;
  if (!t.empty() && t.front() == '[') {
    const size_t close = t.find(']');
    if (close == std::string::npos || close + 1 >= t.size() || t[close + 1] != ':')
      return invalid_argument("'" + t + "' is not [IPv6]:PORT");
    out.host = t.substr(1, close - 1);
    port = t.substr(close + 2);
  } else {
    const size_t colon = t.rfind(':');
    if (colon == std::string::npos) return invalid_argument("'" + t + "' is not HOST:PORT");
    out.host = t.substr(0, colon);
    port = t.substr(colon + 1);
    if (out.host.find(':') != std::string::npos)
      return invalid_argument("'" + t + "': write an IPv6 address in brackets, [" + out.host + "]:" + port);
  }
  if (out.host.empty()) return invalid_argument("'" + t + "' has no host");
  if (!parse_option_value(port, &out.port).ok() || out.port < 1 || out.port > 65535)
    return invalid_argument("'" + t + "': the port must be a number in [1, 65535]");
  return out;
}

bool has_sglang_flags(const EngineConfig& c) {
  return c.nnodes || c.node_rank || c.dist_init_addr || c.tp_size || c.dp_size || c.ep_size || c.enable_dp_attention;
}

Status apply_sglang_flags(EngineConfig& cfg, const std::set<std::string>& given) {
  if (!has_sglang_flags(cfg)) return Status::ok_status();
  Sizes s;
  // Without DP attention SGLang's --tp is vLLM's --tensor-parallel-size (ranks per replica).
  s.tp = cfg.tp_size.value_or(cfg.enable_dp_attention ? 1 : cfg.tensor_parallel_size);
  s.dp = cfg.dp_size.value_or(cfg.enable_dp_attention ? 1 : cfg.data_parallel_size);
  s.ep = cfg.ep_size.value_or(1);
  s.nnodes = cfg.nnodes.value_or(1);
  s.node_rank = cfg.node_rank.value_or(0);
  K2_RETURN_IF_ERROR(check_ranges(s));
  K2_RETURN_IF_ERROR(cfg.enable_dp_attention ? map_dp_attention(cfg, s, given) : map_replicas(cfg, s, given));
  K2_RETURN_IF_ERROR(map_address(cfg, s, given));
  if (!tp_spans_nodes(s)) {  // else they keep vLLM's meaning (tp_nodes.h)
    cfg.nnodes.reset();
    cfg.node_rank.reset();
  }
  cfg.dist_init_addr.reset();
  cfg.tp_size.reset();
  cfg.dp_size.reset();
  cfg.ep_size.reset();
  cfg.enable_dp_attention = false;
  return Status::ok_status();
}

}  // namespace k2
