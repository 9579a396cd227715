#include "frontend/openai/structured_plan.h"

#include <mutex>
#include <string>
#include <unordered_set>

#include "enginecore/structured/compiled_grammar.h"
#include "enginecore/structured/tool_schemas.h"

namespace k2::openai {

namespace {

// Schema texts that compiled. Forgotten all at once when full: a server fed endless
// distinct schemas just compiles again.
class AcceptedSchemas {
 public:
  Status check(const std::string& text, const ojson& schema) {
    {
      std::lock_guard lock(mu_);
      if (accepted_.contains(text)) return Status::ok_status();
    }
    auto compiled = structured::CompiledGrammar::from_json_schema(schema);
    if (!compiled.ok()) return invalid_argument("the JSON schema cannot be enforced: " + compiled.status().message());
    std::lock_guard lock(mu_);
    if (accepted_.size() >= kMaxEntries) accepted_.clear();
    accepted_.insert(text);
    return Status::ok_status();
  }

 private:
  static constexpr size_t kMaxEntries = 512;
  std::mutex mu_;
  std::unordered_set<std::string> accepted_;
};

AcceptedSchemas& accepted_schemas() {
  static AcceptedSchemas cache;
  return cache;
}

Result<StructuredOutputRequest> schema_request(const ojson& schema) {
  StructuredOutputRequest r;
  r.json_schema = schema.dump();
  K2_RETURN_IF_ERROR(accepted_schemas().check(r.json_schema, schema));
  return r;
}

}  // namespace

Result<StructuredPlan> plan_structured_output(const CommonRequest& request) {
  StructuredPlan plan;
  if (request.json_schema) {
    K2_ASSIGN_OR_RETURN(plan.engine, schema_request(*request.json_schema));
  } else if (request.json_object) {
    plan.engine = StructuredOutputRequest{"", true, -1};
  }
  return plan;
}

Result<StructuredPlan> plan_structured_output(const ChatRequest& request, std::optional<int32_t> reasoning_end_token_id) {
  StructuredPlan plan;
  const ToolChoiceKind kind = request.tool_choice.kind;
  if (kind == ToolChoiceKind::kRequired || kind == ToolChoiceKind::kNamed) {
    ojson schema;
    if (kind == ToolChoiceKind::kRequired) {
      K2_ASSIGN_OR_RETURN(schema, structured::required_tool_calls_schema(request.tools));
      // Beyond vLLM, whose array is unbounded: parallel_tool_calls=false means one call, so
      // the grammar ends after it instead of the parser dropping the rest.
      if (!request.parallel_tool_calls) schema["maxItems"] = 1;
      plan.forced.mode = parsers::ForcedToolMode::kRequired;
    } else {
      K2_ASSIGN_OR_RETURN(schema, structured::named_tool_schema(request.tools, request.tool_choice.name));
      plan.forced.mode = parsers::ForcedToolMode::kNamed;
      plan.forced.name = request.tool_choice.name;
    }
    plan.forced.first_call_index = tool_calls_in_history(request.messages);
    // vLLM: a named tool without parameters gets no constraint; its output is still the call.
    if (!schema.is_null()) {
      K2_ASSIGN_OR_RETURN(plan.engine, schema_request(schema));
    }
  } else {
    K2_ASSIGN_OR_RETURN(plan, plan_structured_output(static_cast<const CommonRequest&>(request)));
  }
  if (plan.engine && reasoning_end_token_id) plan.engine->reasoning_end_token_id = *reasoning_end_token_id;
  return plan;
}

int32_t tool_calls_in_history(const ojson& messages) {
  int32_t n = 0;
  if (!messages.is_array()) return n;
  for (const ojson& m : messages) {
    if (!m.is_object() || m.value("role", "") != "assistant") continue;
    auto calls = m.find("tool_calls");
    if (calls != m.end() && calls->is_array()) n += static_cast<int32_t>(calls->size());
  }
  return n;
}

}  // namespace k2::openai
