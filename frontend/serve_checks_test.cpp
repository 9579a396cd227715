#include "frontend/serve_checks.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

Status check(std::vector<std::string> args) {
  args.insert(args.begin(), "/models/tiny");
  K2_ASSIGN_OR_RETURN(EngineConfig cfg, parse_engine_config(args));
  return check_supported(cfg);
}

void expect_refused(const std::vector<std::string>& args, Code code, const std::string& says) {
  const Status s = check(args);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
}

TEST(ServeChecks, HybridNodesServe) {
  for (const char* start : {"0", "2"}) {
    const Status s = check({"-dp", "4", "-dpl", "2", "--data-parallel-start-rank", start, "--enable-expert-parallel"});
    EXPECT_TRUE(s.ok()) << start << ": " << s.to_string();
  }
  EXPECT_TRUE(check({"-dp", "4", "-dpl", "2", "--data-parallel-hybrid-lb"}).ok());
  EXPECT_TRUE(check({"-dp", "4", "-dpl", "1", "--data-parallel-start-rank", "3"}).ok());  // external, rank 3
}

TEST(ServeChecks, HybridRefusals) {
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "2", "--headless", "--data-parallel-hybrid-lb"},
                 Code::kInvalidArgument, "drop --headless");
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "3"}, Code::kInvalidArgument, "start + --data-parallel-size-local");
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "2", "--api-server-count", "2"}, Code::kUnimplemented,
                 "hybrid load balancing");
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "2", "--enable-expert-parallel", "--data-parallel-rpc-port", "65533"},
                 Code::kInvalidArgument, "--data-parallel-rpc-port + 3 <= 65535");
}

TEST(ServeChecks, ExternalAndHeadlessRulesStay) {
  expect_refused({"-dp", "4", "--data-parallel-rank", "1", "--api-server-count", "2"}, Code::kInvalidArgument,
                 "drop --api-server-count");
  expect_refused({"-dp", "4", "-dpl", "2", "-dpr", "3", "--headless"}, Code::kInvalidArgument, "--headless needs");
  EXPECT_TRUE(check({"-dp", "4", "-dpl", "2", "-dpr", "2", "--headless"}).ok());
  // Start rank 0 on a headless node: behind an API-only head, which runs no rank itself.
  EXPECT_TRUE(check({"-dp", "4", "-dpl", "2", "-dpr", "0", "--headless"}).ok());
  EXPECT_TRUE(check({"-dp", "4", "-dpl", "0"}).ok());
  // Several API servers with ranks on other nodes: API server k binds P + 2 + 2k and P + 3 + 2k.
  EXPECT_TRUE(check({"-dp", "2", "-dpl", "1", "--api-server-count", "2"}).ok());
  EXPECT_TRUE(check({"-dp", "2", "-dpl", "0", "--api-server-count", "3"}).ok());
  EXPECT_TRUE(check({"-dp", "2", "-dpl", "1", "--api-server-count", "2", "--data-parallel-rpc-port", "65530"}).ok());
  expect_refused({"-dp", "2", "-dpl", "1", "--api-server-count", "3", "--data-parallel-rpc-port", "65530"},
                 Code::kInvalidArgument, "room below 65536");
  expect_refused({"-dp", "4", "-dpl", "0", "--enable-expert-parallel"}, Code::kUnimplemented, "API-only head");
}

}  // namespace
}  // namespace k2
