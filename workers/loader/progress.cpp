#include "workers/loader/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "enginecore/protocol/log.h"

namespace k2 {

ProgressReporter::ProgressReporter(std::string label, uint64_t total_bytes, ProgressStyle style)
    : label_(std::move(label)), total_(total_bytes), style_(style), start_(std::chrono::steady_clock::now()) {
  if (style_ == ProgressStyle::kAuto) style_ = ::isatty(STDERR_FILENO) ? ProgressStyle::kBar : ProgressStyle::kLog;
}

ProgressReporter::~ProgressReporter() { finish(); }

double ProgressReporter::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressReporter::update(uint64_t bytes_done) {
  if (finished_ || bytes_done <= done_) return;
  done_ = std::min(bytes_done, total_);
  const double interval = style_ == ProgressStyle::kBar ? kBarInterval : kLogInterval;
  if (seconds() - last_emit_ >= interval) emit(false);
}

void ProgressReporter::finish() {
  if (finished_) return;
  finished_ = true;
  emit(true);
}

std::function<void(uint64_t, uint64_t, double)> ProgressReporter::callback() {
  return [this](uint64_t done, uint64_t /*total*/, double /*seconds*/) { update(done); };
}

void ProgressReporter::emit(bool final_line) {
  const double now = seconds();
  last_emit_ = now;
  switch (style_) {
    case ProgressStyle::kBar:
      std::fprintf(stderr, "\r%s\033[K%s", render_bar(label_, done_, total_, now, 30).c_str(), final_line ? "\n" : "");
      std::fflush(stderr);
      break;
    case ProgressStyle::kLog:
      spdlog::info("{}", render_line(label_, done_, total_, now));
      break;
    default:
      break;
  }
}

std::string ProgressReporter::format_bytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1000.0 && unit < 4) {
    value /= 1000.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string ProgressReporter::render_line(const std::string& label, uint64_t done, uint64_t total, double seconds) {
  const double percent = total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  char buf[128];
  std::snprintf(buf, sizeof buf, ": %s / %s %5.1f%% in %.2f s (%s/s)", format_bytes(done).c_str(),
                format_bytes(total).c_str(), percent, seconds, format_bytes(static_cast<uint64_t>(rate)).c_str());
  std::string line = label;
  line.append(buf);
  return line;
}

std::string ProgressReporter::render_bar(const std::string& label, uint64_t done, uint64_t total, double seconds,
                                         int width) {
  const double fraction = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int filled = std::clamp(static_cast<int>(fraction * width), 0, width);
  std::string bar;
  bar.reserve(static_cast<size_t>(width) + 3);
  bar.push_back('[');
  bar.append(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(width - filled), ' ');
  bar.append("] ");
  bar.append(render_line(label, done, total, seconds));
  return bar;
}

}  // namespace k2
