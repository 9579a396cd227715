#include "frontend/http/metrics.h"

#include <cmath>
#include <cstdio>

namespace k2::http {

namespace {

void escape_label(std::string& out, const std::string& v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

}  // namespace

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.17g", v);
  }
  return buf;
}

std::vector<double> buckets_1_2_5(double max_value) {
  std::vector<double> out;
  for (double exp = 1; ; exp *= 10) {
    for (double m : {1.0, 2.0, 5.0}) {
      double v = m * exp;
      if (v > max_value) return out;
      out.push_back(v);
    }
  }
}

MetricFamily::MetricFamily(std::string name, std::string help, std::string type, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), type_(std::move(type)), label_names_(std::move(label_names)) {}

void MetricFamily::render(std::string& out) const {
  out += "# HELP " + name_ + " " + help_ + "\n";
  out += "# TYPE " + name_ + " " + type_ + "\n";
  std::lock_guard lock(mu_);
  render_series(out);
}

std::string MetricFamily::series_name(const std::string& suffix, const LabelValues& values,
                                      const std::string& extra) const {
  std::string s = name_ + suffix;
  if (label_names_.empty() && extra.empty()) return s;
  s += '{';
  bool first = true;
  for (size_t i = 0; i < label_names_.size(); ++i) {
    if (!first) s += ',';
    first = false;
    s += label_names_[i] + "=\"";
    escape_label(s, i < values.size() ? values[i] : std::string());
    s += '"';
  }
  if (!extra.empty()) s += (first ? "" : ",") + extra;
  s += '}';
  return s;
}

void CounterFamily::inc(const LabelValues& labels, double by) {
  if (!(by >= 0)) return;  // counters never go down (NaN rejected too)
  std::lock_guard lock(mu_);
  series_[labels] += by;
}

void CounterFamily::set_total(const LabelValues& labels, double total) {
  std::lock_guard lock(mu_);
  double& v = series_[labels];
  if (total > v) v = total;
}

double CounterFamily::value(const LabelValues& labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void CounterFamily::render_series(std::string& out) const {
  for (const auto& [labels, v] : series_) out += series_name("", labels) + " " + format_metric_value(v) + "\n";
}

void GaugeFamily::set(const LabelValues& labels, double v) {
  std::lock_guard lock(mu_);
  series_[labels] = v;
}

void GaugeFamily::add(const LabelValues& labels, double by) {
  std::lock_guard lock(mu_);
  series_[labels] += by;
}

double GaugeFamily::value(const LabelValues& labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second;
}

void GaugeFamily::render_series(std::string& out) const {
  for (const auto& [labels, v] : series_) out += series_name("", labels) + " " + format_metric_value(v) + "\n";
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                                 std::vector<double> buckets)
    : MetricFamily(std::move(name), std::move(help), "histogram", std::move(label_names)),
      buckets_(std::move(buckets)) {}

void HistogramFamily::observe(const LabelValues& labels, double v) {
  std::lock_guard lock(mu_);
  Series& s = series_[labels];
  if (s.counts.empty()) s.counts.assign(buckets_.size() + 1, 0);
  size_t i = 0;
  while (i < buckets_.size() && v > buckets_[i]) ++i;
  ++s.counts[i];
  ++s.count;
  s.sum += v;
}

uint64_t HistogramFamily::count(const LabelValues& labels) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::render_series(std::string& out) const {
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= buckets_.size(); ++i) {
      cumulative += s.counts[i];
      const std::string le = i < buckets_.size() ? format_metric_value(buckets_[i]) : "+Inf";
      out += series_name("_bucket", labels, "le=\"" + le + "\"") + " " +
             format_metric_value(static_cast<double>(cumulative)) + "\n";
    }
    out += series_name("_count", labels) + " " + format_metric_value(static_cast<double>(s.count)) + "\n";
    out += series_name("_sum", labels) + " " + format_metric_value(s.sum) + "\n";
  }
}

CounterFamily& MetricsRegistry::counter(const std::string& name, const std::string& help,
                                        std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  families_.push_back(std::make_unique<CounterFamily>(name, help, "counter", std::move(labels)));
  return static_cast<CounterFamily&>(*families_.back());
}

GaugeFamily& MetricsRegistry::gauge(const std::string& name, const std::string& help,
                                    std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  families_.push_back(std::make_unique<GaugeFamily>(name, help, "gauge", std::move(labels)));
  return static_cast<GaugeFamily&>(*families_.back());
}

HistogramFamily& MetricsRegistry::histogram(const std::string& name, const std::string& help,
                                            std::vector<std::string> labels, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  families_.push_back(std::make_unique<HistogramFamily>(name, help, std::move(labels), std::move(buckets)));
  return static_cast<HistogramFamily&>(*families_.back());
}

void MetricsRegistry::add_collector(std::function<void()> collector) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& c : collectors) c();
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& f : families_) f->render(out);
  return out;
}

}  // namespace k2::http
