#include "enginecore/protocol/sglang_flags.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace k2 {
namespace {

std::vector<std::string> with_model(std::vector<std::string> args) {
  args.insert(args.begin(), "/models/Kimi-K2-Instruct");
  return args;
}

Result<EngineConfig> parse(std::vector<std::string> args) { return parse_engine_config(with_model(std::move(args))); }

// The fields the rest of k2serve reads to build the deployment.
struct Parallel {
  int64_t tp = 0, dp = 0;
  std::optional<int64_t> local, start;
  bool ep = false, headless = false;
  std::string address;
  int64_t port = 0;
  bool operator==(const Parallel&) const = default;
};

Parallel parallel_of(const EngineConfig& c) {
  return Parallel{c.tensor_parallel_size, c.data_parallel_size, c.data_parallel_size_local, c.data_parallel_start_rank,
                  c.enable_expert_parallel, c.headless, c.data_parallel_address, c.data_parallel_rpc_port};
}

void expect_error(const std::vector<std::string>& args, const std::string& needle) {
  auto r = parse(args);
  ASSERT_FALSE(r.ok()) << "accepted: " << testing::PrintToString(args);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

// MoonshotAI/Kimi-K2 docs/deploy_guidance.md and SGLang's DeepSeek-V3 multi-node example
// (benchmark/deepseek_v3/README.md): TP16 over two 8-GPU nodes is one engine whose
// tensor-parallel group spans the nodes (tp_nodes.h), exactly as vLLM's multi-node TP flags
// (--nnodes / --node-rank / --master-addr / --master-port, --headless on node 1) say it.
TEST(SglangFlags, DocumentedTwoNodeTp16IsTensorParallelAcrossNodes) {
  for (const char* rank : {"0", "1"}) {
    auto r = parse({"--tp", "16", "--dist-init-addr", "10.0.0.1:50000", "--nnodes", "2", "--node-rank", rank,
                    "--trust-remote-code", "--tool-call-parser", "kimi_k2"});
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    std::vector<std::string> vllm{"--tensor-parallel-size", "16", "--nnodes", "2", "--node-rank", rank,
                                  "--master-addr", "10.0.0.1", "--master-port", "50000"};
    if (std::string(rank) == "1") vllm.push_back("--headless");
    auto v = parse(vllm);
    ASSERT_TRUE(v.ok()) << v.status().to_string();
    for (const EngineConfig* c : {&*r, &*v}) {
      EXPECT_EQ(c->tensor_parallel_size, 16);
      EXPECT_EQ(c->data_parallel_size, 1);
      EXPECT_EQ(c->nnodes, std::optional<int64_t>(2));
      EXPECT_EQ(c->node_rank, std::optional<int64_t>(std::stoll(rank)));
      EXPECT_EQ(c->master_addr, "10.0.0.1");
      EXPECT_EQ(c->master_port, 50000);
      EXPECT_EQ(c->headless, std::string(rank) == "1");
      EXPECT_FALSE(c->data_parallel_start_rank.has_value());
    }
  }
  auto ep = parse({"--tensor-parallel-size", "2", "--nnodes", "2", "--enable-expert-parallel"});
  ASSERT_TRUE(ep.ok()) << ep.status().to_string();
  EXPECT_TRUE(ep->enable_expert_parallel);
  expect_error({"--tp", "16", "--dist-init-addr", "10.0.0.1:50000", "--nnodes", "3", "--node-rank", "0"},
               "does not divide over --nnodes 3");
  expect_error({"--tensor-parallel-size", "2", "--nnodes", "2", "--node-rank", "0", "--headless"},
               "--headless on contradicts --nnodes 2 --node-rank 0");
  expect_error({"--tp", "2", "--dist-init-addr", "10.0.0.1:50000", "--nnodes", "2", "--master-port", "7"},
               "--master-port 7 contradicts --dist-init-addr");
}

// SGLang's DP-attention + EP launch on two 8-GPU nodes maps onto exactly the fields of
// Kimi-K2's documented vLLM DP+EP recipe (a master and a --headless node from rank 8).
TEST(SglangFlags, TwoNodeDpAttentionWithEpMatchesTheVllmRecipe) {
  const std::vector<std::string> sglang{"--tp-size", "16", "--dp-size", "16", "--enable-dp-attention", "--ep-size",
                                        "16", "--dist-init-addr", "10.0.0.1:29550", "--nnodes", "2"};
  const std::vector<std::string> vllm{"--data-parallel-size", "16", "--data-parallel-size-local", "8",
                                      "--data-parallel-address", "10.0.0.1", "--data-parallel-rpc-port", "29550",
                                      "--enable-expert-parallel"};
  auto head = parse([&] { auto a = sglang; a.insert(a.end(), {"--node-rank", "0"}); return a; }());
  auto head_vllm = parse(vllm);
  ASSERT_TRUE(head.ok()) << head.status().to_string();
  ASSERT_TRUE(head_vllm.ok()) << head_vllm.status().to_string();
  EXPECT_EQ(parallel_of(*head), (Parallel{1, 16, 8, std::nullopt, true, false, "10.0.0.1", 29550}));
  EXPECT_EQ(parallel_of(*head), parallel_of(*head_vllm));

  auto node1 = parse([&] { auto a = sglang; a.insert(a.end(), {"--node-rank", "1"}); return a; }());
  auto node1_vllm = parse([&] {
    auto a = vllm;
    a.insert(a.end(), {"--headless", "--data-parallel-start-rank", "8"});
    return a;
  }());
  ASSERT_TRUE(node1.ok()) << node1.status().to_string();
  ASSERT_TRUE(node1_vllm.ok());
  EXPECT_EQ(parallel_of(*node1), (Parallel{1, 16, 8, 8, true, true, "10.0.0.1", 29550}));
  EXPECT_EQ(parallel_of(*node1), parallel_of(*node1_vllm));
  // EP with several engines stays set, so serve refuses it exactly as it refuses the vLLM
  // recipe (check_supported in frontend/serve_command.cpp) instead of running something else.
  EXPECT_TRUE(node1->enable_expert_parallel && node1->data_parallel_size > 1);
}

// The parallel part of Kimi-K2's documented SGLang prefill command (4 nodes, DP attention,
// experts through DeepEP, which implies EP; without --ep-size the experts are replicated).
TEST(SglangFlags, FourNodeDpAttentionPlacesEightEnginesPerNode) {
  auto r = parse({"--dist-init-addr", "prefill0:5757", "--tp-size", "32", "--dp-size", "32", "--enable-dp-attention",
                  "--nnodes", "4", "--node-rank", "3", "--tool-call-parser", "kimi_k2"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(parallel_of(*r), (Parallel{1, 32, 8, 24, false, true, "prefill0", 5757}));
}

TEST(SglangFlags, SingleNodeDpAttentionAndReplicas) {
  // DeepSeek-V3.2's model card: `--tp 8 --dp 8 --enable-dp-attention` on one node.
  auto attn = parse({"--tp", "8", "--dp", "8", "--enable-dp-attention"});
  ASSERT_TRUE(attn.ok()) << attn.status().to_string();
  EXPECT_EQ(parallel_of(*attn), (Parallel{1, 8, std::nullopt, std::nullopt, false, false, "127.0.0.1", 29550}));
  auto split = parse({"--tp", "8", "--dp", "2", "--enable-dp-attention", "--ep", "8"});
  ASSERT_TRUE(split.ok()) << split.status().to_string();
  EXPECT_EQ(split->tensor_parallel_size, 4);
  EXPECT_EQ(split->data_parallel_size, 2);
  EXPECT_TRUE(split->enable_expert_parallel);
  // Without DP attention --dp is full replicas of --tp workers (vLLM's DP without EP).
  auto replicas = parse({"--tp", "2", "--dp", "2"});
  ASSERT_TRUE(replicas.ok());
  EXPECT_EQ(parallel_of(*replicas), (Parallel{2, 2, std::nullopt, std::nullopt, false, false, "127.0.0.1", 29550}));
  auto ep = parse({"--tp", "4", "--ep", "4"});
  ASSERT_TRUE(ep.ok());
  EXPECT_EQ(ep->tensor_parallel_size, 4);
  EXPECT_TRUE(ep->enable_expert_parallel);
  // Replicas over nodes: whole engines per node.
  auto nodes = parse({"--tp", "2", "--dp", "4", "--nnodes", "2", "--node-rank", "1", "--dist-init-addr", "[fd00::1]:6000"});
  ASSERT_TRUE(nodes.ok()) << nodes.status().to_string();
  EXPECT_EQ(parallel_of(*nodes), (Parallel{2, 4, 2, 2, false, true, "fd00::1", 6000}));
}

TEST(SglangFlags, VllmTwinsMustAgree) {
  expect_error({"--tp", "4", "--tensor-parallel-size", "2"}, "--tensor-parallel-size 2 contradicts --tp-size 4");
  expect_error({"--tp", "16", "--dp", "2", "--enable-dp-attention", "--tensor-parallel-size", "16"},
               "which means --tensor-parallel-size 8");
  expect_error({"--dp", "2", "--data-parallel-size", "4"}, "--data-parallel-size 4 contradicts");
  expect_error({"--dist-init-addr", "a:5000", "--data-parallel-address", "b"}, "--data-parallel-address b contradicts");
  expect_error({"--dist-init-addr", "a:5000", "--data-parallel-rpc-port", "6000"}, "--data-parallel-rpc-port 6000");
  expect_error({"--tp", "4", "--ep", "4", "--no-enable-expert-parallel"}, "--enable-expert-parallel off contradicts");
  expect_error({"--tp", "4", "--dp", "4", "--enable-dp-attention", "--nnodes", "2", "--node-rank", "0",
                "--dist-init-addr", "a:1", "--headless"},
               "--headless on contradicts");
  expect_error({"--tp", "4", "--dp", "4", "--enable-dp-attention", "--nnodes", "2", "--node-rank", "1",
                "--dist-init-addr", "a:1", "--data-parallel-start-rank", "1"},
               "--data-parallel-start-rank 1 contradicts");
  expect_error({"--dp", "8", "--enable-dp-attention", "--tensor-parallel-size", "8"}, "needs --tp-size");
  // Saying the same thing twice is fine.
  auto same = parse({"--tp", "16", "--dp", "2", "--enable-dp-attention", "--tensor-parallel-size", "8", "-dp", "2"});
  ASSERT_TRUE(same.ok()) << same.status().to_string();
  EXPECT_EQ(same->tensor_parallel_size, 8);
  auto same_tp = parse({"--tp", "4", "-tp", "4"});
  EXPECT_TRUE(same_tp.ok());
}

TEST(SglangFlags, TwinsGivenInAConfigFileCountAsGiven) {
  const std::string path = ::testing::TempDir() + "/k2_sglang_twins.json";
  std::ofstream(path) << R"({"tensor_parallel_size": 2})";
  expect_error({"--config", path, "--tp", "4"}, "--tensor-parallel-size 2 contradicts");
  std::ofstream(path) << R"({"tp-size": 4, "enable-dp-attention": true, "dp-size": 2})";
  auto r = parse({"--config", path});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->tensor_parallel_size, 2);
  EXPECT_EQ(r->data_parallel_size, 2);
  std::remove(path.c_str());
}

TEST(SglangFlags, SizesMustDivideAndRanksFit) {
  expect_error({"--tp", "16", "--dp", "3", "--enable-dp-attention"}, "--dp-size 3 must divide --tp-size 16");
  expect_error({"--tp", "8", "--dp", "8", "--enable-dp-attention", "--nnodes", "3", "--node-rank", "0",
                "--dist-init-addr", "a:1"},
               "8 engines do not divide over --nnodes 3");
  expect_error({"--tp", "8", "--dp", "8", "--enable-dp-attention", "--nnodes", "2", "--node-rank", "2",
                "--dist-init-addr", "a:1"},
               "--node-rank 2 must be in [0, --nnodes 2)");
  expect_error({"--node-rank", "-1"}, "--node-rank -1 must be in");
  expect_error({"--node-rank", "1"}, "--node-rank 1 must be in [0, --nnodes 1)");
  expect_error({"--tp", "0"}, "must be >= 1");
  expect_error({"--tp", "8", "--dp", "2", "--enable-dp-attention", "--nnodes", "4", "--node-rank", "0",
                "--dist-init-addr", "a:1"},
               "tensor parallelism across nodes");
  expect_error({"--tp", "8", "--dp", "8", "--enable-dp-attention", "--nnodes", "2"}, "needs --dist-init-addr");
}

TEST(SglangFlags, ExpertParallelOnlyOverEveryRank) {
  auto partial = parse({"--tp", "8", "--ep", "4"});
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.status().code(), Code::kUnimplemented);
  EXPECT_NE(partial.status().message().find("must be 1 or --tp-size (8)"), std::string::npos);
  expect_error({"--tp", "8", "--dp", "2", "--enable-dp-attention", "--ep", "2"}, "must be 1 or --tp-size (8)");
  expect_error({"--tp", "8", "--dp", "2", "--ep", "8"}, "add --enable-dp-attention or drop --ep-size");
}

TEST(SglangFlags, DistInitAddr) {
  auto v4 = parse_host_port("10.0.0.1:5000");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "10.0.0.1");
  EXPECT_EQ(v4->port, 5000);
  auto v6 = parse_host_port("[fe80::1%eth0]:29500");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fe80::1%eth0");
  EXPECT_EQ(v6->port, 29500);
  auto name = parse_host_port("node-0.cluster.local:1");
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(name->host, "node-0.cluster.local");
  for (const char* bad : {"fe80::1:5000", "10.0.0.1", "10.0.0.1:", ":5000", "h:0", "h:65536", "h:12x", "[::1]5000",
                          "[::1", "[]:80", ""}) {
    EXPECT_FALSE(parse_host_port(bad).ok()) << bad;
  }
  expect_error({"--dist-init-addr", "fe80::1:5000"}, "in brackets, [fe80::1]:5000");
}

TEST(SglangFlags, ClearedAfterMappingAndAbsentMeansUnchanged) {
  auto r = parse({"--tp", "8", "--dp", "8", "--enable-dp-attention", "--ep", "8", "--nnodes", "2", "--node-rank", "1",
                  "--dist-init-addr", "h:7000"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(has_sglang_flags(*r));
  const auto json = engine_config_table().to_json(*r);
  EXPECT_TRUE(json.at("tp-size").is_null());
  EXPECT_EQ(json.at("enable-dp-attention"), false);
  EXPECT_EQ(json.at("data-parallel-start-rank"), 4);
  // No SGLang flag: the vLLM flags are untouched.
  auto plain = parse({"-tp", "2", "-dp", "2", "--data-parallel-start-rank", "0"});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->tensor_parallel_size, 2);
  EXPECT_EQ(plain->data_parallel_start_rank, 0);
}

TEST(SglangFlags, HelpShowsThemInTheirOwnSection) {
  const std::string help = engine_config_table().help(EngineConfig{}, "k2serve serve MODEL [options]");
  const size_t section = help.find("\nSGLang-style launch");
  ASSERT_NE(section, std::string::npos);
  for (const char* flag : {"--nnodes", "--node-rank", "--dist-init-addr", "--tp-size, --tp", "--dp-size, --dp",
                           "--ep-size, --ep", "--enable-dp-attention"}) {
    const size_t at = help.find(flag, section);
    EXPECT_NE(at, std::string::npos) << flag;
  }
  EXPECT_LT(help.find("--tensor-parallel-size"), section);
}

}  // namespace
}  // namespace k2
