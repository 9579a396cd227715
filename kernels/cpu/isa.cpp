#include "kernels/cpu/isa.h"

#include <vector>
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace k2::cpu {
namespace {

constexpr int kArchReqXcompPerm = 0x1023;  // <asm/prctl.h>; not in every libc's headers
constexpr int kXfeatureXtileData = 18;

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
  if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) return CpuidRegs{};
  return r;
}

bool bit(uint32_t v, int b) { return ((v >> b) & 1u) != 0; }

// xgetbv is only legal once cpuid reports OSXSAVE; the asm avoids needing -mxsave.
uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool request_amx_permission() {
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtileData) == 0;
}

}  // namespace

Isa apply_isa_override(Isa best, const char* env) {
  if (env == nullptr || *env == '\0') return best;
  const std::optional<Isa> want = parse_isa(env);
  if (!want) {
    std::fprintf(stderr, "k2: K2_ISA=%s is not one of scalar|avx2|avx512|avx512bf16|amx; using %s\n", env,
                 isa_name(best));
    return best;
  }
  if (*want > best) {
    std::fprintf(stderr, "k2: K2_ISA=%s is above what this CPU supports; using %s\n", env, isa_name(best));
    return best;
  }
  return *want;
}

IsaFeatures detect_features() {
  IsaFeatures f;
  const CpuidRegs l0 = cpuid(0, 0);
  if (l0.eax < 7) return f;
  const CpuidRegs l1 = cpuid(1, 0);
  if (!bit(l1.ecx, 27)) return f;  // OSXSAVE: the OS manages extended state, xgetbv is legal
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = ymm_os && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool tile_os = (xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  const CpuidRegs l7 = cpuid(7, 0);
  const CpuidRegs l7s1 = cpuid(7, 1);

  f.avx2 = ymm_os && bit(l1.ecx, 28) && bit(l1.ecx, 12) && bit(l1.ecx, 29) && bit(l7.ebx, 5);
  f.avx512 = f.avx2 && zmm_os && bit(l7.ebx, 16) && bit(l7.ebx, 17) && bit(l7.ebx, 30) && bit(l7.ebx, 31);
  f.avx512_vnni = f.avx512 && bit(l7.ecx, 11);
  f.avx512_bf16 = f.avx512 && bit(l7s1.eax, 5);
  f.amx = f.avx512 && tile_os && bit(l7.edx, 24) && bit(l7.edx, 22) && bit(l7.edx, 25);
  if (f.amx) f.amx_permitted = request_amx_permission();
  return f;
}

Isa best_isa(const IsaFeatures& f) {
  if (!f.avx2) return Isa::kScalar;
  if (!f.avx512) return Isa::kAvx2;
  if (!f.avx512_bf16 || !f.avx512_vnni) return Isa::kAvx512;
  if (!f.amx || !f.amx_permitted) return Isa::kAvx512Bf16;
  return Isa::kAmx;
}

Isa active_isa() {
  static const Isa isa = apply_isa_override(best_isa(detect_features()), std::getenv("K2_ISA"));  // thread-safe one-time initialisation
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

std::optional<Isa> parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    if (name == isa_name(isa)) return isa;
  }
  return std::nullopt;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  const Isa best = best_isa(detect_features());
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16, Isa::kAmx}) {
    if (isa <= best) out.push_back(isa);
  }
  return out;
}

}  // namespace k2::cpu
