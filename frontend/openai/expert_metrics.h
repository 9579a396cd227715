// Expert-load balance in /metrics: how evenly the router spreads tokens over the routed
// experts, from the totals the engines publish (EngineStats::expert_load).
//
// Series (Kimi-K2: 384 experts, 60 MoE layers -> 384 + 60 + 1 series):
//   k2:expert_routed_tokens_total{model_name, expert}   counter: tokens routed to the expert,
//       summed over every MoE layer (and every data-parallel engine). Its rate shows hot and
//       cold experts as they shift; the same expert index is a different MLP in each layer,
//       but a per-(layer, expert) counter would be 23,040 series, too many for Prometheus.
//   k2:expert_load_imbalance{model_name, layer}          gauge: max / mean of the layer's
//       per-expert totals, 1 = perfectly even, num_experts = one expert takes everything. It
//       is what expert parallelism pays for: the busiest rank sets the step time.
//   k2:expert_load_max_imbalance{model_name}             gauge: the worst layer's imbalance,
//       one number to alert on.
// No `engine` label: data-parallel engines (each holding every expert) are summed, which
// keeps the series count independent of the deployment's size. The gauges are over the
// totals since start; a layer's series appears once it has routed a token.
//
// Registers families in a MetricsRegistry that must outlive nothing here but its collector,
// which holds the engine client. Thread-safe (the registry is; the functions are pure).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frontend/http/metrics.h"
#include "frontend/openai/engine_client.h"

namespace k2::openai {

struct ExpertLoadSummary {
  std::vector<uint64_t> per_expert;  // [num_experts], summed over the layers
  std::vector<std::pair<int64_t, double>> layer_imbalance;  // (layer, max / mean), layers with tokens
  double max_imbalance = 0;  // over layer_imbalance; 0 when no layer routed a token
};

ExpertLoadSummary summarize_expert_load(const ExpertLoadTotals& totals);

// Registers the families above, fed from engine->stats() at every scrape.
void add_expert_load_metrics(http::MetricsRegistry& registry, const std::string& model_name,
                             std::shared_ptr<EngineClient> engine);

}  // namespace k2::openai
