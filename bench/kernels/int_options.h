// "--name N" pairs of positive integers, the whole command line of the kernel benchmarks.
// Header-only; exits with a message on a bad or unknown option (these are tools, not servers).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace k2::bench {

inline void parse_int_options(int argc, char** argv, const std::map<std::string, int64_t*>& options) {
  for (int i = 1; i < argc; i += 2) {
    const std::string key = argv[i];
    auto it = options.find(key);
    if (it == options.end() || i + 1 >= argc) {
      std::fprintf(stderr, "unknown or incomplete option %s\n", key.c_str());
      std::exit(2);
    }
    const int64_t v = std::strtoll(argv[i + 1], nullptr, 10);
    if (v <= 0) {
      std::fprintf(stderr, "bad value for %s\n", key.c_str());
      std::exit(2);
    }
    *it->second = v;
  }
}

}  // namespace k2::bench
