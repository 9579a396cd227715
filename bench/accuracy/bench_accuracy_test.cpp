#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "bench/accuracy/accuracy_dataset.h"
#include "bench/accuracy/accuracy_run.h"
#include "bench/accuracy/accuracy_scoring.h"
#include "bench/accuracy/bench_accuracy.h"
#include "bench/accuracy/http_client.h"

namespace k2::bench {
namespace {

using nlohmann::json;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

TEST(AccuracyDataset, ReadsEveryRecordOfTheDemoEvalSet) {
  auto items = load_accuracy_dataset(std::string(K2_TEST_DATA_DIR) + "/models/demo-trained/eval.jsonl");
  ASSERT_TRUE(items.ok()) << items.status().to_string();
  std::ifstream in(std::string(K2_TEST_DATA_DIR) + "/models/demo-trained/eval.jsonl");
  size_t lines = 0, tool_records = 0;
  for (std::string line; std::getline(in, line);) {
    json j = json::parse(line);
    ++lines;
    tool_records += !j["expected"]["tool_calls"].empty();
  }
  ASSERT_EQ(items->size(), lines);
  size_t tool_items = 0;
  for (const auto& it : *items) {
    tool_items += it.expects_tool_calls();
    EXPECT_FALSE(it.category.empty());
    EXPECT_TRUE(it.expects_tool_calls() || it.answer.has_value()) << it.id;
  }
  EXPECT_EQ(tool_items, tool_records);
}

TEST(AccuracyDataset, AcceptsTheGenericFormsAndRejectsBadLines) {
  auto a = parse_accuracy_item(
      R"({"messages":[{"role":"user","content":"x"}],"expected_tool_calls":[{"name":"add","arguments":"{\"a\": 1}"}]})",
      7);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->id, "line-7");
  EXPECT_EQ(a->tool_calls[0].arguments, json({{"a", 1}}));
  auto b = parse_accuracy_item(R"({"id":"b","messages":[{"role":"user","content":"x"}],"expected_answer":"y"})", 1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->answer, "y");
  for (const char* bad : {"", "[]", "{\"messages\":[]}", "{\"messages\":[{}]}",
                          "{\"messages\":[{}],\"expected_answer\":3}", "{\"messages\":[{}],\"tools\":5,\"expected_answer\":\"\"}",
                          "{\"messages\":[{}],\"expected_tool_calls\":[{\"arguments\":{}}]}"}) {
    EXPECT_FALSE(parse_accuracy_item(bad, 1).ok()) << bad;
  }
}

TEST(AccuracyScoring, ToolCallsAreJsonEqualAndAnswersExact) {
  auto item = *parse_accuracy_item(
      R"({"messages":[{"role":"user","content":"x"}],"expected_tool_calls":[{"name":"add","arguments":{"a":1,"b":2.5}}]})",
      1);
  ModelReply r;
  r.tool_calls = {{"add", R"({"b": 2.5, "a": 1.0})"}};
  EXPECT_TRUE(score_reply(item, r));
  r.tool_calls = {{"subtract", R"({"b": 2.5, "a": 1})"}};
  EXPECT_FALSE(score_reply(item, r));
  r.tool_calls = {{"add", R"({"a": 1, "b": 2})"}};
  EXPECT_FALSE(score_reply(item, r));
  r.tool_calls = {{"add", R"({"a": 1, "b": 2.5})"}, {"add", R"({"a": 1, "b": 2.5})"}};
  EXPECT_FALSE(score_reply(item, r));

  auto answer = *parse_accuracy_item(R"({"messages":[{"role":"user","content":"x"}],"expected_answer":"4."})", 1);
  ModelReply a;
  a.content = "4.";
  EXPECT_TRUE(score_reply(answer, a));
  a.content = "4. ";
  EXPECT_FALSE(score_reply(answer, a));
}

TEST(AccuracyScoring, ParsesRepliesAndRejectsBrokenOnes) {
  auto r = parse_chat_reply(R"({"choices":[{"message":{"content":null,"reasoning_content":"t",
      "tool_calls":[{"id":"x","type":"function","function":{"name":"add","arguments":{"a":1}}}]},
      "finish_reason":"tool_calls"}]})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->content, "");
  EXPECT_EQ(r->reasoning, "t");
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(parse_arguments(r->tool_calls[0].arguments), json({{"a", 1}}));
  for (const char* bad : {"", "{}", R"({"choices":[]})", R"({"choices":[{"message":1}]})",
                          R"({"choices":[{"message":{"tool_calls":[1]}}]})"}) {
    EXPECT_FALSE(parse_chat_reply(bad).ok()) << bad;
  }
}

TEST(HttpClient, ParsesBaseUrls) {
  auto u = parse_base_url("http://127.0.0.1:8000/v1/");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8000");
  EXPECT_EQ(u->path, "/v1");
  auto v = parse_base_url("http://[::1]:9/");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->host, "::1");
  EXPECT_EQ(v->path, "");
  EXPECT_EQ(parse_base_url("http://example.com")->port, "80");
  EXPECT_FALSE(parse_base_url("https://example.com").ok());
  EXPECT_FALSE(parse_base_url("http://host:x/").ok());
}

