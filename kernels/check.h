// K2_KERNEL_CHECK: the kernels' way to stop on a broken invariant.
//
// Kernels are a leaf module (they cannot include shm/status.h) and take arguments their
// callers have already validated, so a failed check here is a bug in the caller: print
// where and why, then abort. Stateless; safe from any thread.
#pragma once

namespace k2::kernels {

[[noreturn]] void kernel_check_failed(const char* expr, const char* file, int line, const char* msg);

}  // namespace k2::kernels

#define K2_KERNEL_CHECK(cond, msg)                                                 \
  do {                                                                             \
    if (!(cond)) ::k2::kernels::kernel_check_failed(#cond, __FILE__, __LINE__, msg); \
  } while (0)
