// Stand-alone `bench_accuracy` binary: the same as `k2serve bench accuracy`, usable without
// the serving stack (e.g. against another OpenAI-compatible server).
#include <string>
#include <vector>

#include "bench/accuracy/bench_accuracy.h"

int main(int argc, char** argv) { return k2::bench_accuracy_command(std::vector<std::string>(argv + 1, argv + argc)); }
