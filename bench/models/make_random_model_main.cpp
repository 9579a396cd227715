// Standalone entry point of `make-random-model` (the frontend's k2serve binary offers the
// same command); for writing benchmark checkpoints without building the whole server.
#include <string>
#include <vector>

#include "bench/models/make_random_model.h"

int main(int argc, char** argv) {
  return k2::bench::make_random_model_command(std::vector<std::string>(argv + 1, argv + argc));
}
