#include "enginecore/dp_setup.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::engine {

bool model_is_moe(const std::string& model_dir) {
  std::ifstream in(std::filesystem::path(model_dir) / "config.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  if (j.contains("text_config") && j["text_config"].is_object()) j = j["text_config"];
  const auto experts = j.find("n_routed_experts");
  return experts != j.end() && experts->is_number_integer() && experts->get<int64_t>() > 0;
}

Result<uint32_t> global_dp_rank(const EngineConfig& cfg, uint32_t engine_rank) {
  K2_ASSIGN_OR_RETURN(const DpLayout layout, dp_layout(cfg));
  return layout.global_rank(engine_rank);
}

Result<std::optional<WavePlan>> plan_request_waves(const EngineConfig& cfg, const std::string& frontend_coordinator,
                                                   uint32_t engine_rank, bool moe, bool remote) {
  if (cfg.data_parallel_size <= 1 || !moe) return std::optional<WavePlan>();
  K2_ASSIGN_OR_RETURN(const DpLayout layout, dp_layout(cfg));
  WavePlan plan;
  plan.num_ranks = static_cast<uint32_t>(layout.size);
  plan.rank = layout.global_rank(engine_rank);
  if (plan.rank >= plan.num_ranks)
    return invalid_argument("data-parallel rank " + std::to_string(plan.rank) + " of " +
                            std::to_string(plan.num_ranks));
  if (!layout.api_server_per_node()) {
    if (frontend_coordinator.empty()) return std::optional<WavePlan>();
    plan.address = frontend_coordinator;
    // An API-only head (--data-parallel-size-local 0) serves it itself: rank 0 is then on a
    // headless node whose address the other ranks do not know.
    plan.serve = plan.rank == 0 && !remote;
  } else {
    // Independent replicas unless their forwards share the experts' collectives.
    if (!cfg.enable_expert_parallel) return std::optional<WavePlan>();
    K2_ASSIGN_OR_RETURN(const protocol::DpPorts ports, protocol::dp_ports(cfg.data_parallel_rpc_port));
    plan.address = protocol::tcp_address(cfg.data_parallel_address, ports.coordinator);
    plan.watch = true;
    plan.serve = plan.rank == 0;
  }
  return std::optional<WavePlan>(std::move(plan));
}

Result<RequestWaves> join_request_waves(zmq::context_t& context, const WavePlan& plan,
                                        protocol::ControlPlaneSecurity& security) {
  RequestWaves waves;
  if (plan.serve) {
    Result<std::unique_ptr<DpCoordinator>> started = DpCoordinator::start(context, plan.address, plan.num_ranks, security);
    if (!started.ok()) return started.status().with_context("starting the data-parallel coordinator");
    waves.coordinator = std::move(started).value();
  }
  K2_ASSIGN_OR_RETURN(waves.wave, DpWave::connect(context, plan.address, plan.rank, security, plan.watch));
  return waves;
}

}  // namespace k2::engine
