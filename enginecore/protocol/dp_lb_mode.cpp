#include "enginecore/protocol/dp_lb_mode.h"

namespace k2 {
namespace {

std::string text(int64_t v) { return std::to_string(v); }

Result<DpLayout> external_layout(const EngineConfig& cfg, int64_t rank, const std::string& why) {
  if (rank < 0 || rank >= cfg.data_parallel_size)
    return invalid_argument(why + " " + text(rank) + " is outside [0, --data-parallel-size " +
                            text(cfg.data_parallel_size) + ")");
  return DpLayout{DpLbMode::kExternal, cfg.data_parallel_size, rank, 1};
}

// --data-parallel-rank R: one rank, its own API server.
Result<DpLayout> explicit_external(const EngineConfig& cfg) {
  if (cfg.headless) return invalid_argument("--headless and --data-parallel-rank exclude each other");
  if (cfg.data_parallel_hybrid_lb)
    return invalid_argument("--data-parallel-rank (external load balancing) and --data-parallel-hybrid-lb exclude "
                            "each other");
  if (cfg.data_parallel_size_local && *cfg.data_parallel_size_local != 1)
    return invalid_argument("--data-parallel-rank (external load balancing) needs --data-parallel-size-local 1");
  if (cfg.data_parallel_start_rank && *cfg.data_parallel_start_rank != *cfg.data_parallel_rank)
    return invalid_argument("--data-parallel-rank " + text(*cfg.data_parallel_rank) + " and --data-parallel-start-rank " +
                            text(*cfg.data_parallel_start_rank) + " disagree");
  return external_layout(cfg, *cfg.data_parallel_rank, "--data-parallel-rank");
}

}  // namespace

const char* dp_lb_mode_name(DpLbMode mode) {
  switch (mode) {
    case DpLbMode::kNone: return "none";
    case DpLbMode::kInternal: return "internal";
    case DpLbMode::kHybrid: return "hybrid";
    case DpLbMode::kExternal: return "external";
  }
  return "?";
}

Result<DpLayout> dp_layout(const EngineConfig& cfg) {
  const int64_t size = cfg.data_parallel_size;
  const int64_t local = cfg.data_parallel_size_local.value_or(size);
  if (local < 0 || local > size) return invalid_argument("--data-parallel-size-local must be in [0, --data-parallel-size]");
  if (size <= 1) return DpLayout{};
  if (cfg.data_parallel_rank) return explicit_external(cfg);
  const int64_t start = cfg.data_parallel_start_rank.value_or(0);
  if (cfg.headless) {
    if (cfg.data_parallel_hybrid_lb)
      return invalid_argument("--data-parallel-hybrid-lb needs an API server on every node: drop --headless");
    return DpLayout{DpLbMode::kInternal, size, start, local};
  }
  const bool hybrid = cfg.data_parallel_hybrid_lb || cfg.data_parallel_start_rank.has_value();
  if (!hybrid || local == size) {
    if (start != 0)
      return invalid_argument("--data-parallel-start-rank " + text(start) + " with every rank on this node "
                              "(--data-parallel-size-local = --data-parallel-size)");
    return DpLayout{DpLbMode::kInternal, size, 0, size};
  }
  if (local == 1) return external_layout(cfg, start, "--data-parallel-start-rank");
  if (local == 0)
    return invalid_argument("hybrid load balancing (--data-parallel-start-rank on a node with an API server) needs "
                            "--data-parallel-size-local >= 1");
  if (start < 0 || start + local > size)
    return invalid_argument("hybrid load balancing needs 0 <= --data-parallel-start-rank and start + "
                            "--data-parallel-size-local <= --data-parallel-size, got " + text(start) + " + " +
                            text(local) + " of " + text(size));
  return DpLayout{DpLbMode::kHybrid, size, start, local};
}

std::string describe(const DpLayout& l) {
  if (l.mode == DpLbMode::kNone) return "no data parallelism";
  return std::string(dp_lb_mode_name(l.mode)) + " load balancing: rank" + (l.ranks_behind == 1 ? " " : "s ") +
         text(l.first_rank) + (l.ranks_behind == 1 ? "" : ".." + text(l.first_rank + l.ranks_behind - 1)) + " of " +
         text(l.size) + " behind this API server";
}

}  // namespace k2
