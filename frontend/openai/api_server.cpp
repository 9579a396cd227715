#include "frontend/openai/api_server.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "frontend/http/json_error.h"
#include "frontend/openai/logprobs_format.h"

namespace k2::openai {

int http_status_for(const Status& status) {
  switch (status.code()) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument:
    case Code::kOutOfRange:
    case Code::kCorrupt: return 400;
    case Code::kNotFound: return 404;
    case Code::kUnavailable: return 503;
    case Code::kUnimplemented: return 501;
    default: return 500;
  }
}

namespace {

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

http::HttpResponse json_response(const ojson& j) {
  http::HttpResponse r;
  r.body = j.dump(-1, ' ', false, ojson::error_handler_t::replace);
  return r;
}

}  // namespace

OpenAiServer::OpenAiServer(ServerConfig config, std::shared_ptr<const Tokenizer> tokenizer,
                           std::shared_ptr<EngineClient> engine)
    : config_(std::move(config)), tokenizer_(std::move(tokenizer)), engine_(std::move(engine)) {
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

OpenAiServer::~OpenAiServer() {
  if (http_) http_->stop();
}

Result<std::unique_ptr<OpenAiServer>> OpenAiServer::create(ServerConfig config, http::ServerOptions http_options,
                                                            std::shared_ptr<const Tokenizer> tokenizer,
                                                            std::shared_ptr<EngineClient> engine) {
  if (config.served_model_names.empty()) return invalid_argument("no served model name");
  if (config.tool_call_parser && *config.tool_call_parser != "kimi_k2") {
    return invalid_argument("unknown --tool-call-parser '" + *config.tool_call_parser + "' (supported: kimi_k2)");
  }
  if (config.reasoning_parser && *config.reasoning_parser != "kimi_k2") {
    return invalid_argument("unknown --reasoning-parser '" + *config.reasoning_parser + "' (supported: kimi_k2)");
  }
  if (config.enable_auto_tool_choice && !config.tool_call_parser) {
    return invalid_argument("--enable-auto-tool-choice requires --tool-call-parser");
  }
  if (config.limits.vocab_size == 0) config.limits.vocab_size = tokenizer->vocab_size();
  std::unique_ptr<OpenAiServer> s(new OpenAiServer(std::move(config), std::move(tokenizer), std::move(engine)));
  const auto& map = s->tokenizer_->special_tokens_map();
  s->special_tokens_ = SpecialTokens{map.bos_token, map.eos_token, map.unk_token, map.pad_token,
                                     map.additional_special_tokens};
  if (s->config_.chat_template) {
    const std::string& t = *s->config_.chat_template;
    std::error_code ec;
    auto parsed = std::filesystem::is_regular_file(t, ec) ? ChatTemplate::load_from_file(t) : ChatTemplate::parse(t);
    if (!parsed.ok()) return parsed.status().with_context("--chat-template");
    s->chat_template_.emplace(std::move(parsed).value());
  } else if (s->tokenizer_->chat_template()) {
    auto parsed = ChatTemplate::parse(*s->tokenizer_->chat_template());
    if (!parsed.ok()) return parsed.status().with_context("the model's chat template");
    s->chat_template_.emplace(std::move(parsed).value());
  }
  s->serving_metrics_ = std::make_shared<ServingMetrics>(s->registry_, s->config_.served_model_names.front(),
                                                         s->config_.max_model_len, s->engine_);
  auto metrics = s->serving_metrics_;
  const bool log_requests = s->config_.log_requests;
  http_options.access_log = http_options.access_log && log_requests;
  http_options.observer = [metrics](const http::CompletedExchange& done) { metrics->on_http(done); };
  s->host_ = http_options.host;
  s->http_ = std::make_unique<http::HttpServer>(std::move(http_options));
  if (s->config_.multimodal) s->media_pool_ = std::make_unique<MediaPool>(s->config_.multimodal->pool_threads);
  s->add_routes();
  return s;
}

Status OpenAiServer::start() {
  K2_RETURN_IF_ERROR(http_->start());
  spdlog::info("Starting k2serve OpenAI-compatible API server on http://{}:{} (model {})", host_, http_->port(),
               config_.served_model_names.front());
  return Status::ok_status();
}

bool OpenAiServer::healthy() const { return ready_.load() && !http_->draining() && engine_->healthy(); }

http::Handler OpenAiServer::guarded(http::Handler handler) const {
  if (!config_.api_key) return handler;
  return [key = *config_.api_key, handler = std::move(handler)](std::shared_ptr<http::Exchange> ex) {
    auto auth = ex->request().header("authorization");
    std::string_view given = auth.value_or("");
    const bool ok = given.size() > 7 && (given.substr(0, 7) == "Bearer " || given.substr(0, 7) == "bearer ") &&
                    constant_time_equal(given.substr(7), key);
    if (!ok) {
      ex->respond(http::error_response(401, "Unauthorized: a valid API key is required (Authorization: Bearer ...)"));
      return;
    }
    handler(std::move(ex));
  };
}

void OpenAiServer::add_routes() {
  auto& r = http_->router();
  r.add("POST", "/v1/chat/completions", guarded([this](auto ex) { handle_chat(ex); }));
  r.add("POST", "/v1/completions", guarded([this](auto ex) { handle_completion(ex); }));
  r.add("GET", "/v1/models", guarded([this](auto ex) { handle_models(ex); }));
  r.add("POST", "/tokenize", [this](auto ex) { handle_tokenize(ex); });
  r.add("POST", "/detokenize", [this](auto ex) { handle_detokenize(ex); });
  r.add("GET", "/health", [this](auto ex) { handle_health(ex); });
  r.add("GET", "/ping", [this](auto ex) { handle_health(ex); });
  r.add("POST", "/ping", [this](auto ex) { handle_health(ex); });
  r.add("GET", "/version", [this](auto ex) { ex->respond(json_response({{"version", config_.version}})); });
  r.add("GET", "/metrics", [this](auto ex) {
    http::HttpResponse res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = registry_.render();
    ex->respond(std::move(res));
  });
}

void OpenAiServer::handle_health(const std::shared_ptr<http::Exchange>& ex) const {
  http::HttpResponse res;
  res.content_type = "text/plain";
  res.status = healthy() ? 200 : 503;
  ex->respond(std::move(res));
}

void OpenAiServer::handle_models(const std::shared_ptr<http::Exchange>& ex) const {
  ojson data = ojson::array();
  for (const auto& name : config_.served_model_names) {
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", created_},
                    {"owned_by", "k2serve"},
                    {"root", config_.model_root},
                    {"parent", nullptr},
                    {"max_model_len", config_.max_model_len},
                    {"permission", ojson::array({{{"id", "modelperm-" + name},
                                                  {"object", "model_permission"},
                                                  {"created", created_},
                                                  {"allow_create_engine", false},
                                                  {"allow_sampling", true},
                                                  {"allow_logprobs", true},
                                                  {"allow_search_indices", false},
                                                  {"allow_view", true},
                                                  {"allow_fine_tuning", false},
                                                  {"organization", "*"},
                                                  {"group", nullptr},
                                                  {"is_blocking", false}}})}});
  }
  ex->respond(json_response({{"object", "list"}, {"data", std::move(data)}}));
}

