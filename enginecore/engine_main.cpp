// k2serve-enginecore: the enginecore process kind (one per data-parallel rank), spawned by
// the frontend. See engine_loop.h.
#include <string>
#include <vector>

#include "enginecore/engine_loop.h"
#include "enginecore/protocol/log.h"

int main(int argc, char** argv) {
  k2::init_logging("enginecore");
  return k2::engine::enginecore_main(std::vector<std::string>(argv + 1, argv + argc));
}
