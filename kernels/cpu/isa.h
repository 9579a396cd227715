// Run-time instruction-set detection for the CPU kernels.
//
// The project is compiled for x86-64-v3 (AVX2/FMA); wider instructions live in functions
// compiled with per-function target attributes and are only called when detect_isa() says
// the CPU and the OS support them. active_isa() is decided once per process (first call),
// thread-safe, and can be lowered (never raised) with the environment variable
// K2_ISA=scalar|avx2|avx512|avx512bf16|amx, which tests and benchmarks use to force a path.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace k2::cpu {

// Ordered: each level implies every lower one.
enum class Isa {
  kScalar = 0,     // portable C++ (compiled for the x86-64-v3 baseline)
  kAvx2 = 1,       // AVX2 + FMA + F16C
  kAvx512 = 2,     // AVX-512 F/BW/VL/DQ
  kAvx512Bf16 = 3, // + AVX512_BF16 (vdpbf16ps) and AVX512_VNNI (vpdpbusd)
  kAmx = 4,        // + AMX-TILE/BF16/INT8, with the OS granting XTILEDATA to this process
};

// What cpuid/xgetbv reported, feature by feature (for logs and tests).
struct IsaFeatures {
  bool avx2 = false;  // with fma, f16c and OS-saved YMM state
  bool avx512 = false;  // f, bw, vl, dq and OS-saved ZMM/opmask state
  bool avx512_bf16 = false;
  bool avx512_vnni = false;
  bool amx = false;  // tile + bf16 + int8, OS-saved tile state
  bool amx_permitted = false;  // arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeded
};

// Probes the CPU (cheap; no caching). Requests AMX tile-data permission for the process
// the first time it sees AMX, as Linux requires before the first tile instruction.
IsaFeatures detect_features();

// The highest level the features support.
Isa best_isa(const IsaFeatures& f);

// best lowered to what the K2_ISA value `env` names (null or empty: best). An unknown
// name or one above best is reported on stderr and ignored.
Isa apply_isa_override(Isa best, const char* env);

// The level every kernel table uses: best_isa(detect_features()), lowered by K2_ISA when
// set. Computed once; later calls return the same value.
Isa active_isa();

const char* isa_name(Isa isa);
// Every level from kScalar up to best_isa(detect_features()): what tests and benchmarks run.
std::vector<Isa> supported_isas();
std::optional<Isa> parse_isa(std::string_view name);

}  // namespace k2::cpu
