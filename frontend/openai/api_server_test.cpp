// The OpenAI layer in process: FakeEngineClient + the demo model's tokenizer and template,
// driven over loopback HTTP with a Beast client.
#include "frontend/openai/api_server.h"

#include <gtest/gtest.h>

#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <thread>

#include "frontend/openai/fake_engine_client.h"

namespace k2::openai {
namespace {

namespace net = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

struct Reply {
  int status = 0;
  std::string body;
};

class ApiServerTest : public ::testing::Test {
 protected:
  void start(std::optional<std::string> api_key = std::nullopt, bool ready = true) {
    auto t = Tokenizer::load(std::string(K2_TEST_DATA_DIR) + "/models/demo-trained");
    ASSERT_TRUE(t.ok());
    tok_ = *t;
    EngineConfig flags;
    flags.model = std::string(K2_TEST_DATA_DIR) + "/models/demo-trained";
    flags.served_model_name = {"demo"};
    flags.max_model_len = 256;
    flags.api_key = api_key;
    flags.tool_call_parser = "kimi_k2";
    flags.enable_auto_tool_choice = true;
    auto cfg = make_server_config(flags);
    ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
    FakeEngineOptions fo;
    fo.eos_token_ids = tok_->stop_token_ids();
    fo.token_min = 256;
    fo.token_max = tok_->num_base_tokens();
    fo.step_interval = std::chrono::microseconds(step_us_);
    fo.max_model_len = 256;
    fo.script = [this](const GenerateRequest& r) -> std::optional<FakeScript> {
      if (fail_after_) return FakeScript{tok_->encode("one two three four five", false), fail_after_};
      (void)r;
      return std::nullopt;
    };
    engine_ = std::make_shared<FakeEngineClient>(fo);
    http::ServerOptions ho;
    ho.port = 0;
    ho.max_body_bytes = 64 * 1024;
    auto s = OpenAiServer::create(*cfg, ho, tok_, engine_);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    server_ = std::move(s).value();
    ASSERT_TRUE(server_->start().ok());
    server_->set_ready(ready);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }
  Reply call(const std::string& method, const std::string& target, const std::string& body = "",
             const std::string& auth = "") {
    net::io_context io;
    tcp::socket sock(io);
    sock.connect({net::ip::make_address("127.0.0.1"), server_->port()});
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
    req.set(bhttp::field::host, "localhost");
    req.set(bhttp::field::content_type, "application/json");
    if (!auth.empty()) req.set(bhttp::field::authorization, auth);
    req.body() = body;
    req.prepare_payload();
    bhttp::write(sock, req);
    boost::beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(sock, buf, res);
    return {static_cast<int>(res.result_int()), res.body()};
  }
  static std::vector<std::string> sse_payloads(const std::string& body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
      size_t end = body.find("\n\n", pos);
      out.push_back(body.substr(pos + 6, end - pos - 6));
      pos = end;
    }
    return out;
  }

