#include "enginecore/protocol/engine_config.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace k2 {
namespace {

TEST(EngineConfig, AcceptsAKimiDeploymentCommandLine) {
  // The flags the Kimi-K2 deployment guides pass to `vllm serve`.
  auto r = parse_engine_config({"/models/Kimi-K2-Instruct", "--trust-remote-code", "--tensor-parallel-size", "16",
                                "--enable-auto-tool-choice", "--tool-call-parser", "kimi_k2", "--reasoning-parser",
                                "kimi_k2", "--max-model-len", "131072", "--gpu-memory-utilization=0.85",
                                "--served-model-name", "kimi-k2", "--port", "8001", "-dp", "2", "--max-num-batched-tokens",
                                "8192", "--no-enable-prefix-caching"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model, "/models/Kimi-K2-Instruct");
  EXPECT_EQ(r->tokenizer, r->model);
  EXPECT_TRUE(r->trust_remote_code);
  EXPECT_EQ(r->tensor_parallel_size, 16);
  EXPECT_EQ(r->data_parallel_size, 2);
  EXPECT_EQ(*r->max_model_len, 131072);
  EXPECT_EQ(*r->max_num_batched_tokens, 8192);
  EXPECT_EQ(r->served_model_name, std::vector<std::string>{"kimi-k2"});
  EXPECT_FALSE(r->enable_prefix_caching);
  EXPECT_EQ(r->port, 8001);
}

TEST(EngineConfig, ModelFromFlagAndDefaults) {
  auto r = parse_engine_config({"--model", "m"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->served_model_name, std::vector<std::string>{"m"});
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_TRUE(r->enable_prefix_caching);
}

TEST(EngineConfig, RejectsBadValuesWithTheirName) {
  auto no_model = parse_engine_config({});
  EXPECT_FALSE(no_model.ok());
  auto block = parse_engine_config({"m", "--block-size", "12"});
  ASSERT_FALSE(block.ok());
  EXPECT_NE(block.status().message().find("--block-size"), std::string::npos);
  auto parser = parse_engine_config({"m", "--tool-call-parser", "hermes"});
  EXPECT_FALSE(parser.ok());
  auto typo = parse_engine_config({"m", "--max-num-seq", "4"});
  ASSERT_FALSE(typo.ok());
  EXPECT_NE(typo.status().message().find("did you mean --max-num-seqs"), std::string::npos);
  auto auto_tool = parse_engine_config({"m", "--enable-auto-tool-choice"});
  EXPECT_FALSE(auto_tool.ok());
}

TEST(EngineConfig, ApiKeyFromEnvironment) {
  ::setenv("VLLM_API_KEY", "secret", 1);
  auto r = parse_engine_config({"m"});
  ::unsetenv("VLLM_API_KEY");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->api_key, "secret");
  auto flag = parse_engine_config({"m", "--api-key", "k"});
  EXPECT_EQ(*flag->api_key, "k");
}

TEST(EngineConfig, HelpListsEveryOption) {
  EngineConfig defaults;
  std::string help = engine_config_table().help(defaults, "k2serve serve MODEL [options]");
  for (const auto& def : engine_config_table().options())
    for (const auto& name : def.names) EXPECT_NE(help.find(name), std::string::npos) << name;
}

}  // namespace
}  // namespace k2
