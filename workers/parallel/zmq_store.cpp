#include "workers/parallel/zmq_store.h"

#include <gloo/common/error.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace k2 {
namespace {

using store_wire::Message;
using store_wire::Op;
using Clock = std::chrono::steady_clock;

// How often the server looks at its stop flag, and the back-off bounds of wait()'s polling.
constexpr std::chrono::milliseconds kServerPoll{50};
constexpr std::chrono::milliseconds kFirstRetry{2};
constexpr std::chrono::milliseconds kMaxRetry{100};

bool is_reply(Op op) { return op == Op::kOk || op == Op::kMissing || op == Op::kRefused; }

std::string zmq_text(const zmq::error_t& e) { return std::string("zeromq: ") + e.what(); }

// A frame's further parts are never part of a valid message; read and drop them one at a
// time so a peer cannot make us hold a long multipart message.
void drain_more(zmq::socket_t& socket, const zmq::message_t& first) {
  bool more = first.more();
  while (more) {
    zmq::message_t rest;
    if (!socket.recv(rest, zmq::recv_flags::dontwait)) return;
    more = rest.more();
  }
}

void setup_socket(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  // ZeroMQ drops a peer whose message exceeds this before it is ever allocated in full.
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(store_wire::kMaxMessageBytes));
}

}  // namespace

Result<std::unique_ptr<ZmqStoreServer>> ZmqStoreServer::start(const std::string& endpoint) {
  std::unique_ptr<ZmqStoreServer> server(new ZmqStoreServer());
  try {
    server->socket_ = zmq::socket_t(server->context_, zmq::socket_type::router);
    setup_socket(server->socket_);
    server->socket_.bind(endpoint);
    server->endpoint_ = server->socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return unavailable("store server cannot bind " + endpoint + ": " + zmq_text(e));
  }
  server->thread_ = std::thread([s = server.get()] { s->serve(); });
  return server;
}

ZmqStoreServer::~ZmqStoreServer() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZmqStoreServer::serve() {
  store_wire::StoreTable table;
  while (!stop_.load()) {
    try {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, kServerPoll);
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      zmq::message_t identity, payload;
      if (!socket_.recv(identity, zmq::recv_flags::dontwait)) continue;
      if (!identity.more()) {
        ++dropped_;
        continue;
      }
      if (!socket_.recv(payload, zmq::recv_flags::dontwait)) continue;
      drain_more(socket_, payload);
      Result<Message> request = store_wire::decode(payload.to_string_view());
      if (!request.ok() || is_reply(request->op)) {
        ++dropped_;
        continue;
      }
      const std::string reply = store_wire::encode(table.apply(*request));
      // A client that went away is no reason to block the others: drop on a full queue.
      if (socket_.send(identity, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        (void)socket_.send(zmq::buffer(reply), zmq::send_flags::dontwait);
      }
    } catch (const zmq::error_t&) {
      // An interrupted poll or a failed send: nothing to answer; avoid spinning on a
      // persistent error while still looking at stop_.
      std::this_thread::sleep_for(kServerPoll);
    }
  }
}

Result<std::unique_ptr<ZmqStore>> ZmqStore::create(ZmqStoreOptions options) {
  if (options.timeout <= std::chrono::milliseconds::zero()) return invalid_argument("store timeout must be positive");
  std::unique_ptr<ZmqStore> store(new ZmqStore(std::move(options)));
  if (store->options_.serve) {
    K2_ASSIGN_OR_RETURN(store->server_, ZmqStoreServer::start(store->options_.endpoint));
    store->options_.endpoint = store->server_->endpoint();
  }
  try {
    store->socket_ = zmq::socket_t(store->context_, zmq::socket_type::dealer);
    setup_socket(store->socket_);
    // Connecting does not need the server up yet: requests queue until it is (or time out).
    store->socket_.connect(store->options_.endpoint);
  } catch (const zmq::error_t& e) {
    return unavailable("store cannot connect to " + store->options_.endpoint + ": " + zmq_text(e));
  }
  return store;
}

