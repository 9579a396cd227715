#include "workers/parallel/store_wire.h"

#include <cstring>

namespace k2::store_wire {
namespace {

constexpr std::string_view kMagic = "K2ST";
constexpr size_t kHeaderBytes = 4 + 1 + 8 + 4;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{static_cast<unsigned char>(in[at + i])} << (8 * i);
  return v;
}

bool known_op(uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::kSet:
    case Op::kGet:
    case Op::kCheck:
    case Op::kOk:
    case Op::kMissing:
    case Op::kRefused:
      return true;
  }
  return false;
}

// The field counts each op allows, so the server can index fields without checking again.
bool arity_ok(Op op, size_t n) {
  switch (op) {
    case Op::kSet:
      return n == 2;
    case Op::kGet:
      return n == 1;
    case Op::kCheck:
      return n >= 1;
    case Op::kOk:
      return n <= 1;
    case Op::kMissing:
      return n == 0;
    case Op::kRefused:
      return n == 1;
  }
  return false;
}

Message reply(const Message& request, Op op, std::vector<std::string> fields = {}) {
  return Message{.op = op, .id = request.id, .fields = std::move(fields)};
}

}  // namespace

std::string encode(const Message& message) {
  std::string out;
  size_t total = kHeaderBytes;
  for (const std::string& f : message.fields) total += 4 + f.size();
  out.reserve(total);
  out.append(kMagic);
  out.push_back(static_cast<char>(message.op));
  put_le(out, message.id, 8);
  put_le(out, message.fields.size(), 4);
  for (const std::string& f : message.fields) {
    put_le(out, f.size(), 4);
    out.append(f);
  }
  return out;
}

Result<Message> decode(std::string_view bytes) {
  if (bytes.size() > kMaxMessageBytes) return corrupt("store message larger than the limit");
  if (bytes.size() < kHeaderBytes || bytes.substr(0, kMagic.size()) != kMagic) {
    return corrupt("not a store message");
  }
  const auto op = static_cast<uint8_t>(bytes[4]);
  if (!known_op(op)) return corrupt("store message with an unknown op");
  Message m;
  m.op = static_cast<Op>(op);
  m.id = get_le(bytes, 5, 8);
  const uint64_t count = get_le(bytes, 13, 4);
  if (count > kMaxFields) return corrupt("store message with too many fields");
  if (!arity_ok(m.op, count)) return corrupt("store message with a wrong number of fields for its op");
  size_t at = kHeaderBytes;
  m.fields.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    if (bytes.size() - at < 4) return corrupt("store message truncated in a field length");
    const uint64_t len = get_le(bytes, at, 4);
    at += 4;
    if (len > bytes.size() - at) return corrupt("store message field runs past its end");
    m.fields.emplace_back(bytes.substr(at, len));
    at += len;
  }
  if (at != bytes.size()) return corrupt("store message with trailing bytes");
  return m;
}

Message StoreTable::apply(const Message& request) {
  switch (request.op) {
    case Op::kSet: {
      const std::string& key = request.fields[0];
      const std::string& value = request.fields[1];
      if (key.empty() || key.size() > kMaxKeyBytes) return reply(request, Op::kRefused, {"bad key length"});
      auto it = values_.find(key);
      const size_t old_bytes = it == values_.end() ? 0 : it->first.size() + it->second.size();
      if (it == values_.end() && values_.size() >= kMaxKeys) return reply(request, Op::kRefused, {"too many keys"});
      if (bytes_ - old_bytes + key.size() + value.size() > kMaxBytes) {
        return reply(request, Op::kRefused, {"store is full"});
      }
      bytes_ = bytes_ - old_bytes + key.size() + value.size();
      if (it == values_.end()) {
        values_.emplace(key, value);
      } else {
        it->second = value;
      }
      return reply(request, Op::kOk);
    }
    case Op::kGet: {
      auto it = values_.find(request.fields[0]);
      if (it == values_.end()) return reply(request, Op::kMissing);
      return reply(request, Op::kOk, {it->second});
    }
    case Op::kCheck:
      for (const std::string& key : request.fields) {
        if (values_.find(key) == values_.end()) return reply(request, Op::kMissing);
      }
      return reply(request, Op::kOk);
    case Op::kOk:
    case Op::kMissing:
    case Op::kRefused:
      break;
  }
  return reply(request, Op::kRefused, {"not a request"});
}

}  // namespace k2::store_wire