  std::shared_ptr<const Tokenizer> tok_;
  std::shared_ptr<FakeEngineClient> engine_;
  std::unique_ptr<OpenAiServer> server_;
  int64_t step_us_ = 500;
  std::optional<size_t> fail_after_;
};

TEST_F(ApiServerTest, HealthFollowsReadinessAndEngine) {
  start(std::nullopt, /*ready=*/false);
  EXPECT_EQ(call("GET", "/health").status, 503);
  server_->set_ready(true);
  EXPECT_EQ(call("GET", "/health").status, 200);
  EXPECT_EQ(call("GET", "/ping").status, 200);
  engine_->kill("test");
  EXPECT_EQ(call("GET", "/health").status, 503);
  auto r = call("POST", "/v1/completions", R"({"prompt":"hi","max_tokens":3})");
  EXPECT_EQ(r.status, 503);
}

TEST_F(ApiServerTest, CompletionsStreamFramingWithUsage) {
  start();
  auto r = call("POST", "/v1/completions",
                R"({"model":"demo","prompt":"hello","max_tokens":5,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(r.status, 200);
  auto frames = sse_payloads(r.body);
  ASSERT_GE(frames.size(), 3u);
  EXPECT_EQ(frames.back(), "[DONE]");
  auto usage = nlohmann::json::parse(frames[frames.size() - 2]);
  EXPECT_TRUE(usage["choices"].is_array() && usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 5);
  auto last = nlohmann::json::parse(frames[frames.size() - 3]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  std::string id = last["id"];
  for (size_t i = 0; i + 1 < frames.size(); ++i) EXPECT_EQ(nlohmann::json::parse(frames[i])["id"], id);
}

// vLLM's shape: one entry per prompt token, null first, then {"<id>": {logprob, rank,
// decoded_token}} holding the prompt token and the top-n.
void expect_prompt_logprobs_shape(const nlohmann::json& plp, const std::vector<int32_t>& prompt, size_t top_n) {
  ASSERT_TRUE(plp.is_array()) << plp.dump();
  ASSERT_EQ(plp.size(), prompt.size());
  EXPECT_TRUE(plp[0].is_null());
  for (size_t i = 1; i < plp.size(); ++i) {
    ASSERT_TRUE(plp[i].is_object()) << i;
    ASSERT_TRUE(plp[i].contains(std::to_string(prompt[i]))) << "position " << i << " lacks its prompt token";
    EXPECT_GE(plp[i].size(), top_n);
    EXPECT_LE(plp[i].size(), top_n + 1);
    for (const auto& [key, entry] : plp[i].items()) {
      EXPECT_EQ(std::to_string(std::stoi(key)), key);
      EXPECT_TRUE(entry["logprob"].is_number());
      EXPECT_TRUE(entry["rank"].is_number_integer());
      EXPECT_TRUE(entry["decoded_token"].is_string());
    }
  }
}

TEST_F(ApiServerTest, PromptLogprobsInVllmShape) {
  start();
  const std::vector<int32_t> prompt = tok_->encode("one two three four", false);
  nlohmann::json body = {{"model", "demo"}, {"prompt", prompt}, {"max_tokens", 2}, {"prompt_logprobs", 2},
                         {"return_tokens_as_token_ids", true}};
  auto r = call("POST", "/v1/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = nlohmann::json::parse(r.body);
  expect_prompt_logprobs_shape(j["choices"][0]["prompt_logprobs"], prompt, 2);
  EXPECT_FALSE(j.contains("prompt_logprobs")) << "completions carry it on the choice";
  const auto& entry = j["choices"][0]["prompt_logprobs"][1][std::to_string(prompt[1])];
  auto text = tok_->decode(std::span<const int32_t>(&prompt[1], 1), false);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(entry["decoded_token"], *text) << "decoded_token stays text with return_tokens_as_token_ids";

  body = {{"model", "demo"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2},
          {"prompt_logprobs", 1}, {"chat_template_kwargs", {{"thinking", false}}}};
  r = call("POST", "/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  j = nlohmann::json::parse(r.body);
  ASSERT_TRUE(j.contains("prompt_logprobs")) << "chat carries it on the response";
  EXPECT_TRUE(j["prompt_logprobs"].is_array());
  EXPECT_GE(j["prompt_logprobs"].size(), 2u);
  EXPECT_TRUE(j["prompt_logprobs"][0].is_null());

  body = {{"model", "demo"}, {"prompt", prompt}, {"prompt_logprobs", 1}, {"stream", true}};
  EXPECT_EQ(call("POST", "/v1/completions", body.dump()).status, 400);
  body = {{"model", "demo"}, {"prompt", prompt}, {"prompt_logprobs", 21}};
  EXPECT_EQ(call("POST", "/v1/completions", body.dump()).status, 400) << "over --max-logprobs";
}

TEST_F(ApiServerTest, ChatStreamStartsWithRoleDelta) {
  start();
  auto r = call("POST", "/v1/chat/completions",
                R"({"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"n":2})");
  ASSERT_EQ(r.status, 200);
  auto frames = sse_payloads(r.body);
  std::map<int, std::vector<nlohmann::json>> per_choice;
  for (size_t i = 0; i + 1 < frames.size(); ++i) {
    auto j = nlohmann::json::parse(frames[i]);
    per_choice[j["choices"][0]["index"]].push_back(j["choices"][0]);
  }
  ASSERT_EQ(per_choice.size(), 2u);
  for (auto& [idx, chunks] : per_choice) {
    EXPECT_EQ(chunks.front()["delta"]["role"], "assistant");
    EXPECT_EQ(chunks.back()["finish_reason"], "length");
  }
}

TEST_F(ApiServerTest, MidStreamFailureIsAnErrorEventThenDone) {
  fail_after_ = 2;
  start();
  auto r = call("POST", "/v1/completions", R"({"prompt":"hello","max_tokens":20,"stream":true})");
  ASSERT_EQ(r.status, 200);
  auto frames = sse_payloads(r.body);
  ASSERT_GE(frames.size(), 2u);
  EXPECT_EQ(frames.back(), "[DONE]");
  auto err = nlohmann::json::parse(frames[frames.size() - 2]);
  EXPECT_EQ(err["error"]["code"], 500);
  auto nonstream = call("POST", "/v1/completions", R"({"prompt":"hello","max_tokens":20})");
  EXPECT_EQ(nonstream.status, 500);
  EXPECT_EQ(nlohmann::json::parse(nonstream.body)["error"]["code"], 500);
}

TEST_F(ApiServerTest, ClientDisconnectAbortsTheEngineRequest) {
  step_us_ = 20000;
  start();
  {
    net::io_context io;
    tcp::socket sock(io);
    sock.connect({net::ip::make_address("127.0.0.1"), server_->port()});
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/completions", 11};
    req.body() = R"({"prompt":"hello","max_tokens":200,"stream":true})";
    req.prepare_payload();
    bhttp::write(sock, req);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(engine_->stats().num_running, 1);
  }
  for (int i = 0; i < 100 && engine_->stats().num_running > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(engine_->stats().num_running, 0);
}

TEST_F(ApiServerTest, ErrorsAreOpenAiShaped) {
  start("secret");
  EXPECT_EQ(call("GET", "/v1/models").status, 401);
  EXPECT_EQ(call("GET", "/v1/models", "", "Bearer wrong").status, 401);
  auto models = call("GET", "/v1/models", "", "Bearer secret");
  ASSERT_EQ(models.status, 200);
  auto m = nlohmann::json::parse(models.body);
  EXPECT_EQ(m["data"][0]["id"], "demo");
  EXPECT_EQ(m["data"][0]["max_model_len"], 256);
  EXPECT_TRUE(m["data"][0].contains("root"));
  const std::string auth = "Bearer secret";
  auto bad_json = call("POST", "/v1/chat/completions", "{nope", auth);
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(nlohmann::json::parse(bad_json.body)["error"]["code"], 400);
  auto unknown_model = call("POST", "/v1/completions", R"({"model":"gpt-9","prompt":"x"})", auth);
  EXPECT_EQ(unknown_model.status, 404);
  EXPECT_EQ(nlohmann::json::parse(unknown_model.body)["error"]["message"], "The model `gpt-9` does not exist.");
  auto too_long = call("POST", "/v1/completions", R"({"prompt":"x","max_tokens":1000})", auth);
  EXPECT_EQ(too_long.status, 400);
  EXPECT_NE(too_long.body.find("maximum context length is 256 tokens"), std::string::npos);
  auto big = call("POST", "/v1/completions", R"({"prompt":")" + std::string(70000, 'a') + "\"}", auth);
  EXPECT_EQ(big.status, 413);
  // Open routes stay open.
  EXPECT_EQ(call("GET", "/version").status, 200);
  EXPECT_EQ(call("POST", "/tokenize", R"({"prompt":"hello"})").status, 200);
}

TEST_F(ApiServerTest, TokenizeDetokenizeRoundTrip) {
  start();
  auto t = call("POST", "/tokenize", R"({"prompt":"hello world","return_token_strs":true})");
  ASSERT_EQ(t.status, 200);
  auto j = nlohmann::json::parse(t.body);
  EXPECT_EQ(j["count"], j["tokens"].size());
  EXPECT_EQ(j["max_model_len"], 256);
  EXPECT_EQ(j["token_strs"].size(), j["tokens"].size());
  auto d = call("POST", "/detokenize", nlohmann::json{{"tokens", j["tokens"]}}.dump());
  ASSERT_EQ(d.status, 200);
  EXPECT_EQ(nlohmann::json::parse(d.body)["prompt"], "hello world");
  EXPECT_EQ(call("POST", "/detokenize", R"({"tokens":[99999999]})").status, 400);
  auto chat = call("POST", "/tokenize", R"({"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(chat.status, 200);
  EXPECT_GT(nlohmann::json::parse(chat.body)["count"].get<int>(), 3);
}

TEST_F(ApiServerTest, MetricsCarryVllmNames) {
  start();
  ASSERT_EQ(call("POST", "/v1/completions", R"({"prompt":"hello","max_tokens":4})").status, 200);
  // The HTTP series counts a response when the server's write of it completes, which may
  // come after the client has read it: wait for it a little (failing if it never comes).
  const std::string http_series = "http_requests_total{handler=\"/v1/completions\"";
  auto m = call("GET", "/metrics");
  for (int i = 0; i < 100 && m.body.find(http_series) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = call("GET", "/metrics");
  }
  ASSERT_EQ(m.status, 200);
  for (const char* name : {"vllm:num_requests_running{model_name=\"demo\",engine=\"0\"}",
                           "vllm:generation_tokens_total{model_name=\"demo\",engine=\"0\"} 4.0",
                           "vllm:request_success_total{model_name=\"demo\",engine=\"0\",finished_reason=\"length\"} 1.0",
                           "vllm:time_to_first_token_seconds_count{model_name=\"demo\",engine=\"0\"} 1.0",
                           "vllm:request_queue_time_seconds_count{model_name=\"demo\",engine=\"0\"} 1.0",
                           "vllm:request_prefill_time_seconds_count{model_name=\"demo\",engine=\"0\"} 1.0",
                           "vllm:request_decode_time_seconds_count{model_name=\"demo\",engine=\"0\"} 1.0",
                           "vllm:request_inference_time_seconds_count{model_name=\"demo\",engine=\"0\"} 1.0",
                           "vllm:e2e_request_latency_seconds_bucket", "vllm:kv_cache_usage_perc",
                           "vllm:prefix_cache_queries_total", "http_requests_total{handler=\"/v1/completions\""}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
}

TEST_F(ApiServerTest, OneBadRequestDoesNotAffectAnother) {
  start();
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, bad{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto r = i % 2 ? call("POST", "/v1/completions", R"({"prompt":"hi","max_tokens":3,"temperature":-1})")
                     : call("POST", "/v1/completions", R"({"prompt":"hi","max_tokens":3})");
      (r.status == 200 ? ok : bad)++;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 4);
  EXPECT_EQ(bad.load(), 4);
}

}  // namespace
}  // namespace k2::openai
