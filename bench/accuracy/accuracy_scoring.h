// Scoring of one chat completion against an AccuracyItem. Pure functions on values;
// thread-safe. The response bytes come from any server, so parsing never throws.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/accuracy/accuracy_dataset.h"
#include "shm/status.h"

namespace k2::bench {

struct ReceivedToolCall {
  std::string name;
  std::string arguments;  // as the server sent it
};

// What the model replied, from choices[0].message of a chat completion.
struct ModelReply {
  std::string content;    // null content is ""
  std::string reasoning;  // `reasoning_content`, else `reasoning`, else ""
  std::vector<ReceivedToolCall> tool_calls;
  std::string finish_reason;
};

Result<ModelReply> parse_chat_reply(const std::string& body);

// Tool-call items: the same number of calls, in order, each with the expected name and
// JSON-equal arguments. Answer items: content exactly equal to the answer (reasoning is
// not part of the answer).
bool score_reply(const AccuracyItem& item, const ModelReply& reply);

}  // namespace k2::bench
