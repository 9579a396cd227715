#include "enginecore/request_state.h"

#include <algorithm>
#include <utility>

namespace k2::engine {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
  }
  return "";
}

Request::Request(RequestParams params, uint64_t arrival_seq)
    : id_(std::move(params.request_id)),
      token_ids_(std::move(params.prompt_token_ids)),
      num_prompt_tokens_(static_cast<int32_t>(token_ids_.size())),
      stop_(std::move(params.stop)),
      priority_(params.priority),
      arrival_seq_(arrival_seq),
      skip_prefix_cache_(params.skip_prefix_cache),
      cache_salt_(std::move(params.cache_salt)),
      group_id_(std::move(params.group_id)),
      media_(std::move(params.media)),
      media_encoded_(media_.size(), false) {}

void Request::set_num_computed_tokens(int32_t n) {
  K2_CHECK(n >= 0 && n <= num_tokens(), "request " + id_ + ": computed tokens out of range");
  num_computed_tokens_ = n;
}

void Request::finish(FinishReason reason, std::optional<TokenId> stop_token) {
  status_ = RequestStatus::kFinished;
  finish_reason_ = reason;
  stop_token_ = stop_token;
}

namespace {

bool contains(const std::vector<TokenId>& ids, TokenId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

FinishReason check_stop(const Request& request, int32_t max_model_len,
                        std::optional<TokenId>* stop_token) {
  const StopParams& stop = request.stop_params();
  *stop_token = std::nullopt;
  const bool length_reached = request.num_tokens() >= max_model_len ||
                              request.num_output_tokens() >= stop.max_tokens;
  // vLLM checks min_tokens first; the length limits still apply, because running past
  // max_model_len would write KV beyond what the model and the cache were sized for.
  if (request.num_output_tokens() < stop.min_tokens) {
    return length_reached ? FinishReason::kLength : FinishReason::kNone;
  }
  const TokenId last = request.all_token_ids().back();
  if (!stop.ignore_eos && !stop.eos_token_ids.empty() && contains(stop.eos_token_ids, last)) {
    if (last != stop.eos_token_ids.front()) *stop_token = last;
    return FinishReason::kStop;
  }
  if (contains(stop.stop_token_ids, last)) {
    *stop_token = last;
    return FinishReason::kStop;
  }
  return length_reached ? FinishReason::kLength : FinishReason::kNone;
}

Status validate_request_params(const RequestParams& params, int32_t max_model_len) {
  const auto num_prompt = static_cast<int64_t>(params.prompt_token_ids.size());
  if (params.request_id.empty()) return invalid_argument("request id is empty");
  if (num_prompt == 0) return invalid_argument("request " + params.request_id + ": empty prompt");
  // One position must stay free for the first generated token.
  if (num_prompt >= max_model_len) {
    return out_of_range("request " + params.request_id + ": prompt of " +
                        std::to_string(num_prompt) + " tokens leaves no room under max_model_len " +
                        std::to_string(max_model_len));
  }
  if (params.stop.max_tokens < 1) {
    return invalid_argument("request " + params.request_id + ": max_tokens must be at least 1");
  }
  if (params.stop.min_tokens < 0 || params.stop.min_tokens > params.stop.max_tokens) {
    return invalid_argument("request " + params.request_id +
                            ": min_tokens must be in [0, max_tokens]");
  }
  for (TokenId t : params.prompt_token_ids) {
    if (t < 0) return invalid_argument("request " + params.request_id + ": negative token id");
  }
  int64_t media_end = 0;
  for (const MediaSpan& m : params.media) {
    if (m.num_tokens < 1 || m.offset < media_end || int64_t{m.offset} + m.num_tokens > num_prompt) {
      return invalid_argument("request " + params.request_id + ": media span [" + std::to_string(m.offset) + ", +" +
                              std::to_string(m.num_tokens) + ") is empty, out of order or outside the prompt");
    }
    media_end = int64_t{m.offset} + m.num_tokens;
  }
  return {};
}

}  // namespace k2::engine
