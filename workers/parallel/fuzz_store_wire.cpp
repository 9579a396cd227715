// libFuzzer target: ZmqStore's server decodes bytes from the network (store_wire.h). Whatever
// decodes must re-encode to the same bytes (one encoding per message) and be safe to apply.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "workers/parallel/store_wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace k2::store_wire;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  k2::Result<Message> m = decode(bytes);
  if (!m.ok()) return 0;
  if (encode(*m) != bytes) std::abort();
  StoreTable table;
  const Message reply = table.apply(*m);
  if (reply.id != m->id) std::abort();
  if (!decode(encode(reply)).ok()) std::abort();
  return 0;
}
