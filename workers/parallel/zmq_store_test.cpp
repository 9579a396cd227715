#include <gloo/common/error.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "workers/parallel/store_wire.h"
#include "workers/parallel/zmq_store.h"

namespace k2 {
namespace {

using namespace std::chrono_literals;
using store_wire::Message;
using store_wire::Op;

std::vector<char> bytes(std::string_view s) { return {s.begin(), s.end()}; }

Result<std::unique_ptr<ZmqStore>> serve(std::chrono::milliseconds timeout = 2000ms) {
  return ZmqStore::create({.endpoint = "tcp://127.0.0.1:*", .serve = true, .timeout = timeout});
}

TEST(StoreWireTest, RoundTripsEveryOp) {
  const std::vector<Message> messages = {
      {Op::kSet, 1, {"key", std::string("\0value\xff", 7)}},
      {Op::kGet, 2, {"key"}},
      {Op::kCheck, 3, {"a", "b", "c"}},
      {Op::kOk, 4, {}},
      {Op::kOk, 0xffffffffffffffffULL, {"value"}},
      {Op::kMissing, 5, {}},
      {Op::kRefused, 6, {"why"}},
  };
  for (const Message& m : messages) {
    Result<Message> back = store_wire::decode(store_wire::encode(m));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, m);
  }
}

TEST(StoreWireTest, RejectsEveryTruncationAndTrailingBytes) {
  const std::string full = store_wire::encode({Op::kSet, 9, {"key", "value"}});
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(store_wire::decode(std::string_view(full).substr(0, n)).status().code(), Code::kCorrupt) << n;
  }
  EXPECT_EQ(store_wire::decode(full + "x").status().code(), Code::kCorrupt);
}

TEST(StoreWireTest, RejectsBadHeadersArityAndLengths) {
  std::string m = store_wire::encode({Op::kGet, 1, {"key"}});
  std::string bad_magic = m;
  bad_magic[0] = 'X';
  EXPECT_FALSE(store_wire::decode(bad_magic).ok());
  std::string bad_op = m;
  bad_op[4] = 0x7f;
  EXPECT_FALSE(store_wire::decode(bad_op).ok());
  // A get with two fields, a set with one: the server indexes fields by op, so both must fail.
  EXPECT_FALSE(store_wire::decode(store_wire::encode({Op::kGet, 1, {"a", "b"}})).ok());
  EXPECT_FALSE(store_wire::decode(store_wire::encode({Op::kSet, 1, {"a"}})).ok());
  EXPECT_FALSE(store_wire::decode(store_wire::encode({Op::kCheck, 1, {}})).ok());
  // A field length far past the end (0xffffffff), and a field count over the limit.
  std::string huge_len = m;
  for (int i = 0; i < 4; ++i) huge_len[17 + i] = static_cast<char>(0xff);
  EXPECT_FALSE(store_wire::decode(huge_len).ok());
  std::string many = m;
  many[13] = static_cast<char>(0xff);
  many[14] = static_cast<char>(0xff);
  EXPECT_FALSE(store_wire::decode(many).ok());
  EXPECT_FALSE(store_wire::decode(std::string(store_wire::kMaxMessageBytes + 1, 'K')).ok());
}

TEST(StoreTableTest, SetGetCheckAndLimits) {
  store_wire::StoreTable table;
  EXPECT_EQ(table.apply({Op::kGet, 1, {"k"}}).op, Op::kMissing);
  EXPECT_EQ(table.apply({Op::kSet, 2, {"k", "v"}}).op, Op::kOk);
  const Message got = table.apply({Op::kGet, 3, {"k"}});
  EXPECT_EQ(got.op, Op::kOk);
  EXPECT_EQ(got.id, 3u);
  EXPECT_EQ(got.fields, std::vector<std::string>{"v"});
  EXPECT_EQ(table.apply({Op::kCheck, 4, {"k", "other"}}).op, Op::kMissing);
  EXPECT_EQ(table.apply({Op::kCheck, 5, {"k"}}).op, Op::kOk);
  EXPECT_EQ(table.apply({Op::kSet, 6, {"", "v"}}).op, Op::kRefused);
  EXPECT_EQ(table.apply({Op::kSet, 7, {std::string(store_wire::kMaxKeyBytes + 1, 'k'), "v"}}).op, Op::kRefused);
  EXPECT_EQ(table.apply({Op::kOk, 8, {}}).op, Op::kRefused);  // a reply is not a request
  for (size_t i = table.size(); i < store_wire::StoreTable::kMaxKeys; ++i) {
    ASSERT_EQ(table.apply({Op::kSet, 9, {"key" + std::to_string(i), ""}}).op, Op::kOk);
  }
  EXPECT_EQ(table.apply({Op::kSet, 10, {"one-too-many", ""}}).op, Op::kRefused);
  EXPECT_EQ(table.apply({Op::kSet, 11, {"k", "overwrite"}}).op, Op::kOk);  // an existing key still may
}

