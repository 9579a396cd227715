#include "frontend/openai/engine_client.h"

namespace k2::openai {

EngineClient::~EngineClient() = default;

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kAbort: return "abort";
    case FinishReason::kError: return "error";
    case FinishReason::kNone: break;
  }
  return "";
}

}  // namespace k2::openai
