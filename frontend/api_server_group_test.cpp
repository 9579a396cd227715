#include "frontend/api_server_group.h"

#include <gtest/gtest.h>

namespace k2 {
namespace {

TEST(TakeInternalFlags, UserCommandLineIsLeftAlone) {
  std::vector<std::string> args{"/models/tiny", "--port", "8000", "--api-server-count", "2"};
  const auto before = args;
  auto flags = take_internal_flags(args);
  ASSERT_TRUE(flags.ok()) << flags.status().to_string();
  EXPECT_EQ(flags->index, 0);
  EXPECT_EQ(args, before);
}

TEST(TakeInternalFlags, TakesAllOfThemOut) {
  std::vector<std::string> args{"/models/tiny",
                                "--internal-api-server-index", "3",
                                "--port", "8000",
                                "--internal-api-server-input", "ipc:///tmp/x/api3-input",
                                "--internal-api-server-output", "ipc:///tmp/x/api3-output",
                                "--internal-engine-pids", "101,202",
                                "--internal-parent-pid", "77"};
  auto flags = take_internal_flags(args);
  ASSERT_TRUE(flags.ok()) << flags.status().to_string();
  EXPECT_EQ(flags->index, 3);
  EXPECT_EQ(flags->input_address, "ipc:///tmp/x/api3-input");
  EXPECT_EQ(flags->output_address, "ipc:///tmp/x/api3-output");
  EXPECT_EQ(flags->engine_pids, (std::vector<pid_t>{101, 202}));
  EXPECT_EQ(flags->parent_pid, 77);
  EXPECT_EQ(args, (std::vector<std::string>{"/models/tiny", "--port", "8000"}));
}

TEST(TakeInternalFlags, RefusesBadOnes) {
  const std::vector<std::vector<std::string>> bad = {
      {"--internal-api-server-index"},                                   // no value
      {"--internal-what", "1"},                                          // unknown
      {"--internal-api-server-index", "x"},                              // not a number
      {"--internal-api-server-index", "1"},                              // the rest missing
      {"--internal-api-server-index", "1", "--internal-api-server-input", "a", "--internal-api-server-output", "b",
       "--internal-engine-pids", "1,,2", "--internal-parent-pid", "5"},  // empty pid
      {"--internal-api-server-index", "1", "--internal-api-server-input", "a", "--internal-api-server-output", "b",
       "--internal-engine-pids", "-4", "--internal-parent-pid", "5"},    // negative pid
  };
  for (auto args : bad) {
    const auto copy = args;
    EXPECT_FALSE(take_internal_flags(args).ok()) << copy[0] << " ... (" << copy.size() << " args)";
  }
}

TEST(ApiServerAddresses, OnePairPerExtraApiServer) {
  auto a = ApiServerAddresses::create(3);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_EQ(a->inputs().size(), 2u);
  ASSERT_EQ(a->outputs().size(), 2u);
  EXPECT_NE(a->inputs()[0], a->inputs()[1]);
  EXPECT_NE(a->inputs()[0], a->outputs()[0]);
  EXPECT_EQ(a->inputs()[0].rfind("ipc://", 0), 0u);
}

}  // namespace
}  // namespace k2
