// OpenAiServer: the OpenAI-compatible API of k2serve on top of http::HttpServer.
//
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
// GET /version, GET /metrics, POST /tokenize, POST /detokenize, GET|POST /ping.
// --api-key guards every /v1 route (Bearer, constant-time compare, OpenAI-shaped 401);
// the other routes stay open, as in vLLM.
//
// Construction (what `k2serve serve` does):
//   auto cfg = make_server_config(flags);                    // EngineConfig -> ServerConfig
//   auto tok = Tokenizer::load(flags.tokenizer.empty() ? flags.model : flags.tokenizer);
//   auto server = OpenAiServer::create(*cfg, make_http_options(flags), *tok, engine_client);
//   server->start();            // binds; /health is 503 until set_ready(true)
//   server->set_ready(true);    // after the engines said READY
//   ... on SIGTERM: server->drain(std::chrono::seconds(flags.shutdown_timeout));
//
// Owns the HTTP server, the metrics registry and the parsed chat template; shares the
// tokenizer and the engine client. start/set_ready/drain/stop may be called from any one
// controlling thread; request handling runs on the HTTP threads.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

#include "frontend/chat_template/chat.h"
#include "frontend/http/metrics.h"
#include "frontend/http/server.h"
#include "frontend/openai/chat_media.h"
#include "frontend/openai/engine_client.h"
#include "frontend/openai/media_pool.h"
#include "frontend/openai/request.h"
#include "frontend/openai/server_config.h"
#include "frontend/openai/serving_metrics.h"
#include "frontend/tokenizer/tokenizer.h"

namespace k2::openai {

// kInvalidArgument/kOutOfRange/kCorrupt -> 400, kNotFound -> 404, kUnavailable -> 503,
// kUnimplemented -> 501, anything else -> 500.
int http_status_for(const Status& status);

class OpenAiServer {
 public:
  // Validates the configuration (parser names, --enable-auto-tool-choice needs
  // --tool-call-parser, a loadable chat template when one is named) and builds the routes.
  static Result<std::unique_ptr<OpenAiServer>> create(ServerConfig config, http::ServerOptions http_options,
                                                      std::shared_ptr<const Tokenizer> tokenizer,
                                                      std::shared_ptr<EngineClient> engine);
  ~OpenAiServer();

  Status start();
  void set_ready(bool ready) { ready_.store(ready); }
  bool healthy() const;
  size_t drain(std::chrono::milliseconds timeout) { return http_->drain(timeout); }
  void stop() { http_->stop(); }
  uint16_t port() const { return http_->port(); }
  http::MetricsRegistry& metrics() { return registry_; }

 private:
  OpenAiServer(ServerConfig config, std::shared_ptr<const Tokenizer> tokenizer, std::shared_ptr<EngineClient> engine);
  void add_routes();
  http::Handler guarded(http::Handler handler) const;

  void handle_chat(const std::shared_ptr<http::Exchange>& ex);
  void handle_completion(const std::shared_ptr<http::Exchange>& ex);
  void handle_models(const std::shared_ptr<http::Exchange>& ex) const;
  void handle_tokenize(const std::shared_ptr<http::Exchange>& ex) const;
  void handle_detokenize(const std::shared_ptr<http::Exchange>& ex) const;
  void handle_health(const std::shared_ptr<http::Exchange>& ex) const;

  // Chat prompt rendering shared by chat and /tokenize.
  Result<std::string> render_prompt(const ChatRequest& request) const;
  // Rendered, tokenized and with each media placeholder expanded to its item's tokens.
  Result<ExpandedPrompt> chat_prompt_ids(const ChatRequest& request, const std::vector<mm::LoadedMedia>& media) const;
  // Runs `then` with the request's media loaded: at once (no media), or on the media pool
  // after fetching, decoding and preprocessing there. Answers the exchange with a 400 itself
  // when a media part is malformed, over the limits or fails to load.
  void with_media(const std::shared_ptr<http::Exchange>& ex, const ojson& messages,
                  std::function<void(std::vector<mm::LoadedMedia>)> then) const;
  void continue_chat(const std::shared_ptr<http::Exchange>& ex, ChatRequest& req,
                     const std::vector<mm::LoadedMedia>& media);
  void finish_tokenize(const std::shared_ptr<http::Exchange>& ex, const ojson& body, const std::vector<int32_t>& ids) const;
  // </think>'s id: structured outputs of a thinking request start after it.
  std::optional<int32_t> think_end_token_id() const;
  Status check_model(const std::string& model) const;
  RequestLimits limits() const;
  std::string new_response_id(const std::string& prefix, const http::Exchange& ex, const CommonRequest& req) const;
  void fail(const std::shared_ptr<http::Exchange>& ex, const Status& status) const;

  ServerConfig config_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<EngineClient> engine_;
  std::optional<ChatTemplate> chat_template_;
  SpecialTokens special_tokens_;
  http::MetricsRegistry registry_;
  std::shared_ptr<ServingMetrics> serving_metrics_;
  std::unique_ptr<http::HttpServer> http_;
  std::atomic<bool> ready_{false};
  int64_t created_ = 0;
  std::string host_;
  // Last: destroyed (its queued media work finished) before anything a task may use.
  std::unique_ptr<MediaPool> media_pool_;
};

}  // namespace k2::openai