Status OpenAiServer::check_model(const std::string& model) const {
  if (model.empty()) return Status::ok_status();
  for (const auto& n : config_.served_model_names) {
    if (n == model) return Status::ok_status();
  }
  return not_found("The model `" + model.substr(0, 200) + "` does not exist.");
}

RequestLimits OpenAiServer::limits() const { return config_.limits; }

void OpenAiServer::fail(const std::shared_ptr<http::Exchange>& ex, const Status& status) const {
  const int code = http_status_for(status);
  if (code >= 500) spdlog::error("[{}] {}", ex->request_id(), status.message());
  else spdlog::info("[{}] rejected ({}): {}", ex->request_id(), code, status.message().substr(0, 300));
  ex->respond(http::error_response(code, status.message()));
}

std::string OpenAiServer::new_response_id(const std::string& prefix, const http::Exchange& ex,
                                          const CommonRequest& req) const {
  return prefix + (req.request_id && !req.request_id->empty() ? req.request_id->substr(0, 128) : ex.request_id());
}

void OpenAiServer::handle_tokenize(const std::shared_ptr<http::Exchange>& ex) const {
  auto body = parse_json_body(ex->request().body);
  if (!body.ok()) return fail(ex, body.status());
  if (body->contains("messages")) {
    auto req = parse_chat_request(*body, limits());
    if (!req.ok()) return fail(ex, req.status());
    if (Status st = check_model(req->model); !st.ok()) return fail(ex, st);
    auto shared = std::make_shared<ChatRequest>(std::move(req).value());
    auto shared_body = std::make_shared<ojson>(std::move(body).value());
    with_media(ex, shared->messages, [this, ex, shared, shared_body](std::vector<mm::LoadedMedia> media) {
      auto prompt = chat_prompt_ids(*shared, media);
      if (!prompt.ok()) return fail(ex, prompt.status());
      finish_tokenize(ex, *shared_body, prompt->ids);
    });
    return;
  }
  auto p = body->find("prompt");
  if (p == body->end() || !p->is_string()) return fail(ex, invalid_argument("'prompt' (a string) or 'messages' is required"));
  auto m = body->find("model");
  if (m != body->end() && m->is_string()) {
    if (Status st = check_model(m->get<std::string>()); !st.ok()) return fail(ex, st);
  }
  finish_tokenize(ex, *body, tokenizer_->encode(p->get<std::string>(), true));
}

void OpenAiServer::finish_tokenize(const std::shared_ptr<http::Exchange>& ex, const ojson& body,
                                   const std::vector<int32_t>& ids) const {
  ojson out = {{"count", ids.size()}, {"max_model_len", config_.max_model_len}, {"tokens", ids}};
  auto strs = body.find("return_token_strs");
  if (strs != body.end() && strs->is_boolean() && strs->get<bool>()) {
    TokenStrings ts{tokenizer_, false};
    ojson s = ojson::array();
    for (int32_t id : ids) s.push_back(ts.text(id));
    out["token_strs"] = std::move(s);
  }
  ex->respond(json_response(out));
}

void OpenAiServer::handle_detokenize(const std::shared_ptr<http::Exchange>& ex) const {
  auto body = parse_json_body(ex->request().body);
  if (!body.ok()) return fail(ex, body.status());
  auto t = body->find("tokens");
  if (t == body->end() || !t->is_array()) return fail(ex, invalid_argument("'tokens' (a list of token ids) is required"));
  std::vector<int32_t> ids;
  for (const auto& e : *t) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= tokenizer_->vocab_size()) {
      return fail(ex, invalid_argument("'tokens' holds an invalid token id"));
    }
    ids.push_back(e.get<int32_t>());
  }
  auto text = tokenizer_->decode(ids, false);
  if (!text.ok()) return fail(ex, invalid_argument(text.status().message()));
  ex->respond(json_response({{"prompt", *text}}));
}

}  // namespace k2::openai
