// k2_openai_test_server: the real OpenAI layer, tokenizer, chat template and parsers with
// FakeEngineClient instead of an engine, for end-to-end tests with real clients.
//
//   k2_openai_test_server --model DIR [--port N] [--api-key K] [--max-model-len N]
//                         [--step-us N] [--served-model-name NAME]
//
// Prints "LISTENING <port>" on stdout once it accepts connections. Scripted outputs are
// chosen by markers in the last user message:
//   SCRIPT_TOOL   -> two parallel kimi_k2 tool calls (get_weather Paris / Oslo)
//   SCRIPT_THINK  -> <think>reasoning</think> then an answer
//   SCRIPT_TEXT   -> "Hello world. STOP here. The end."
//   SCRIPT_FAIL   -> a few tokens, then an engine failure
// SIGTERM/SIGINT drains for --shutdown-timeout seconds and exits 0.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "frontend/openai/api_server.h"
#include "frontend/openai/fake_engine_client.h"

namespace {

volatile std::sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

bool contains_ids(const std::vector<int32_t>& hay, const std::vector<int32_t>& needle) {
  if (needle.empty() || needle.size() > hay.size()) return false;
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace k2;
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string model, api_key, served;
  int port = 0;
  int64_t max_model_len = 0, step_us = 2000, shutdown_timeout = 5;
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const std::string& k = args[i];
    const std::string& v = args[i + 1];
    if (k == "--model") model = v;
    else if (k == "--port") port = std::stoi(v);
    else if (k == "--api-key") api_key = v;
    else if (k == "--max-model-len") max_model_len = std::stoll(v);
    else if (k == "--step-us") step_us = std::stoll(v);
    else if (k == "--served-model-name") served = v;
    else if (k == "--shutdown-timeout") shutdown_timeout = std::stoll(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (model.empty()) {
    std::cerr << "usage: k2_openai_test_server --model DIR [...]\n";
    return 2;
  }
  auto tok = Tokenizer::load(model);
  if (!tok.ok()) {
    std::cerr << tok.status().to_string() << "\n";
    return 1;
  }
  std::shared_ptr<const Tokenizer> tokenizer = *tok;

  EngineConfig flags;
  flags.model = model;
  if (!served.empty()) flags.served_model_name = {served};
  if (max_model_len > 0) flags.max_model_len = max_model_len;
  if (!api_key.empty()) flags.api_key = api_key;
  flags.enable_auto_tool_choice = true;
  flags.tool_call_parser = "kimi_k2";
  flags.reasoning_parser = "kimi_k2";
  flags.port = port;
  auto cfg = openai::make_server_config(flags);
  if (!cfg.ok()) {
    std::cerr << cfg.status().to_string() << "\n";
    return 1;
  }

  openai::FakeEngineOptions fo;
  fo.step_interval = std::chrono::microseconds(step_us);
  fo.eos_token_ids = tokenizer->stop_token_ids();
  fo.token_min = 256;  // merged tokens: readable text rather than lone bytes
  fo.token_max = tokenizer->num_base_tokens();
  fo.max_model_len = cfg->max_model_len;
  auto marker = [&](const char* m) { return tokenizer->encode(m, false); };
  const auto tool_m = marker("SCRIPT_TOOL"), think_m = marker("SCRIPT_THINK"), text_m = marker("SCRIPT_TEXT"),
             fail_m = marker("SCRIPT_FAIL");
  fo.script = [=](const openai::GenerateRequest& r) -> std::optional<openai::FakeScript> {
    const auto& p = r.prompt_ids;
    openai::FakeScript s;
    if (contains_ids(p, tool_m)) {
      s.tokens = tokenizer->encode(
          "Let me check.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
          "<|tool_call_argument_begin|>{\"city\": \"Paris\"}<|tool_call_end|><|tool_call_begin|>functions.get_weather:1"
          "<|tool_call_argument_begin|>{\"city\": \"Oslo\"}<|tool_call_end|><|tool_calls_section_end|>",
          true);
    } else if (contains_ids(p, think_m)) {
      s.tokens = tokenizer->encode("<think>The user wants a greeting.</think>Hello there!", true);
    } else if (contains_ids(p, text_m)) {
      s.tokens = tokenizer->encode("Hello world. STOP here. The end.", true);
    } else if (contains_ids(p, fail_m)) {
      s.tokens = tokenizer->encode("This will break", true);
      s.fail_after = 2;
    } else {
      return std::nullopt;
    }
    return s;
  };
  auto engine = std::make_shared<openai::FakeEngineClient>(fo);

  http::ServerOptions ho = openai::make_http_options(flags);
  auto server = openai::OpenAiServer::create(*cfg, ho, tokenizer, engine);
  if (!server.ok()) {
    std::cerr << server.status().to_string() << "\n";
    return 1;
  }
  if (Status st = (*server)->start(); !st.ok()) {
    std::cerr << st.to_string() << "\n";
    return 1;
  }
  (*server)->set_ready(true);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::cout << "LISTENING " << (*server)->port() << std::endl;
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  spdlog::info("signal {}: draining for up to {} s", static_cast<int>(g_signal), shutdown_timeout);
  (*server)->drain(std::chrono::seconds(shutdown_timeout));
  return 0;
}
