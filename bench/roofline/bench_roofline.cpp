#include "bench/roofline/bench_roofline.h"

#include <iostream>

#include "bench/roofline/roofline.h"
#include "enginecore/protocol/option_table.h"

namespace k2::bench {
namespace {

struct Args {
  int64_t buffer_mib = 1024;
  int64_t reps = 5;
  int64_t threads = 0;
  double compute_seconds = 0.05;
  bool json = false;
  bool help = false;
};

const OptionTable<Args>& table() {
  static const auto t = [] {
    OptionTable<Args> t;
    t.add("--buffer-mib", &Args::buffer_mib, "DRAM probe buffer in MiB (keep it far above the last-level cache)")
        .add("--reps", &Args::reps, "repetitions per probe; the best is reported")
        .add("--threads", &Args::threads, "threads of the all-threads figures (0: every usable CPU)")
        .add("--compute-seconds", &Args::compute_seconds, "length of one repetition of a peak probe")
        .add("--json", &Args::json, "print one JSON object instead of the table")
        .add("--help,-h", &Args::help, "show this help");
    return t;
  }();
  return t;
}

}  // namespace

int bench_roofline_command(const std::vector<std::string>& args) {
  Args a;
  Status s = table().parse(args, a, nullptr);
  if (s.ok() && (a.buffer_mib < 1 || a.reps < 1 || a.threads < 0 || !(a.compute_seconds > 0))) {
    s = invalid_argument("--buffer-mib and --reps must be >= 1, --threads >= 0, --compute-seconds > 0");
  }
  if (!s.ok()) {
    std::cerr << "k2serve bench roofline: " << s.message() << "\n";
    return 2;
  }
  if (a.help) {
    std::cout << table().help(Args{}, "k2serve bench roofline [options]");
    return 0;
  }
  RooflineOptions o;
  o.buffer_bytes = static_cast<uint64_t>(a.buffer_mib) << 20;
  o.reps = static_cast<int>(a.reps);
  o.threads = static_cast<int>(a.threads);
  o.compute_seconds = a.compute_seconds;
  Result<Roofline> r = measure_roofline(o);
  if (!r.ok()) {
    std::cerr << "k2serve bench roofline: " << r.status().to_string() << "\n";
    return 1;
  }
  if (a.json) {
    std::cout << roofline_to_json(*r).dump() << "\n";
  } else {
    std::cout << roofline_table(*r);
  }
  return 0;
}

}  // namespace k2::bench
