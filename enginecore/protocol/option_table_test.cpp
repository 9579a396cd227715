#include "enginecore/protocol/option_table.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace k2 {
namespace {

struct Demo {
  int64_t port = 8000;
  double utilization = 0.9;
  bool prefix_caching = true;
  std::string host = "127.0.0.1";
  std::optional<int64_t> max_model_len;
  std::vector<std::string> names;
};

OptionTable<Demo> demo_table() {
  OptionTable<Demo> t;
  t.add("--port", &Demo::port, "port to listen on", "server")
      .add("--host", &Demo::host, "address to bind", "server")
      .add("--gpu-memory-utilization", &Demo::utilization, "fraction of memory")
      .add("--enable-prefix-caching", &Demo::prefix_caching, "prefix caching")
      .add("--max-model-len", &Demo::max_model_len, "context length")
      .add("--served-model-name", &Demo::names, "names");
  return t;
}

TEST(OptionTable, ParsesEveryKind) {
  Demo d;
  std::vector<std::string> pos;
  auto t = demo_table();
  ASSERT_TRUE(t.parse({"model", "--port", "9000", "--gpu-memory-utilization=0.5", "--no-enable-prefix-caching",
                       "--max-model-len", "4096", "--served-model-name", "a", "b", "--host", "::1"},
                      d, &pos).ok());
  EXPECT_EQ(pos, std::vector<std::string>{"model"});
  EXPECT_EQ(d.port, 9000);
  EXPECT_DOUBLE_EQ(d.utilization, 0.5);
  EXPECT_FALSE(d.prefix_caching);
  ASSERT_TRUE(d.max_model_len.has_value());
  EXPECT_EQ(*d.max_model_len, 4096);
  EXPECT_EQ(d.names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(d.host, "::1");
}

TEST(OptionTable, UnknownOptionSuggestsClosest) {
  Demo d;
  std::vector<std::string> pos;
  Status s = demo_table().parse({"--prot", "1"}, d, &pos);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--prot"), std::string::npos);
  EXPECT_NE(s.message().find("did you mean --port"), std::string::npos);
}

TEST(OptionTable, BadValuesAreErrors) {
  Demo d;
  std::vector<std::string> pos;
  auto t = demo_table();
  EXPECT_FALSE(t.parse({"--port", "x"}, d, &pos).ok());
  EXPECT_FALSE(t.parse({"--port"}, d, &pos).ok());
  EXPECT_FALSE(t.parse({"--enable-prefix-caching=maybe"}, d, &pos).ok());
  EXPECT_FALSE(t.parse({"stray"}, d, nullptr).ok());
}

TEST(OptionTable, JsonConfigAppliesAndFlagsWin) {
  std::string path = ::testing::TempDir() + "/k2_opts.json";
  std::ofstream(path) << R"({"port": 7000, "max_model_len": 128, "host": "0.0.0.0", "served-model-name": ["x"]})";
  Demo d;
  std::vector<std::string> pos;
  ASSERT_TRUE(demo_table().parse({"--port", "7100", "--config", path}, d, &pos).ok());
  EXPECT_EQ(d.port, 7100);
  EXPECT_EQ(*d.max_model_len, 128);
  EXPECT_EQ(d.host, "0.0.0.0");
  EXPECT_EQ(d.names, std::vector<std::string>{"x"});
  std::ofstream(path) << R"({"nope": 1})";
  Demo e;
  Status s = demo_table().parse({"--config", path}, e, &pos);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("nope"), std::string::npos);
  std::remove(path.c_str());
}

TEST(OptionTable, YamlConfigAsVllmTakesIt) {
  std::string path = ::testing::TempDir() + "/k2_opts.yaml";
  std::ofstream(path) << "# vLLM-style config\nport: 7200\nenable-prefix-caching: false\n"
                         "gpu_memory_utilization: 0.75\nserved-model-name:\n  - a\n  - b\n";
  Demo d;
  std::vector<std::string> pos;
  Status s = demo_table().parse({"--config", path}, d, &pos);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(d.port, 7200);
  EXPECT_FALSE(d.prefix_caching);
  EXPECT_DOUBLE_EQ(d.utilization, 0.75);
  EXPECT_EQ(d.names, (std::vector<std::string>{"a", "b"}));
  std::ofstream(path) << "port: [unclosed\n";
  Demo e;
  EXPECT_FALSE(demo_table().parse({"--config", path}, e, &pos).ok());
  std::remove(path.c_str());
}

TEST(OptionTable, ReportsWhichOptionsWereGivenByCanonicalName) {
  const std::string path = ::testing::TempDir() + "/k2_option_given.json";
  std::ofstream(path) << R"({"host": "::1", "max_model_len": null})";
  Demo d;
  std::vector<std::string> pos;
  std::set<std::string> given;
  ASSERT_TRUE(demo_table().parse({"--config", path, "--no-enable-prefix-caching", "--port=9000"}, d, &pos, &given).ok());
  // A value equal to the default still counts as given; a null in the file and an option never
  // named do not.
  EXPECT_EQ(given, (std::set<std::string>{"--host", "--enable-prefix-caching", "--port"}));
  std::remove(path.c_str());
}

TEST(OptionTable, HelpListsEveryOptionWithDefaults) {
  Demo d;
  std::string h = demo_table().help(d, "k2serve demo [options]");
  for (const char* name : {"--port", "--host", "--gpu-memory-utilization", "--enable-prefix-caching",
                           "--no-enable-prefix-caching", "--max-model-len", "--served-model-name", "--config"})
    EXPECT_NE(h.find(name), std::string::npos) << name;
  EXPECT_NE(h.find("(default: 8000)"), std::string::npos);
  EXPECT_NE(h.find("server:"), std::string::npos);
}

}  // namespace
}  // namespace k2
