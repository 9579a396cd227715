// `k2serve bench roofline`: measures the machine's roofline (roofline.h) in one run and
// prints it as a table, or as one JSON object with --json.
// Stateless; each call owns what it creates.
#pragma once

#include <string>
#include <vector>

namespace k2::bench {

// The command (args after "bench roofline"): returns the process exit code.
int bench_roofline_command(const std::vector<std::string>& args);

}  // namespace k2::bench
