#include "frontend/openai/generation_job.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "frontend/http/json_error.h"
#include "frontend/http/sse.h"

namespace k2::openai {

namespace {

std::atomic<uint64_t> g_engine_seq{0};

double seconds_between(http::Clock::time_point a, http::Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

GenerationJob::GenerationJob(JobSpec spec, std::shared_ptr<http::Exchange> exchange,
                             std::shared_ptr<EngineClient> engine, std::shared_ptr<const Tokenizer> tokenizer,
                             std::shared_ptr<ServingMetrics> metrics)
    : spec_(std::move(spec)),
      exchange_(std::move(exchange)),
      engine_(std::move(engine)),
      tokenizer_(std::move(tokenizer)),
      metrics_(std::move(metrics)),
      token_strings_{tokenizer_, spec_.return_tokens_as_token_ids} {
  runs_.resize(spec_.choices.size());
  for (size_t i = 0; i < runs_.size(); ++i) {
    auto& c = spec_.choices[i];
    c.config.streaming = spec_.stream;
    runs_[i].state = std::make_unique<ChoiceState>(c.config);
    runs_[i].engine_id = spec_.response_id + "-" + std::to_string(i) + "-" + std::to_string(g_engine_seq.fetch_add(1));
    if (spec_.logprobs) runs_[i].completion_logprobs = std::make_unique<CompletionLogprobs>(*spec_.logprobs);
  }
}

void GenerationJob::start(JobSpec spec, std::shared_ptr<http::Exchange> exchange, std::shared_ptr<EngineClient> engine,
                          std::shared_ptr<const Tokenizer> tokenizer, std::shared_ptr<ServingMetrics> metrics) {
  auto job = std::make_shared<GenerationJob>(std::move(spec), exchange, std::move(engine), std::move(tokenizer),
                                             std::move(metrics));
  std::weak_ptr<GenerationJob> weak = job;
  exchange->on_cancel([weak] {
    if (auto j = weak.lock()) j->cancel();
  });
  for (size_t i = 0; i < job->runs_.size(); ++i) {
    GenerateRequest req;
    req.request_id = job->runs_[i].engine_id;
    req.prompt_ids = job->spec_.choices[i].prompt_ids;
    req.sampling = job->spec_.choices[i].sampling;
    req.cache_salt = job->spec_.choices[i].cache_salt;
    req.media = job->spec_.choices[i].media;
    req.structured = job->spec_.choices[i].structured;
    if (job->siblings_of_prompt(job->spec_.choices[i].prompt_index) > 1) {
      req.group_id = job->spec_.response_id + "/" + std::to_string(job->spec_.choices[i].prompt_index);
    }
    Status st = job->engine_->add_request(std::move(req), [job, i](EngineOutput out) { job->on_output(i, std::move(out)); });
    if (!st.ok()) {
      for (size_t k = 0; k < i; ++k) job->engine_->abort(job->runs_[k].engine_id);
      spdlog::error("[{}] engine refused the request: {}", exchange->request_id(), st.message());
      exchange->respond(http::error_response(st.code() == Code::kUnavailable ? 503 : 500,
                                             "The engine cannot take requests: " + st.message()));
      return;
    }
  }
  if (job->spec_.stream) {
    http::Headers h{{"Content-Type", "text/event-stream; charset=utf-8"}, {"Cache-Control", "no-cache"}};
    exchange->stream(200, std::move(h), job);
  }
}

size_t GenerationJob::siblings_of_prompt(int32_t prompt_index) const {
  return static_cast<size_t>(std::count_if(spec_.choices.begin(), spec_.choices.end(),
                                           [prompt_index](const JobChoice& c) { return c.prompt_index == prompt_index; }));
}

void GenerationJob::on_output(size_t choice, EngineOutput out) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({choice, std::move(out)});
  }
  if (spec_.stream) {
    exchange_->wake();
  } else if (!process_scheduled_.exchange(true)) {
    exchange_->post([self = shared_from_this()] { self->process_nonstream(); });
  }
}

void GenerationJob::cancel() {
  cancelled_.store(true);
  for (auto& r : runs_) engine_->abort(r.engine_id);
  spdlog::info("[{}] client went away: aborted {} engine request(s)", exchange_->request_id(), runs_.size());
}

void GenerationJob::record_metrics(size_t choice, const EngineOutput& out, bool finished_now) {
  if (!metrics_) return;
  ChoiceRun& r = runs_[choice];
  const auto now = http::Clock::now();
  const auto arrival = exchange_->request().received;
  const int64_t prompt_len = static_cast<int64_t>(spec_.choices[choice].prompt_ids.size());
  if (out.queued_time > 0) r.queued_time = out.queued_time;
  if (out.scheduled_time > 0 && r.scheduled_time == 0) r.scheduled_time = out.scheduled_time;
  if (!out.new_token_ids.empty() && out.engine_time > 0) {
    if (r.first_token_time == 0) r.first_token_time = out.engine_time;
    r.last_token_time = out.engine_time;
  }
  if (!out.new_token_ids.empty()) {
    if (r.last_output == http::Clock::time_point{}) {
      metrics_->on_first_token(seconds_between(arrival, now), prompt_len);
      metrics_->on_tokens(static_cast<int64_t>(out.new_token_ids.size()), -1);
    } else {
      metrics_->on_tokens(static_cast<int64_t>(out.new_token_ids.size()), seconds_between(r.last_output, now));
    }
    r.last_output = now;
  }
  if (finished_now) {
    metrics_->on_finished(r.finish_reason, seconds_between(arrival, now), prompt_len, r.state->num_generated(),
                          spec_.choices[choice].sampling.max_tokens, static_cast<int32_t>(spec_.choices.size()));
    if (r.queued_time > 0 && r.scheduled_time > 0 && r.first_token_time > 0) {
      metrics_->on_phases(RequestPhases{r.scheduled_time - r.queued_time, r.first_token_time - r.scheduled_time,
                                        r.last_token_time - r.first_token_time, r.last_token_time - r.scheduled_time});
    }
  }
}

std::vector<std::pair<size_t, ChoiceDelta>> GenerationJob::drain_queue() {
  std::vector<Queued> queued;
  {
    std::lock_guard lock(mu_);
    queued.swap(queue_);
  }
  std::vector<std::pair<size_t, ChoiceDelta>> deltas;
  for (auto& q : queued) {
    ChoiceRun& r = runs_[q.choice];
    if (r.done || cancelled_.load()) continue;
    bool stop_hit = false;
    ChoiceDelta d = r.state->consume(q.output, stop_hit);
    if (stop_hit) engine_->abort(r.engine_id);
    if (d.prompt_logprobs) r.prompt_logprobs = d.prompt_logprobs;
    if (!spec_.stream) r.logprobs.insert(r.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
    const bool finished_now = d.finish_reason.has_value();
    if (finished_now) {
      r.done = true;
      r.finish_reason = *d.finish_reason;
      r.stop_reason = d.stop_reason;
    }
    if (d.error && !error_) error_ = *d.error;
    record_metrics(q.choice, q.output, finished_now);
    auto it = std::find_if(deltas.begin(), deltas.end(), [&](const auto& p) { return p.first == q.choice; });
    if (it == deltas.end()) deltas.emplace_back(q.choice, std::move(d));
    else it->second.merge(std::move(d));
  }
  return deltas;
}

bool GenerationJob::all_done() const {
  return std::all_of(runs_.begin(), runs_.end(), [](const ChoiceRun& r) { return r.done; });
}

http::StreamPull GenerationJob::pull() {
  http::StreamPull p;
  if (finished_) {
    p.done = true;
    return p;
  }
  auto deltas = drain_queue();
  if (error_) {
    for (auto& r : runs_) {
      if (!r.done) engine_->abort(r.engine_id);
    }
    spdlog::error("[{}] generation failed mid-stream: {}", exchange_->request_id(), *error_);
    http::append_sse_event(p.bytes, http::error_body(500, *error_));
    p.bytes += http::kSseDone;
    finished_ = p.done = true;
    return p;
  }
  for (auto& [choice, d] : deltas) render_stream_delta(choice, d, p.bytes);
  if (all_done()) {
    if (spec_.include_usage) {
      nlohmann::ordered_json u = chunk_base();
      u["choices"] = nlohmann::ordered_json::array();
      u["usage"] = usage_json();
      http::append_sse_event(p.bytes, u.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    }
    p.bytes += http::kSseDone;
    finished_ = p.done = true;
  }
  return p;
}

void GenerationJob::process_nonstream() {
  process_scheduled_.store(false);
  if (finished_) return;
  drain_queue();
  if (error_) {
    for (auto& r : runs_) {
      if (!r.done) engine_->abort(r.engine_id);
    }
    finished_ = true;
    spdlog::error("[{}] generation failed: {}", exchange_->request_id(), *error_);
    respond_error(500, *error_);
    return;
  }
  if (!all_done()) return;
  finished_ = true;
  http::HttpResponse res;
  res.body = final_response_body();
  exchange_->respond(std::move(res));
}

void GenerationJob::respond_error(int status, const std::string& message) {
  exchange_->respond(http::error_response(status, message));
}

}  // namespace k2::openai
