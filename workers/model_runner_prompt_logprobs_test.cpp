// prompt_logprobs through the ModelRunner on a real tiny checkpoint (float32 path): every
// prompt position's score must be log_softmax of the golden float32 prefill logits of the
// position before it, whether the prompt arrives in one chunk or several, alone or batched.
// (It lives with the sampler because workers/CMakeLists.txt is not this test's to edit;
// it exercises workers/model_runner.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "workers/generate.h"
#include "workers/golden_set.h"
#include "workers/model_runner.h"

namespace k2 {
namespace {

const std::filesystem::path kModel = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "tiny-bf16";
constexpr int64_t kBlockSize = 16;

// log_softmax of one golden row, in double.
std::vector<double> log_softmax(const float* row, int64_t vocab) {
  double mx = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - mx);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[static_cast<size_t>(i)] = row[i] - mx - std::log(sum);
  return out;
}

struct Fixture {
  std::unique_ptr<DeepSeekV3> model;
  std::optional<LatentKvCache> cache;
  std::optional<GoldenSet> golden;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    auto layouts = weight_layouts_for("float32", "");
    EXPECT_TRUE(layouts.ok());
    auto model = load_model(kModel, ProgressStyle::kQuiet, false, *layouts);
    EXPECT_TRUE(model.ok()) << model.status().to_string();
    x.model = std::move(*model);
    auto cache = LatentKvCache::create(x.model->config().num_hidden_layers, 256, kBlockSize, x.model->cache_row_dim());
    EXPECT_TRUE(cache.ok());
    x.cache.emplace(std::move(*cache));
    auto golden = GoldenSet::open(kModel);
    EXPECT_TRUE(golden.ok()) << golden.status().to_string();
    x.golden.emplace(std::move(*golden));
    return x;
  }();
  return f;
}

// Plans that run `prompt` in chunks of `chunk` tokens (the last one samples).
struct Planner {
  std::string id;
  std::vector<int32_t> prompt;
  uint32_t first_block = 1;
  uint32_t done = 0;
  uint32_t blocks_sent = 0;

  protocol::ScheduledRequest next(uint32_t chunk, protocol::StepPlan& plan, std::optional<uint32_t> prompt_logprobs) {
    protocol::ScheduledRequest r;
    r.request_id = id;
    r.slot = static_cast<uint32_t>(plan.requests.size());
    const uint32_t n = std::min<uint32_t>(chunk, static_cast<uint32_t>(prompt.size()) - done);
    r.token_ids = protocol::inline_tokens({prompt.begin() + done, prompt.begin() + done + n});
    r.start_position = done;
    r.num_tokens = n;
    r.num_prompt_tokens = static_cast<uint32_t>(prompt.size());
    r.blocks.replace = done == 0;
    const uint32_t need = (done + n + kBlockSize - 1) / kBlockSize;
    for (; blocks_sent < need; ++blocks_sent) r.blocks.block_ids.push_back(first_block + blocks_sent);
    r.sample = done + n == prompt.size();
    if (done == 0) {
      protocol::SamplingParams p;
      p.temperature = 0;
      p.prompt_logprobs = prompt_logprobs;
      r.params_index = static_cast<int32_t>(plan.sampling_params.size());
      plan.sampling_params.push_back(p);
    }
    done += n;
    plan.total_num_tokens += n;
    return r;
  }
};

