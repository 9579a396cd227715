// Fuzzes the two parsers of outside bytes: a dataset line and a server's chat reply, and
// scores each parsed reply against each parsed item.
#include <cstddef>
#include <cstdint>
#include <string>

#include "bench/accuracy/accuracy_dataset.h"
#include "bench/accuracy/accuracy_scoring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto item = k2::bench::parse_accuracy_item(text, 1);
  auto reply = k2::bench::parse_chat_reply(text);
  if (item.ok() && reply.ok()) (void)k2::bench::score_reply(*item, *reply);
  return 0;
}
