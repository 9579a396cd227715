#include "frontend/openai/expert_metrics.h"

#include <algorithm>

#include "enginecore/protocol/messages.h"

namespace k2::openai {

std::shared_ptr<const ExpertLoadTotals> expert_load_after(std::shared_ptr<const ExpertLoadTotals> previous,
                                                          const std::optional<protocol::ExpertLoad>& published) {
  if (!published) return previous;
  auto t = std::make_shared<ExpertLoadTotals>();
  t->num_experts = published->num_experts;
  t->layers.assign(published->layers.begin(), published->layers.end());
  t->tokens = published->tokens;
  return t;
}

std::shared_ptr<const ExpertLoadTotals> sum_expert_load(const std::shared_ptr<const ExpertLoadTotals>& a,
                                                        const std::shared_ptr<const ExpertLoadTotals>& b) {
  if (!a) return b;
  if (!b || a->num_experts != b->num_experts || a->layers != b->layers || a->tokens.size() != b->tokens.size())
    return a;
  auto sum = std::make_shared<ExpertLoadTotals>(*a);
  for (size_t i = 0; i < sum->tokens.size(); ++i) sum->tokens[i] += b->tokens[i];
  return sum;
}

ExpertLoadSummary summarize_expert_load(const ExpertLoadTotals& t) {
  ExpertLoadSummary s;
  const size_t experts = t.num_experts > 0 ? static_cast<size_t>(t.num_experts) : 0;
  if (experts == 0 || t.tokens.size() != t.layers.size() * experts) return s;
  s.per_expert.assign(experts, 0);
  for (size_t l = 0; l < t.layers.size(); ++l) {
    const uint64_t* row = t.tokens.data() + l * experts;
    uint64_t total = 0, most = 0;
    for (size_t e = 0; e < experts; ++e) {
      s.per_expert[e] += row[e];
      total += row[e];
      most = std::max(most, row[e]);
    }
    if (total == 0) continue;
    const double imbalance = static_cast<double>(most) * static_cast<double>(experts) / static_cast<double>(total);
    s.layer_imbalance.emplace_back(t.layers[l], imbalance);
    s.max_imbalance = std::max(s.max_imbalance, imbalance);
  }
  return s;
}

void add_expert_load_metrics(http::MetricsRegistry& registry, const std::string& model_name,
                             std::shared_ptr<EngineClient> engine) {
  auto& routed = registry.counter("k2:expert_routed_tokens_total",
                                  "Tokens routed to each routed expert, summed over the MoE layers.",
                                  {"model_name", "expert"});
  auto& layer = registry.gauge("k2:expert_load_imbalance",
                               "Max over mean of the tokens routed per expert in a MoE layer (1 = even).",
                               {"model_name", "layer"});
  auto& worst = registry.gauge("k2:expert_load_max_imbalance", "The largest k2:expert_load_imbalance of any layer.",
                               {"model_name"});
  registry.add_collector([model_name, engine = std::move(engine), &routed, &layer, &worst] {
    const std::shared_ptr<const ExpertLoadTotals> totals = engine->stats().expert_load;
    if (!totals) return;
    const ExpertLoadSummary s = summarize_expert_load(*totals);
    for (size_t e = 0; e < s.per_expert.size(); ++e)
      routed.set_total({model_name, std::to_string(e)}, static_cast<double>(s.per_expert[e]));
    for (const auto& [l, imbalance] : s.layer_imbalance) layer.set({model_name, std::to_string(l)}, imbalance);
    if (!s.layer_imbalance.empty()) worst.set({model_name}, s.max_imbalance);
  });
}

}  // namespace k2::openai
