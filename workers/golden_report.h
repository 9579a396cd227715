// GoldenReport: the output of `k2serve golden-check`: one line per check with its
// max |difference| and tolerance, and a last line "N passed, M failed". Shared by the text
// check (golden_check.cpp) and the vision check (golden_vision.cpp) so both print alike.
//
// Writes to a caller-owned stream it does not own. Not thread-safe.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <ostream>
#include <string>

namespace k2 {

// max_i |a[i] - b[i]| in double; a NaN anywhere counts as infinity so it never passes.
inline double max_abs_diff(const float* a, const float* b, int64_t n) {
  double worst = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
  }
  return worst;
}

class GoldenReport {
 public:
  explicit GoldenReport(std::ostream& out) : out_(out) {}

  std::ostream& out() { return out_; }

  void check(const std::string& name, double diff, double tol, const std::string& note = "") {
    const bool ok = diff <= tol;
    (ok ? passed_ : failed_)++;
    char line[160];
    std::snprintf(line, sizeof(line), "%s  %-40s max|diff| %.3e  tol %.1e", ok ? "PASS" : "FAIL", name.c_str(), diff,
                  tol);
    out_ << line << (note.empty() ? "" : "  (" + note + ")") << "\n";
  }
  void fail(const std::string& name, const std::string& why) {
    ++failed_;
    out_ << "FAIL  " << name << "  (" << why << ")\n";
  }
  // Prints the summary line; true when nothing failed.
  bool finish() {
    out_ << passed_ << " passed, " << failed_ << " failed\n";
    out_.flush();
    return failed_ == 0;
  }

 private:
  std::ostream& out_;
  int64_t passed_ = 0, failed_ = 0;
};

}  // namespace k2
