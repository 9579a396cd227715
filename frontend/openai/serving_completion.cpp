// POST /v1/completions: prompts (text or ids, one or many) -> GenerationJob.
#include <spdlog/spdlog.h>

#include "frontend/openai/api_server.h"
#include "frontend/openai/generation_job.h"
#include "frontend/openai/structured_plan.h"

namespace k2::openai {

void OpenAiServer::handle_completion(const std::shared_ptr<http::Exchange>& ex) {
  auto body = parse_json_body(ex->request().body);
  if (!body.ok()) return fail(ex, body.status());
  auto parsed = parse_completion_request(*body, limits());
  if (!parsed.ok()) return fail(ex, parsed.status());
  CompletionRequest& req = *parsed;
  if (Status st = check_model(req.model); !st.ok()) return fail(ex, st);
  if (!req.ignored_fields.empty()) {
    std::string names;
    for (const auto& f : req.ignored_fields) names += (names.empty() ? "" : ", ") + f.substr(0, 64);
    spdlog::warn("[{}] the following fields were present in the request but ignored: {}", ex->request_id(), names);
  }
  JobSpec spec;
  spec.kind = ApiKind::kCompletion;
  spec.response_id = new_response_id("cmpl-", *ex, req);
  spec.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  spec.model_name = req.model.empty() ? config_.served_model_names.front() : req.model;
  spec.stream = req.stream;
  spec.include_usage = req.include_usage || (req.stream && config_.enable_force_include_usage);
  spec.continuous_usage_stats = req.include_usage && req.continuous_usage_stats;
  spec.logprobs = req.logprobs;
  spec.return_tokens_as_token_ids = req.return_tokens_as_token_ids;
  spec.echo_logprobs = req.echo && req.logprobs.has_value();
  spec.prompt_logprobs = body->contains("prompt_logprobs") && !(*body)["prompt_logprobs"].is_null();
  auto structured = plan_structured_output(static_cast<const CommonRequest&>(req));
  if (!structured.ok()) return fail(ex, structured.status());
  size_t total_prompt = 0;
  for (size_t p = 0; p < req.prompts.size(); ++p) {
    const PromptInput& in = req.prompts[p];
    std::vector<int32_t> ids = in.text ? tokenizer_->encode(*in.text, true) : in.ids;
    CommonRequest per_prompt = req;  // max_tokens defaults depend on each prompt's length
    if (Status st = finalize_sampling(per_prompt, static_cast<int64_t>(ids.size()), config_.max_model_len,
                                      config_.generation_defaults);
        !st.ok()) {
      return fail(ex, st);
    }
    std::string echo;
    if (req.echo) {
      if (in.text) {
        echo = *in.text;
      } else {
        auto decoded = tokenizer_->decode(ids, false);
        if (!decoded.ok()) return fail(ex, invalid_argument(decoded.status().message()));
        echo = std::move(decoded).value();
      }
    }
    total_prompt += ids.size();
    for (int32_t i = 0; i < req.n; ++i) {
      JobChoice c;
      c.prompt_index = static_cast<int32_t>(p);
      c.prompt_ids = ids;
      c.sampling = per_prompt.sampling;
      if (c.sampling.seed) c.sampling.seed = *c.sampling.seed + i;
      c.config.tokenizer = tokenizer_;
      c.config.skip_special_tokens = req.skip_special_tokens;
      c.config.stop = req.stop;
      c.config.include_stop_str_in_output = req.include_stop_str_in_output;
      c.config.stop_token_ids = req.sampling.stop_token_ids;
      c.echo_text = echo;
      c.cache_salt = req.cache_salt;
      c.structured = structured->engine;
      spec.choices.push_back(std::move(c));
    }
  }
  if (config_.log_requests) {
    spdlog::info("[{}] completion request {}: prompts={} prompt_tokens={} n={} stream={}", ex->request_id(),
                 spec.response_id, req.prompts.size(), total_prompt, req.n, req.stream);
  }
  ex->set_log_note("prompt_tokens=" + std::to_string(total_prompt));
  GenerationJob::start(std::move(spec), ex, engine_, tokenizer_, serving_metrics_);
}

}  // namespace k2::openai
