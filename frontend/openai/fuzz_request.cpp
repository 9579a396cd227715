// libFuzzer: request JSON validation (chat and completions) and finalize_sampling on
// arbitrary bytes. Must never crash, throw or hang; every input ends in a value or a Status.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "frontend/openai/chat_media.h"
#include "frontend/openai/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k2::openai;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = parse_json_body(text);
  if (!body.ok()) return 0;
  RequestLimits limits;
  limits.vocab_size = 1024;
  GenerationDefaults defaults;
  defaults.temperature = 0.6;
  defaults.max_tokens = 64;
  if (auto chat = parse_chat_request(*body, limits); chat.ok()) {
    (void)finalize_sampling(*chat, static_cast<int64_t>(size % 300), 256, defaults);
    if (auto parts = collect_media_parts(chat->messages); parts.ok()) {
      (void)check_media_limits(*parts, {{"image", 2}});
      (void)strip_media_urls(chat->messages);
    }
  }
  if (auto comp = parse_completion_request(*body, limits); comp.ok()) {
    for (const auto& p : comp->prompts) {
      CommonRequest c = *comp;
      (void)finalize_sampling(c, static_cast<int64_t>(p.ids.size() + (p.text ? p.text->size() : 0)), 256, defaults);
    }
  }
  return 0;
}