TEST(ZmqStoreTest, ClientsSeeEachOthersKeys) {
  auto server = serve();
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  EXPECT_NE((*server)->endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  auto client = ZmqStore::create({.endpoint = (*server)->endpoint(), .timeout = 2000ms});
  ASSERT_TRUE(client.ok()) << client.status().to_string();
  ASSERT_TRUE((*client)->set_value("a", bytes("from client")).ok());
  Result<std::vector<char>> a = (*server)->get_value("a", 1000ms);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(*a, bytes("from client"));
  // A waiter is released when another rank sets the key later.
  std::thread later([&] {
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE((*server)->set_value("b", bytes("late")).ok());
  });
  EXPECT_TRUE((*client)->wait_keys({"a", "b"}, 2000ms).ok());
  later.join();
  EXPECT_EQ((*client)->get("b"), bytes("late"));
}

TEST(ZmqStoreTest, MissingKeysAndAGoneServerTimeOut) {
  auto server = serve(300ms);
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ((*server)->wait_keys({"never"}, 200ms).code(), Code::kUnavailable);
  EXPECT_EQ((*server)->get_value("never", 200ms).status().code(), Code::kUnavailable);
  EXPECT_THROW((*server)->wait({"never"}, 200ms), gloo::IoException);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  // Nobody serves this endpoint any more: requests fail within the timeout, never hang.
  const std::string endpoint = (*server)->endpoint();
  server->reset();
  auto orphan = ZmqStore::create({.endpoint = endpoint, .timeout = 200ms});
  ASSERT_TRUE(orphan.ok());
  start = std::chrono::steady_clock::now();
  EXPECT_EQ((*orphan)->set_value("k", bytes("v")).code(), Code::kUnavailable);
  EXPECT_THROW((*orphan)->set("k", bytes("v")), gloo::IoException);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(ZmqStoreTest, ServerDropsGarbageAndKeepsServing) {
  auto server = serve();
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  zmq::context_t context;
  zmq::socket_t raw(context, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect((*server)->endpoint());
  raw.send(zmq::str_buffer("not a store message"), zmq::send_flags::none);
  raw.send(zmq::str_buffer("two"), zmq::send_flags::sndmore);
  raw.send(zmq::str_buffer("frames"), zmq::send_flags::none);
  raw.send(zmq::buffer(store_wire::encode({Op::kOk, 1, {}})), zmq::send_flags::none);  // a reply as request
  // Still answers a well-formed request from the same peer afterwards.
  raw.send(zmq::buffer(store_wire::encode({Op::kSet, 77, {"k", "v"}})), zmq::send_flags::none);
  zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&item, 1, 2000ms), 1);
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply));
  Result<Message> m = store_wire::decode(reply.to_string_view());
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->id, 77u);
  EXPECT_EQ(m->op, Op::kOk);
  EXPECT_EQ((*server)->server()->dropped(), 3u);
  EXPECT_EQ((*server)->get("k"), bytes("v"));
}

TEST(ZmqStoreTest, PrefixStoresKeepGroupsApart) {
  auto server = serve();
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  gloo::rendezvous::PrefixStore tp0("tp0", **server), tp1("tp1", **server);
  tp0.set("0", bytes("group zero"));
  tp1.set("0", bytes("group one"));
  EXPECT_EQ(tp0.get("0"), bytes("group zero"));
  EXPECT_EQ(tp1.get("0"), bytes("group one"));
}

TEST(ZmqStoreTest, BadOptionsAndEndpointsAreErrors) {
  EXPECT_EQ(ZmqStore::create({.endpoint = "tcp://127.0.0.1:*", .serve = true, .timeout = 0ms}).status().code(),
            Code::kInvalidArgument);
  EXPECT_FALSE(ZmqStore::create({.endpoint = "nonsense", .serve = true}).ok());
  EXPECT_FALSE(ZmqStore::create({.endpoint = "nonsense"}).ok());
}

}  // namespace
}  // namespace k2
