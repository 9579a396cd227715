// ProgressReporter: shows how far a load has got, in bytes and seconds. On a terminal
// (isatty(stderr)) it redraws one bar line on stderr; otherwise it writes spdlog info lines,
// at most one per kLogInterval seconds plus the final one, so log files stay short.
//
// Typical use by the worker (see also Checkpoint::prefault):
//   ProgressReporter progress("loading " + dir.string(), checkpoint.total_bytes());
//   K2_RETURN_IF_ERROR(checkpoint.prefault(progress.callback()));
//   progress.finish();
// or, when converting tensor by tensor: progress.advance(view.bytes) after each one.
//
// Owns nothing but its counters. Not thread-safe: call it from the loading thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace k2 {

enum class ProgressStyle { kAuto, kBar, kLog, kQuiet };

class ProgressReporter {
 public:
  static constexpr double kLogInterval = 5.0;    // seconds between log lines
  static constexpr double kBarInterval = 0.1;    // seconds between bar redraws

  ProgressReporter(std::string label, uint64_t total_bytes, ProgressStyle style = ProgressStyle::kAuto);
  ~ProgressReporter();  // finish()es if the caller did not
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // Sets the bytes done so far (monotonic; smaller values are ignored).
  void update(uint64_t bytes_done);
  void advance(uint64_t bytes) { update(done_ + bytes); }
  // Prints the final line ("... 7.8 MB in 0.12 s (65 MB/s)"); later calls do nothing.
  void finish();

  // A callback of the shape Checkpoint::prefault takes, bound to this reporter (which must
  // outlive it). Its bytes_total must equal this reporter's total.
  std::function<void(uint64_t bytes_done, uint64_t bytes_total, double seconds)> callback();

  double seconds() const;
  uint64_t done() const { return done_; }
  ProgressStyle style() const { return style_; }

  // The text of one bar line / log line, without the trailing newline; public for tests.
  static std::string render_bar(const std::string& label, uint64_t done, uint64_t total, double seconds, int width);
  static std::string render_line(const std::string& label, uint64_t done, uint64_t total, double seconds);
  static std::string format_bytes(uint64_t bytes);

 private:
  void emit(bool final_line);

  std::string label_;
  uint64_t total_ = 0;
  uint64_t done_ = 0;
  ProgressStyle style_;
  std::chrono::steady_clock::time_point start_;
  double last_emit_ = -1e9;
  bool finished_ = false;
};

}  // namespace k2