// Checks `lp` against the golden prefill logits of `golden_name` for `prompt`.
void expect_matches_golden(const protocol::TokenLogprobs& lp, const std::vector<int32_t>& prompt,
                           const std::string& golden_name, uint32_t top_n) {
  Fixture& f = fixture();
  auto logits = f.golden->f32(golden_name);
  ASSERT_TRUE(logits.ok()) << logits.status().to_string();
  const int64_t vocab = logits->shape.at(1);
  ASSERT_EQ(logits->shape.at(0), static_cast<int64_t>(prompt.size()));
  ASSERT_EQ(lp.num_positions, prompt.size() - 1);
  ASSERT_EQ(lp.width, 1 + top_n);
  const double tol = f.golden->logits_atol();
  for (uint32_t p = 0; p < lp.num_positions; ++p) {
    const std::vector<double> want = log_softmax(logits->data.data() + int64_t{p} * vocab, vocab);
    const size_t base = size_t{p} * lp.width;
    const int32_t token = prompt[p + 1];
    ASSERT_EQ(lp.token_ids[base], token) << "position " << p + 1;
    EXPECT_NEAR(lp.logprobs[base], want[static_cast<size_t>(token)], tol) << "position " << p + 1;
    const auto better = std::count_if(want.begin(), want.end(), [&](double v) { return v > want[token] + tol; });
    EXPECT_GE(lp.ranks[p], better + 1) << "position " << p + 1;
    for (uint32_t k = 1; k < lp.width; ++k) {
      const int32_t t = lp.token_ids[base + k];
      ASSERT_GE(t, 0);
      ASSERT_LT(t, vocab);
      EXPECT_NEAR(lp.logprobs[base + k], want[static_cast<size_t>(t)], tol) << "position " << p + 1 << " top " << k;
      if (k > 1) {
        EXPECT_LE(lp.logprobs[base + k], lp.logprobs[base + k - 1]);
      }
    }
    // The first top entry is the row's best token (up to ties within the tolerance).
    if (lp.width > 1) {
      EXPECT_NEAR(lp.logprobs[base + 1], *std::max_element(want.begin(), want.end()), tol);
    }
  }
}

const GoldenCase& golden_case(const std::string& name) {
  for (const auto& c : fixture().golden->cases())
    if (c.name == name) return c;
  ADD_FAILURE() << "no golden case " << name;
  static GoldenCase none;
  return none;
}

// Runs the plans of `planners` chunk by chunk until every prompt is done; returns the
// samples by request id.
std::map<std::string, protocol::SampledRequest> run_prompts(ModelRunner& runner, std::vector<Planner>& planners,
                                                            uint32_t chunk, std::optional<uint32_t> prompt_logprobs,
                                                            size_t scored) {
  std::map<std::string, protocol::SampledRequest> out;
  for (uint64_t step = 1;; ++step) {
    protocol::StepPlan plan;
    plan.step_id = step;
    for (size_t i = 0; i < planners.size(); ++i)
      if (planners[i].done < planners[i].prompt.size())
        plan.requests.push_back(planners[i].next(chunk, plan, i < scored ? prompt_logprobs : std::nullopt));
    if (plan.requests.empty()) break;
    auto result = runner.execute(plan);
    EXPECT_TRUE(result.ok()) << result.status().to_string();
    if (!result.ok()) break;
    for (auto& s : result->samples) out[plan.requests[s.slot].request_id] = s;
  }
  return out;
}

TEST(ModelRunnerPromptLogprobs, OneChunkMatchesGoldenLogSoftmax) {
  Fixture& f = fixture();
  const GoldenCase& c = golden_case("long");
  ModelRunner runner(*f.model, *f.cache);
  std::vector<Planner> planners = {{"a", c.prompts.at(0)}};
  auto out = run_prompts(runner, planners, 1u << 20, 2, 1);
  ASSERT_TRUE(out.contains("a"));
  ASSERT_TRUE(out["a"].prompt_logprobs.has_value());
  expect_matches_golden(*out["a"].prompt_logprobs, c.prompts[0], "long.0.fp32.prefill_logits", 2);
  EXPECT_EQ(out["a"].token_ids, std::vector<int32_t>{c.greedy.at(0).at(0)});
}

