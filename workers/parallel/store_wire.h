// The wire format of ZmqStore (zmq_store.h), the rendezvous key-value store of a Gloo group,
// and the table its server keeps.
//
// One message is one ZeroMQ frame:
//   "K2ST" | op: u8 | id: u64 LE | count: u32 LE | count x (length: u32 LE | bytes)
// Requests: kSet (key, value), kGet (key), kCheck (key, ...). Replies carry the request's id:
// kOk (a get's value; nothing for set and check), kMissing (a key is not there yet),
// kRefused (the request broke a limit of the table; one field says why).
//
// The server receives these bytes from the network, so decode() treats them as outside input:
// every length is checked against what is left, the field count, field sizes and message
// size are bounded, the number of fields must match the op, and no trailing bytes are
// allowed. It never crashes on bad input (fuzzed: fuzz_store_wire).
//
// Value types and free functions; StoreTable is thread-compatible (its server uses it from
// one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2::store_wire {

enum class Op : uint8_t {
  kSet = 1,
  kGet = 2,
  kCheck = 3,
  kOk = 0x81,
  kMissing = 0x82,
  kRefused = 0x83,
};

// Bounds for one message. A Gloo full-mesh address blob is ~100 bytes per peer, so these
// leave a wide margin while keeping what one peer can make the server allocate small.
inline constexpr size_t kMaxMessageBytes = size_t{4} << 20;
inline constexpr size_t kMaxFields = 1024;
inline constexpr size_t kMaxKeyBytes = 1024;

struct Message {
  Op op = Op::kOk;
  uint64_t id = 0;
  std::vector<std::string> fields;
  bool operator==(const Message&) const = default;
};

std::string encode(const Message& message);
// kCorrupt for anything that is not exactly one well-formed message.
Result<Message> decode(std::string_view bytes);

// The server's keys and values, bounded in count and bytes so that peers cannot make it grow
// without limit. Keys are never removed: a group's rendezvous is short and its keys few.
class StoreTable {
 public:
  static constexpr size_t kMaxKeys = 65536;
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  // The reply to a decoded request (same id). A reply op as a request is refused.
  Message apply(const Message& request);
  size_t size() const { return values_.size(); }

 private:
  std::map<std::string, std::string, std::less<>> values_;
  size_t bytes_ = 0;
};

}  // namespace k2::store_wire
