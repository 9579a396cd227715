// libFuzzer target: template text, a NUL byte, then a JSON object of render variables.
// Parsing and rendering must end in a value or an error, never a crash, hang or runaway
// allocation. With a "messages" key the vLLM preprocessing + render_chat path runs too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "frontend/chat_template/chat.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t sep = input.find('\0');
  const std::string_view source = input.substr(0, sep);
  const std::string_view context_text = sep == std::string_view::npos ? std::string_view() : input.substr(sep + 1);

  k2::jinja::RenderLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 200000;
  limits.max_loop_iterations = 50000;

  auto tpl = k2::ChatTemplate::parse(source);
  if (!tpl.ok()) return 0;
  nlohmann::ordered_json context = nlohmann::ordered_json::parse(context_text, nullptr, false);
  if (context.is_discarded() || !context.is_object()) context = nlohmann::ordered_json::object();

  auto vars = k2::jinja::from_json(context);
  if (vars.ok()) (void)tpl->compiled().render(*vars, limits);

  if (context.contains("messages")) {
    auto messages = k2::vllm_preprocess_messages(context["messages"]);
    const auto tools = context.contains("tools") ? context["tools"] : nlohmann::ordered_json();
    const auto kwargs = context.contains("kwargs") ? context["kwargs"] : nlohmann::ordered_json::object();
    if (messages.ok()) (void)k2::render_chat(*tpl, *messages, tools, kwargs, {}, limits);
  }
  return 0;
}
