#include <cmath>

#include "enginecore/protocol/codec.h"
#include "enginecore/protocol/messages.h"

namespace k2::protocol {
namespace {

constexpr size_t kMaxRequestIdBytes = 512;
constexpr uint32_t kMaxN = 1024;
constexpr uint32_t kMaxLogprobs = 1 << 20;
constexpr size_t kMaxSchemaBytes = size_t{1} << 20;
constexpr size_t kMaxMaskWords = size_t{1} << 20;  // 32M token ids
constexpr uint32_t kMaxExperts = 1 << 16;

bool finite(float v) { return std::isfinite(v); }
// msgpack-cxx packs an integral float as an integer after `d <= float(UINT64_MAX)`, which
// rounds up to 2^64, so a float of exactly 2^64 reaches uint64_t(2^64): undefined behaviour
// when the message is encoded again. No field of ours means anything near 2^63, so refuse
// such values at the decoder (NaN and -inf stay: logprobs use -inf).
bool packable(double v) { return !(v >= 0x1p63); }

Status check_id(const std::string& id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes)
    return invalid_argument("request id of " + std::to_string(id.size()) + " bytes");
  return Status::ok_status();
}

Status check_tokens(const TokenIds& t) {
  switch (t.location) {
    case DataLocation::kInline:
      if (t.ids.size() != t.count) return invalid_argument("token count disagrees with the inline ids");
      return Status::ok_status();
    case DataLocation::kShm:
      if (!t.ids.empty() || !t.handle.valid() || t.handle.bytes != uint64_t{t.count} * sizeof(int32_t))
        return invalid_argument("bad shm token handle");
      return Status::ok_status();
    case DataLocation::kFrame:
      break;
  }
  return invalid_argument("bad token ids location");
}

Status check_params(const SamplingParams& p) {
  if (!finite(p.temperature) || p.temperature < 0 || !packable(p.temperature)) return invalid_argument("temperature");
  if (!finite(p.top_p) || p.top_p <= 0 || p.top_p > 1) return invalid_argument("top_p");
  if (p.top_k < -1) return invalid_argument("top_k");
  if (!finite(p.min_p) || p.min_p < 0 || p.min_p > 1) return invalid_argument("min_p");
  for (float v : {p.presence_penalty, p.frequency_penalty})
    if (!finite(v) || !packable(v)) return invalid_argument("penalty");
  if (!finite(p.repetition_penalty) || p.repetition_penalty <= 0 || !packable(p.repetition_penalty))
    return invalid_argument("repetition_penalty");
  if (p.min_tokens > p.max_tokens) return invalid_argument("min_tokens > max_tokens");
  if (p.n == 0 || p.n > kMaxN) return invalid_argument("n");
  if (p.logprobs.value_or(0) > kMaxLogprobs || p.prompt_logprobs.value_or(0) > kMaxLogprobs)
    return invalid_argument("logprobs");
  for (const auto& b : p.logit_bias)
    if (!finite(b.bias) || !packable(b.bias) || b.token_id < 0) return invalid_argument("logit_bias");
  return Status::ok_status();
}

Status check_logprobs(const std::optional<TokenLogprobs>& l) {
  if (!l) return Status::ok_status();
  uint64_t cells = uint64_t{l->num_positions} * l->width;
  if (l->token_ids.size() != cells || l->logprobs.size() != cells || l->ranks.size() != l->num_positions)
    return invalid_argument("logprobs shape disagrees with its arrays");
  for (float v : l->logprobs)
    if (!packable(v)) return invalid_argument("logprob out of range");
  return Status::ok_status();
}

Status check_expert_load(const std::optional<ExpertLoad>& l) {
  if (!l) return Status::ok_status();
  if (l->num_experts == 0 || l->num_experts > kMaxExperts) return invalid_argument("expert load of bad width");
  if (l->tokens.size() != uint64_t{l->num_experts} * l->layers.size())
    return invalid_argument("expert load shape disagrees with its counts");
  for (size_t i = 1; i < l->layers.size(); ++i)
    if (l->layers[i] <= l->layers[i - 1]) return invalid_argument("expert load layers not ascending");
  return Status::ok_status();
}

bool valid_enum(ProcessKind k) { return k <= ProcessKind::kWorker; }
bool valid_enum(FinishReason r) { return r <= FinishReason::kError; }
bool valid_enum(RequestEventType t) { return t <= RequestEventType::kPreempted; }

Status check(const Hello& m) {
  return valid_enum(m.kind) ? Status::ok_status() : invalid_argument("unknown process kind");
}
Status check(const EngineConfigMsg&) { return Status::ok_status(); }
Status check(const ReadyMsg&) { return Status::ok_status(); }
Status check(const EngineDead&) { return Status::ok_status(); }
Status check(const DpControl& m) {
  return m.kind <= DpControlKind::kHeartbeat ? Status::ok_status() : invalid_argument("unknown dp control kind");
}
Status check(const Utility& m) {
  return m.method.empty() ? invalid_argument("utility call without a method") : Status::ok_status();
}

Status check(const AddRequest& m) {
  K2_RETURN_IF_ERROR(check_id(m.request_id));
  K2_RETURN_IF_ERROR(check_tokens(m.prompt));
  if (m.prompt.count == 0) return invalid_argument("empty prompt");
  if (!packable(m.arrival_time)) return invalid_argument("arrival_time out of range");
  if (m.structured) {
    if (m.structured->json_schema.size() > kMaxSchemaBytes) return invalid_argument("structured output schema too large");
    if (m.structured->json_object == !m.structured->json_schema.empty())
      return invalid_argument("structured output needs exactly one of a schema and json_object");
    if (m.structured->reasoning_end_token_id < -1) return invalid_argument("reasoning_end_token_id");
  }
  return check_params(m.params);
}

Status check(const AbortRequests& m) {
  for (const auto& id : m.request_ids) K2_RETURN_IF_ERROR(check_id(id));
  return Status::ok_status();
}

Status check(const EngineOutputs& m) {
  if (!packable(m.timestamp)) return invalid_argument("timestamp out of range");
  if (m.scheduler_stats && !packable(m.scheduler_stats->kv_cache_usage)) return invalid_argument("kv_cache_usage");
  if (m.scheduler_stats) K2_RETURN_IF_ERROR(check_expert_load(m.scheduler_stats->expert_load));
  for (const auto& o : m.outputs) {
    K2_RETURN_IF_ERROR(check_id(o.request_id));
    if (!valid_enum(o.finish_reason)) return invalid_argument("unknown finish reason");
    for (const auto& e : o.events)
      if (!valid_enum(e.type) || !packable(e.timestamp)) return invalid_argument("bad request event");
    K2_RETURN_IF_ERROR(check_logprobs(o.new_logprobs));
    K2_RETURN_IF_ERROR(check_logprobs(o.new_prompt_logprobs));
  }
  return Status::ok_status();
}

Status check(const StepPlan& m) {
  uint64_t total = 0;
  for (const auto& r : m.requests) {
    K2_RETURN_IF_ERROR(check_id(r.request_id));
    K2_RETURN_IF_ERROR(check_tokens(r.token_ids));
    if (r.num_tokens != r.token_ids.count) return invalid_argument("num_tokens disagrees with the token ids");
    if (r.params_index < -1 || r.params_index >= static_cast<int64_t>(m.sampling_params.size()))
      return invalid_argument("sampling params index out of range");
    if (r.allowed_token_mask.size() > kMaxMaskWords) return invalid_argument("token mask too large");
    if (!r.allowed_token_mask.empty() && !r.sample) return invalid_argument("a token mask on a step that samples nothing");
    total += r.num_tokens;
  }
  if (total != m.total_num_tokens) return invalid_argument("total_num_tokens disagrees with the requests");
  for (const auto& p : m.sampling_params) K2_RETURN_IF_ERROR(check_params(p));
  return Status::ok_status();
}

Status check(const StepResult& m) {
  for (const auto& s : m.samples) {
    K2_RETURN_IF_ERROR(check_logprobs(s.logprobs));
    K2_RETURN_IF_ERROR(check_logprobs(s.prompt_logprobs));
  }
  if (m.logprobs_handle && !m.logprobs_handle->valid()) return invalid_argument("bad logprobs handle");
  return check_expert_load(m.expert_load);
}

}  // namespace

TokenIds inline_tokens(std::vector<int32_t> ids) {
  TokenIds t;
  t.count = static_cast<uint32_t>(ids.size());
  t.ids = std::move(ids);
  return t;
}

const char* message_type_name(MsgType type) {
  switch (type) {
    case MsgType::kHello: return "Hello";
    case MsgType::kEngineConfig: return "EngineConfig";
    case MsgType::kReady: return "Ready";
    case MsgType::kAddRequest: return "AddRequest";
    case MsgType::kAbortRequests: return "AbortRequests";
    case MsgType::kUtility: return "Utility";
    case MsgType::kEngineOutputs: return "EngineOutputs";
    case MsgType::kStepPlan: return "StepPlan";
    case MsgType::kStepResult: return "StepResult";
    case MsgType::kEngineDead: return "EngineDead";
    case MsgType::kDpControl: return "DpControl";
  }
  return "unknown";
}

Status validate(const Message& message) {
  Status s = std::visit([](const auto& m) { return check(m); }, message);
  if (!s.ok()) return s.with_context(std::string("invalid ") + message_type_name(message_type(message)));
  return s;
}

}  // namespace k2::protocol
