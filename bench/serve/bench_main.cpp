// k2serve-bench: the bench commands as a standalone binary (`k2serve-bench serve ...`),
// the same code `k2serve bench ...` runs.
#include <string>
#include <vector>

#include "bench/serve/bench_command.h"

int main(int argc, char** argv) { return k2::bench::bench_command(std::vector<std::string>(argv + 1, argv + argc)); }
