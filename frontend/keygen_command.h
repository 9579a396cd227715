// `k2serve keygen [--output PATH]`: writes a new control-plane key file (a ZeroMQ CURVE key
// pair shared by every node of one deployment, read with --control-plane-key-file), never
// over an existing file, and prints its path and public key. Stateless.
#pragma once

#include <string>
#include <vector>

namespace k2 {

int keygen_command(const std::vector<std::string>& args);

}  // namespace k2