ZmqStore::~ZmqStore() = default;

Result<Message> ZmqStore::request(Op op, std::vector<std::string> fields, std::chrono::milliseconds timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t id = next_id_++;
  const std::string bytes = store_wire::encode(Message{.op = op, .id = id, .fields = std::move(fields)});
  if (bytes.size() > store_wire::kMaxMessageBytes) return invalid_argument("store request larger than the limit");
  const auto deadline = Clock::now() + timeout;
  try {
    if (!socket_.send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
      return unavailable("store request to " + options_.endpoint + " could not be queued");
    }
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= std::chrono::milliseconds::zero()) break;
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, left);
      if ((item.revents & ZMQ_POLLIN) == 0) continue;
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) continue;
      drain_more(socket_, frame);
      Result<Message> reply = store_wire::decode(frame.to_string_view());
      // A late reply to an earlier request that timed out, or garbage: not ours.
      if (!reply.ok() || reply->id != id || !is_reply(reply->op)) continue;
      return std::move(reply).value();
    }
  } catch (const zmq::error_t& e) {
    return unavailable("store request to " + options_.endpoint + ": " + zmq_text(e));
  }
  return unavailable("store at " + options_.endpoint + " did not answer within " + std::to_string(timeout.count()) +
                     " ms");
}

Status ZmqStore::set_value(const std::string& key, const std::vector<char>& value) {
  K2_ASSIGN_OR_RETURN(Message reply,
                      request(Op::kSet, {key, std::string(value.begin(), value.end())}, options_.timeout));
  if (reply.op == Op::kOk) return Status::ok_status();
  const std::string why = reply.op == Op::kRefused ? reply.fields[0] : "unexpected reply";
  return invalid_argument("store refused to set '" + key + "': " + why);
}

Status ZmqStore::wait_keys(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  if (keys.empty()) return Status::ok_status();
  const auto deadline = Clock::now() + timeout;
  auto retry = kFirstRetry;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= std::chrono::milliseconds::zero()) break;
    K2_ASSIGN_OR_RETURN(Message reply, request(Op::kCheck, keys, left));
    if (reply.op == Op::kOk) return Status::ok_status();
    if (reply.op == Op::kRefused) return invalid_argument("store refused a wait: " + reply.fields[0]);
    std::this_thread::sleep_for(std::min(retry, std::max(left, std::chrono::milliseconds(1))));
    retry = std::min(retry * 2, kMaxRetry);
  }
  std::string names;
  for (const std::string& k : keys) names += (names.empty() ? "" : ", ") + k;
  return unavailable("store: keys [" + names + "] did not appear within " + std::to_string(timeout.count()) + " ms");
}

Result<std::vector<char>> ZmqStore::get_value(const std::string& key, std::chrono::milliseconds timeout) {
  K2_RETURN_IF_ERROR(wait_keys({key}, timeout));
  K2_ASSIGN_OR_RETURN(Message reply, request(Op::kGet, {key}, options_.timeout));
  if (reply.op != Op::kOk || reply.fields.size() != 1) return unavailable("store has no value for '" + key + "'");
  return std::vector<char>(reply.fields[0].begin(), reply.fields[0].end());
}

void ZmqStore::set(const std::string& key, const std::vector<char>& data) {
  const Status s = set_value(key, data);
  if (!s.ok()) throw gloo::IoException(s.to_string());
}

std::vector<char> ZmqStore::get(const std::string& key) {
  Result<std::vector<char>> value = get_value(key, options_.timeout);
  if (!value.ok()) throw gloo::IoException(value.status().to_string());
  return std::move(value).value();
}

void ZmqStore::wait(const std::vector<std::string>& keys) { wait(keys, options_.timeout); }

void ZmqStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  // Gloo's "no timeout" (zero) still gets this store's bound: nothing here waits forever.
  const Status s = wait_keys(keys, timeout > std::chrono::milliseconds::zero() ? timeout : options_.timeout);
  if (!s.ok()) throw gloo::IoException(s.to_string());
}

}  // namespace k2
