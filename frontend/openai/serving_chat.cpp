// POST /v1/chat/completions: request -> chat template -> tokens -> GenerationJob.
#include <spdlog/spdlog.h>

#include "frontend/http/json_error.h"
#include "frontend/openai/api_server.h"
#include "frontend/openai/generation_job.h"
#include "frontend/openai/structured_plan.h"
#include "frontend/parsers/kimi_k2_markers.h"

namespace k2::openai {

namespace {

// Python truthiness of chat_template_kwargs.thinking (absent: true).
bool thinking_enabled(const ojson& kwargs) {
  auto it = kwargs.find("thinking");
  if (it == kwargs.end() || it->is_null()) return it == kwargs.end();
  if (it->is_boolean()) return it->get<bool>();
  if (it->is_number()) return it->get<double>() != 0;
  if (it->is_string() || it->is_array() || it->is_object()) return !it->empty();
  return true;
}

// Hugging Face's continue_final_message: cut the rendered prompt right after the final
// message's content so the model continues it.
Result<std::string> cut_after_final_message(std::string rendered, const ojson& messages) {
  const ojson& last = messages.back();
  std::string final_text;
  auto content = last.find("content");
  if (content != last.end() && content->is_string()) {
    final_text = content->get<std::string>();
  } else if (content != last.end() && content->is_array()) {
    for (auto it = content->rbegin(); it != content->rend(); ++it) {
      if (it->contains("text") && (*it)["text"].is_string()) {
        final_text = (*it)["text"].get<std::string>();
        break;
      }
    }
  }
  const auto b = final_text.find_first_not_of(" \t\r\n");
  const auto e = final_text.find_last_not_of(" \t\r\n");
  final_text = b == std::string::npos ? "" : final_text.substr(b, e - b + 1);
  const size_t pos = final_text.empty() ? std::string::npos : rendered.rfind(final_text);
  if (pos == std::string::npos) {
    return invalid_argument(
        "continue_final_message is set but the final message does not appear in the chat after applying the chat "
        "template!");
  }
  rendered.resize(pos + final_text.size());
  return rendered;
}

}  // namespace

Result<std::string> OpenAiServer::render_prompt(const ChatRequest& request) const {
  std::optional<ChatTemplate> per_request;
  if (request.chat_template) {
    if (!config_.trust_request_chat_template) {
      return invalid_argument(
          "Chat template is passed with request, but --trust-request-chat-template is not set. Refused request with "
          "untrusted chat template.");
    }
    auto parsed = ChatTemplate::parse(*request.chat_template);
    if (!parsed.ok()) return invalid_argument("chat_template: " + parsed.status().message());
    per_request.emplace(std::move(parsed).value());
  }
  const ChatTemplate* tmpl = per_request ? &*per_request : (chat_template_ ? &*chat_template_ : nullptr);
  if (!tmpl) {
    return invalid_argument("This model has no chat template and none was given with --chat-template.");
  }
  auto messages = vllm_preprocess_messages(request.messages);
  if (!messages.ok()) return invalid_argument(messages.status().message());
  *messages = strip_media_urls(*messages);
  ojson kwargs = {{"add_generation_prompt", request.add_generation_prompt}};
  for (auto it = request.chat_template_kwargs.begin(); it != request.chat_template_kwargs.end(); ++it) {
    kwargs[it.key()] = it.value();
  }
  auto rendered = render_chat(*tmpl, *messages, request.tools, kwargs, special_tokens_);
  if (!rendered.ok()) return invalid_argument("chat template error: " + rendered.status().message());
  if (request.continue_final_message) return cut_after_final_message(std::move(rendered).value(), request.messages);
  return rendered;
}

std::optional<int32_t> OpenAiServer::think_end_token_id() const {
  if (auto id = tokenizer_->special_token_id(parsers::kThinkEnd)) return id;
  return tokenizer_->token_id(parsers::kThinkEnd);
}

void OpenAiServer::handle_chat(const std::shared_ptr<http::Exchange>& ex) {
  auto body = parse_json_body(ex->request().body);
  if (!body.ok()) return fail(ex, body.status());
  auto parsed = parse_chat_request(*body, limits());
  if (!parsed.ok()) return fail(ex, parsed.status());
  ChatRequest& req = *parsed;
  if (Status st = check_model(req.model); !st.ok()) return fail(ex, st);
  if (!req.ignored_fields.empty()) {
    std::string names;
    for (const auto& f : req.ignored_fields) names += (names.empty() ? "" : ", ") + f.substr(0, 64);
    spdlog::warn("[{}] the following fields were present in the request but ignored: {}", ex->request_id(), names);
  }
  const bool tools_active = !req.tools.is_null() && req.tool_choice.kind != ToolChoiceKind::kNone;
  if (tools_active && req.tool_choice.kind == ToolChoiceKind::kAuto &&
      !(config_.enable_auto_tool_choice && config_.tool_call_parser)) {
    return fail(ex, invalid_argument("\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set"));
  }
  auto shared = std::make_shared<ChatRequest>(std::move(req));
  with_media(ex, shared->messages, [this, ex, shared](std::vector<mm::LoadedMedia> media) {
    continue_chat(ex, *shared, media);
  });
}

Result<ExpandedPrompt> OpenAiServer::chat_prompt_ids(const ChatRequest& request,
                                                     const std::vector<mm::LoadedMedia>& media) const {
  K2_ASSIGN_OR_RETURN(std::string prompt, render_prompt(request));
  if (!media.empty()) {
    K2_ASSIGN_OR_RETURN(prompt, expand_video_placeholders(std::move(prompt), config_.multimodal->loader->video_placeholder(), media));
  }
  std::vector<int32_t> ids = tokenizer_->encode(prompt, true);
  if (media.empty()) return ExpandedPrompt{std::move(ids), {}};
  return expand_media_placeholders(ids, config_.multimodal->placeholder_token_id, media);
}

void OpenAiServer::with_media(const std::shared_ptr<http::Exchange>& ex, const ojson& messages,
                              std::function<void(std::vector<mm::LoadedMedia>)> then) const {
  auto parts = collect_media_parts(messages);
  if (!parts.ok()) return fail(ex, parts.status());
  if (parts->empty()) return then({});
  if (!config_.multimodal) return fail(ex, invalid_argument("this model does not take image or video inputs"));
  if (Status st = check_media_limits(*parts, config_.multimodal->limit_per_prompt); !st.ok()) return fail(ex, st);
  media_pool_->post([this, ex, parts = std::move(parts).value(), then = std::move(then)] {
    if (ex->cancelled()) return;
    auto media = load_media_parts(parts, *config_.multimodal->loader);
    if (!media.ok()) return fail(ex, media.status());
    then(std::move(media).value());
  });
}

void OpenAiServer::continue_chat(const std::shared_ptr<http::Exchange>& ex, ChatRequest& req,
                                 const std::vector<mm::LoadedMedia>& media) {
  auto prompt = chat_prompt_ids(req, media);
  if (!prompt.ok()) return fail(ex, prompt.status());
  const std::vector<int32_t>& ids = prompt->ids;
  if (Status st = finalize_sampling(req, static_cast<int64_t>(ids.size()), config_.max_model_len,
                                    config_.generation_defaults);
      !st.ok()) {
    return fail(ex, st);
  }
  const bool tools_active = !req.tools.is_null() && req.tool_choice.kind != ToolChoiceKind::kNone;

  JobSpec spec;
  spec.kind = ApiKind::kChat;
  spec.response_id = new_response_id("chatcmpl-", *ex, req);
  spec.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  spec.model_name = req.model.empty() ? config_.served_model_names.front() : req.model;
  spec.stream = req.stream;
  spec.include_usage = req.include_usage || (req.stream && config_.enable_force_include_usage);
  spec.continuous_usage_stats = req.include_usage && req.continuous_usage_stats;
  parsers::OutputParserConfig pc;
  pc.parse_reasoning = config_.reasoning_parser.has_value();
  pc.thinking = thinking_enabled(req.chat_template_kwargs);
  // required / named are enforced by the engine's grammar and read back as JSON (vLLM's
  // structured-output path); only "auto" runs the tool-call parser.
  pc.parse_tools = tools_active && req.tool_choice.kind == ToolChoiceKind::kAuto;
  std::optional<int32_t> reasoning_end;
  if (pc.parse_reasoning && pc.thinking) reasoning_end = think_end_token_id();
  auto structured = plan_structured_output(req, reasoning_end);
  if (!structured.ok()) return fail(ex, structured.status());
  pc.forced = structured->forced;
  if (pc.parse_reasoning || pc.parse_tools || pc.forced.active()) spec.parser = pc;
  spec.include_reasoning = req.include_reasoning;
  spec.reasoning_field = config_.reasoning_field;
  spec.parallel_tool_calls = req.parallel_tool_calls;
  spec.logprobs = req.logprobs;
  spec.return_tokens_as_token_ids = req.return_tokens_as_token_ids;
  spec.prompt_logprobs = req.sampling.prompt_logprobs.has_value();
  std::string echo;
  if (req.echo) {
    const ojson& last = req.messages.back();
    if (last["role"] == "assistant" && last.contains("content") && last["content"].is_string()) {
      echo = last["content"].get<std::string>();
    }
  }
  for (int32_t i = 0; i < req.n; ++i) {
    JobChoice c;
    c.prompt_ids = ids;
    c.sampling = req.sampling;
    if (c.sampling.seed) c.sampling.seed = *c.sampling.seed + i;
    c.config.tokenizer = tokenizer_;
    // The parsers need the marker tokens in the text even when they are special.
    c.config.skip_special_tokens = req.skip_special_tokens && !spec.parser;
    c.config.stop = req.stop;
    c.config.include_stop_str_in_output = req.include_stop_str_in_output;
    c.config.stop_token_ids = req.sampling.stop_token_ids;
    c.config.parser = spec.parser;
    c.config.parallel_tool_calls = req.parallel_tool_calls;
    c.echo_text = echo;
    // Media need no salt: the scheduler keys each block by the media items it holds.
    c.cache_salt = req.cache_salt;
    c.media = prompt->media;
    c.structured = structured->engine;
    spec.choices.push_back(std::move(c));
  }
  if (config_.log_requests) {
    spdlog::info("[{}] chat request {}: prompt_tokens={} n={} max_tokens={} temperature={} stream={}",
                 ex->request_id(), spec.response_id, ids.size(), req.n, req.sampling.max_tokens,
                 req.sampling.temperature, req.stream);
  }
  ex->set_log_note("prompt_tokens=" + std::to_string(ids.size()));
  GenerationJob::start(std::move(spec), ex, engine_, tokenizer_, serving_metrics_);
}

}  // namespace k2::openai
