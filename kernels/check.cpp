#include "kernels/check.h"

#include <cstdio>
#include <cstdlib>

namespace k2::kernels {

void kernel_check_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "k2 kernel check failed: %s (%s) at %s:%d\n", expr, msg, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace k2::kernels
