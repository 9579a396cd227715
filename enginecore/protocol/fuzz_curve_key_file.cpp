// libFuzzer: the control-plane key file (`--control-plane-key-file`), bytes an operator or an
// attacker with write access to the path controls. Any bytes: an error value or a key pair
// whose public key belongs to its secret key, never a crash or a throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "enginecore/protocol/curve_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto keys = k2::protocol::parse_key_file(std::string_view(reinterpret_cast<const char*>(data), size));
  if (keys.ok()) {
    if (keys->public_key.size() != k2::protocol::kCurveKeyZ85Length) __builtin_trap();
    if (!k2::protocol::validate_curve_keys(*keys).ok()) __builtin_trap();
    // What was parsed formats back to a file that parses to the same keys.
    auto again = k2::protocol::parse_key_file(k2::protocol::format_key_file(*keys));
    if (!again.ok() || again->secret_key != keys->secret_key) __builtin_trap();
  }
  return 0;
}
