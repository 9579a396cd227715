// What a request asks the engine to enforce (vLLM's structured outputs) and how the chat
// output is read back: tool_choice "required" / a named function become a JSON schema (the
// schemas vLLM builds) and forced tool calls; response_format / structured_outputs become a
// schema or "any JSON object". tool_choice wins when both are given.
//
// Every schema is compiled here once before anything is queued, so one the engine could not
// use is a 400 for this request alone (a cache of schemas already accepted keeps agent loops,
// which resend the same tools, from compiling each time). Thread-safe.
#pragma once

#include <cstdint>
#include <optional>

#include "frontend/openai/engine_client.h"
#include "frontend/openai/request.h"
#include "frontend/parsers/forced_tool_calls.h"
#include "shm/status.h"

namespace k2::openai {

struct StructuredPlan {
  std::optional<StructuredOutputRequest> engine;  // what the engine enforces; nullopt: nothing
  parsers::ForcedToolChoice forced;                // chat: how the content becomes tool calls
};

// reasoning_end_token_id: the token after which the grammar applies when the request's
// output starts with reasoning (a reasoning parser with thinking on), else nullopt.
Result<StructuredPlan> plan_structured_output(const ChatRequest& request, std::optional<int32_t> reasoning_end_token_id);
Result<StructuredPlan> plan_structured_output(const CommonRequest& request);

// Tool calls the assistant already made in the conversation (vLLM's history_tool_call_cnt):
// forced calls number their ids on from there.
int32_t tool_calls_in_history(const ojson& messages);

}  // namespace k2::openai
