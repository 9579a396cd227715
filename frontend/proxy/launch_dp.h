// `k2serve launch-dp`: starts this node's externally load-balanced data-parallel ranks, one
// `k2serve serve` (with its own API server) per rank, as launch_online_dp.py does. See
// launch_dp.cpp for the options and the supervision rules.
#pragma once

#include <string>
#include <vector>

namespace k2::proxy {

int launch_dp_command(const std::vector<std::string>& args);

}  // namespace k2::proxy