TEST(ModelRunnerPromptLogprobs, ChunkedAndBatchedMatchGoldenAndSamplingIsUnchanged) {
  Fixture& f = fixture();
  const GoldenCase& longc = golden_case("long");
  const GoldenCase& batch = golden_case("batch");
  ModelRunner runner(*f.model, *f.cache);
  // "a" is scored in chunks of 7 (a chunk boundary inside the prompt every step); "b" and
  // "c" share its steps without prompt_logprobs, so their rows sit around a's.
  std::vector<Planner> planners = {{"a", longc.prompts.at(0), 1},
                                   {"b", batch.prompts.at(3), 40},
                                   {"c", batch.prompts.at(2), 80}};
  auto out = run_prompts(runner, planners, 7, 5, 1);
  ASSERT_EQ(out.size(), 3u);
  ASSERT_TRUE(out["a"].prompt_logprobs.has_value());
  expect_matches_golden(*out["a"].prompt_logprobs, longc.prompts[0], "long.0.fp32.prefill_logits", 5);
  EXPECT_FALSE(out["b"].prompt_logprobs.has_value());
  EXPECT_FALSE(out["c"].prompt_logprobs.has_value());
  EXPECT_EQ(out["a"].token_ids, std::vector<int32_t>{longc.greedy.at(0).at(0)});
  EXPECT_EQ(out["b"].token_ids, std::vector<int32_t>{batch.greedy.at(3).at(0)});
  EXPECT_EQ(out["c"].token_ids, std::vector<int32_t>{batch.greedy.at(2).at(0)});
}

TEST(ModelRunnerPromptLogprobs, ZeroTopAndASingleTokenPrompt) {
  Fixture& f = fixture();
  const GoldenCase& c = golden_case("batch");
  ModelRunner runner(*f.model, *f.cache);
  std::vector<Planner> planners = {{"a", c.prompts.at(1), 1}, {"one", {c.prompts.at(0).at(0)}, 40}};
  auto out = run_prompts(runner, planners, 4, 0, 2);
  ASSERT_TRUE(out["a"].prompt_logprobs.has_value());
  expect_matches_golden(*out["a"].prompt_logprobs, c.prompts[1], "batch.1.fp32.prefill_logits", 0);
  ASSERT_TRUE(out["one"].prompt_logprobs.has_value());
  EXPECT_EQ(out["one"].prompt_logprobs->num_positions, 0u) << "a one-token prompt has only the leading None";
}

TEST(ModelRunnerPromptLogprobs, NotScoredAgainAfterRecomputeAndRefusedFromACachedPrefix) {
  Fixture& f = fixture();
  ModelRunner runner(*f.model, *f.cache);
  std::vector<int32_t> prompt = golden_case("long").prompts.at(0);
  ASSERT_GT(prompt.size(), static_cast<size_t>(kBlockSize));
  Planner resumed{"r", prompt, 1};
  protocol::StepPlan plan;
  plan.step_id = 1;
  plan.requests.push_back(resumed.next(1u << 20, plan, 3));
  plan.requests[0].num_output_tokens = 2;  // recomputed after preemption: already reported
  auto result = runner.execute(plan);
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  ASSERT_EQ(result->samples.size(), 1u);
  EXPECT_FALSE(result->samples[0].prompt_logprobs.has_value());

  protocol::StepPlan cached;
  cached.step_id = 2;
  cached.finished_request_ids = {"r"};
  Planner hit{"h", prompt, 1};
  protocol::ScheduledRequest r = hit.next(1u << 20, cached, 3);
  r.start_position = kBlockSize;  // a prefix-cache hit: the worker cannot score those positions
  r.cached_token_ids.assign(prompt.begin(), prompt.begin() + kBlockSize);
  r.token_ids = protocol::inline_tokens({prompt.begin() + kBlockSize, prompt.end()});
  r.num_tokens = r.token_ids.count;
  cached.total_num_tokens = r.num_tokens;
  cached.requests.push_back(r);
  EXPECT_FALSE(runner.execute(cached).ok());
}

}  // namespace
}  // namespace k2
