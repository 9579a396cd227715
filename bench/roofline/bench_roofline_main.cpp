// Standalone entry point of `bench roofline` (the frontend's k2serve binary offers the same
// command); for measuring a machine without building the whole server.
#include <string>
#include <vector>

#include "bench/roofline/bench_roofline.h"

int main(int argc, char** argv) { return k2::bench::bench_roofline_command(std::vector<std::string>(argv + 1, argv + argc)); }