// A minimal OpenAI-compatible server: a question containing "add" gets an add(1, 2) call
// (with its keys in another order than the dataset's), anything else the reply "Hello!".
// Every other request closes its connection so the client's reconnect path runs too.
class FakeOpenAi {
 public:
  FakeOpenAi() : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeOpenAi() {
    stop_ = true;
    beast::error_code ec;
    tcp::socket poke(io_);
    poke.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/v1"; }
  int chat_requests() const { return chat_requests_; }

 private:
  void serve() {
    while (!stop_) {
      tcp::socket socket(io_);
      beast::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stop_) return;
      std::thread([this, s = std::move(socket)]() mutable { session(std::move(s)); }).detach();
    }
  }

  void session(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      beast::error_code ec;
      http::read(socket, buffer, req, ec);
      if (ec) return;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      if (req.target() == "/v1/models") {
        res.body() = R"({"object":"list","data":[{"id":"fake-model","object":"model"}]})";
      } else {
        res.body() = chat(json::parse(req.body()));
      }
      const bool keep = ++chat_requests_ % 2 == 0;
      res.keep_alive(keep);
      res.prepare_payload();
      http::write(socket, res, ec);
      if (ec || !keep) return;
    }
  }

  static std::string chat(const json& req) {
    if (req.value("model", "") != "fake-model") return R"({"error":"wrong model"})";
    const std::string q = req["messages"].back()["content"];
    json message = {{"role", "assistant"}, {"content", "Hello!"}};
    if (q.find("add") != std::string::npos) {
      message["content"] = nullptr;
      message["tool_calls"] = {{{"id", "functions.add:0"}, {"type", "function"},
                                {"function", {{"name", "add"}, {"arguments", R"({"b": 2, "a": 1})"}}}}};
    }
    return json({{"choices", {{{"index", 0}, {"message", message}, {"finish_reason", "stop"}}}}}).dump();
  }

  net::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> chat_requests_{0};
};

std::string write_dataset() {
  std::string path = ::testing::TempDir() + "/accuracy_dataset.jsonl";
  std::ofstream out(path);
  const std::string user = R"({"role":"user","content":)";
  out << R"({"id":"t1","category":"tools","messages":[)" << user
      << R"("please add"}],"tools":[],"expected_tool_calls":[{"name":"add","arguments":{"a":1,"b":2}}]})" << "\n"
      << R"({"id":"t2","category":"tools","messages":[)" << user
      << R"("please add"}],"expected_tool_calls":[{"name":"multiply","arguments":{"a":1,"b":2}}]})" << "\n\n"
      << R"({"id":"c1","category":"chat","messages":[)" << user << R"("hi"}],"expected_answer":"Hello!"})" << "\n"
      << R"({"id":"c2","category":"chat","messages":[)" << user << R"("hi"}],"expected_answer":"Bye!"})" << "\n"
      << R"({"id":"c3","messages":[)" << user << R"("hi"}],"expected":{"content":"Hello!","tool_calls":[]}})" << "\n";
  return path;
}

TEST(BenchAccuracy, ScoresAgainstALocalServerAndSavesPerItemResults) {
  FakeOpenAi server;
  const std::string dataset = write_dataset();
  const std::string saved = ::testing::TempDir() + "/accuracy_result.json";
  std::remove(saved.c_str());
  int rc = bench_accuracy_command({"--base-url", server.base_url(), "--dataset", dataset, "--concurrency", "3",
                                   "--save-result", saved});
  ASSERT_EQ(rc, 0);
  std::ifstream in(saved);
  json result = json::parse(in);
  EXPECT_EQ(result["model"], "fake-model");
  EXPECT_EQ(result["summary"]["all"]["n"], 5);
  EXPECT_EQ(result["summary"]["all"]["correct"], 3);
  EXPECT_EQ(result["summary"]["tools"]["correct"], 1);
  EXPECT_EQ(result["summary"]["chat"]["correct"], 1);
  ASSERT_EQ(result["items"].size(), 5u);
  EXPECT_EQ(result["items"][0]["id"], "t1");
  EXPECT_TRUE(result["items"][0]["correct"]);
  EXPECT_FALSE(result["items"][1]["correct"]);
  EXPECT_EQ(result["items"][1]["tool_calls"][0]["name"], "add");
  EXPECT_TRUE(result["items"][4]["correct"]);
  EXPECT_GE(server.chat_requests(), 6);  // /models + 5 chats
}

TEST(BenchAccuracy, ReportsUsageErrorsAndUnreachableServers) {
  EXPECT_EQ(bench_accuracy_command({"--no-such-flag"}), 2);
  EXPECT_EQ(bench_accuracy_command({}), 2);
  EXPECT_EQ(bench_accuracy_command({"--dataset", "/nonexistent.jsonl"}), 2);
  EXPECT_EQ(bench_accuracy_command({"--help"}), 0);
  // Port 1 on loopback refuses the connection: every request fails, exit code 1.
  EXPECT_EQ(bench_accuracy_command({"--base-url", "http://127.0.0.1:1/v1", "--model", "m", "--dataset",
                                    write_dataset()}),
            1);
}

}  // namespace
}  // namespace k2::bench
