// ZmqStore: the rendezvous store a Gloo group meets through (gloo::rendezvous::Store over
// ZeroMQ), because Gloo itself ships only file, hash, prefix and redis stores and a TCP
// group across nodes needs one that every rank can reach over the network.
//
// Rank 0 of a group serves: ZmqStoreServer binds a ROUTER socket on tcp://host:port and keeps
// a bounded StoreTable (store_wire.h) on its own thread. Every rank (rank 0 too) is a client:
// ZmqStore connects a DEALER socket to that endpoint and asks set / get / check. Each request
// carries an id and the client waits for the reply with that id for at most `timeout`, so a
// server that is gone makes calls fail instead of hanging; wait() polls with check until all
// keys are there or its timeout passes. Keys of one group are namespaced by wrapping the
// store in gloo::rendezvous::PrefixStore (GlooCommunicator::create does).
//
// Gloo's Store interface reports failures by exception (gloo::IoException), so the
// overrides throw; the *_value functions are the same operations as Status values.
//
// The store is not authenticated: anyone who reaches the port can read and write keys.
// Bind it on the interface the group's nodes share, not on a public one.
//
// ZmqStoreServer owns its thread, ZeroMQ context and socket; destruction stops the thread.
// ZmqStore owns its context and socket (and, when it serves, its server); its methods may be
// called from several threads (a mutex serializes them), though Gloo calls them from one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gloo/rendezvous/store.h>

#include <zmq.hpp>

#include "shm/status.h"
#include "workers/parallel/store_wire.h"

namespace k2 {

class ZmqStoreServer {
 public:
  // `endpoint` is "tcp://host:port"; port "*" picks a free one (see endpoint()).
  static Result<std::unique_ptr<ZmqStoreServer>> start(const std::string& endpoint);
  ~ZmqStoreServer();
  ZmqStoreServer(const ZmqStoreServer&) = delete;
  ZmqStoreServer& operator=(const ZmqStoreServer&) = delete;

  // The endpoint actually bound ("tcp://127.0.0.1:41234").
  const std::string& endpoint() const { return endpoint_; }
  // Messages that did not decode or were not requests (dropped without a reply).
  uint64_t dropped() const { return dropped_.load(); }

 private:
  ZmqStoreServer() = default;
  void serve();

  zmq::context_t context_;
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> dropped_{0};
  std::thread thread_;
};

struct ZmqStoreOptions {
  std::string endpoint;  // "tcp://host:port" of rank 0's server
  bool serve = false;    // this rank runs the server (bound on `endpoint`)
  // Bound on every wait: one reply, and get()/wait() without their own timeout.
  std::chrono::milliseconds timeout{60'000};
};

class ZmqStore final : public gloo::rendezvous::Store {
 public:
  static Result<std::unique_ptr<ZmqStore>> create(ZmqStoreOptions options);
  ~ZmqStore() override;

  // Where clients connect: the server's bound endpoint when this store serves.
  const std::string& endpoint() const { return options_.endpoint; }
  const ZmqStoreServer* server() const { return server_.get(); }

  Status set_value(const std::string& key, const std::vector<char>& value);
  // Waits up to `timeout` for the key to appear.
  Result<std::vector<char>> get_value(const std::string& key, std::chrono::milliseconds timeout);
  Status wait_keys(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);

  // gloo::rendezvous::Store; these throw gloo::IoException on failure.
  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  explicit ZmqStore(ZmqStoreOptions options) : options_(std::move(options)) {}
  // One request and its reply (matched by id; stale and undecodable replies are skipped).
  Result<store_wire::Message> request(store_wire::Op op, std::vector<std::string> fields,
                                      std::chrono::milliseconds timeout);

  ZmqStoreOptions options_;
  std::unique_ptr<ZmqStoreServer> server_;
  std::mutex mutex_;  // serializes requests on socket_
  zmq::context_t context_;
  zmq::socket_t socket_;
  uint64_t next_id_ = 1;  // guarded by mutex_
};

}  // namespace k2
