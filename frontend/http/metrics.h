// A Prometheus metrics registry: counter, gauge and histogram families with labels,
// rendered in the text exposition format (version 0.0.4) that Prometheus and
// prometheus_client parse.
//
// The registry owns its families; families own their series. Every method is
// thread-safe (a mutex per family; updates are short). Family references stay valid for
// the registry's lifetime. Collectors (callbacks run at the start of render()) let
// values that live elsewhere (engine stats) be refreshed at scrape time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace k2::http {

using LabelValues = std::vector<std::string>;

class MetricFamily {
 public:
  MetricFamily(std::string name, std::string help, std::string type, std::vector<std::string> label_names);
  virtual ~MetricFamily() = default;
  const std::string& name() const { return name_; }
  void render(std::string& out) const;

 protected:
  virtual void render_series(std::string& out) const = 0;
  // `name{l1="v1",...,extra}` with escaping.
  std::string series_name(const std::string& suffix, const LabelValues& values, const std::string& extra = "") const;

  std::string name_, help_, type_;
  std::vector<std::string> label_names_;
  mutable std::mutex mu_;
};

class CounterFamily : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;
  void inc(const LabelValues& labels, double by = 1.0);
  // For totals kept elsewhere (engine counters): never lets the value go down.
  void set_total(const LabelValues& labels, double total);
  double value(const LabelValues& labels) const;

 private:
  void render_series(std::string& out) const override;
  std::map<LabelValues, double> series_;
};

class GaugeFamily : public MetricFamily {
 public:
  using MetricFamily::MetricFamily;
  void set(const LabelValues& labels, double v);
  void add(const LabelValues& labels, double by);
  double value(const LabelValues& labels) const;

 private:
  void render_series(std::string& out) const override;
  std::map<LabelValues, double> series_;
};

class HistogramFamily : public MetricFamily {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> buckets);
  void observe(const LabelValues& labels, double v);
  uint64_t count(const LabelValues& labels) const;

 private:
  struct Series {
    std::vector<uint64_t> counts;  // per bucket, not cumulative
    uint64_t count = 0;
    double sum = 0;
  };
  void render_series(std::string& out) const override;
  std::vector<double> buckets_;
  std::map<LabelValues, Series> series_;
};

class MetricsRegistry {
 public:
  CounterFamily& counter(const std::string& name, const std::string& help, std::vector<std::string> labels);
  GaugeFamily& gauge(const std::string& name, const std::string& help, std::vector<std::string> labels);
  HistogramFamily& histogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                             std::vector<double> buckets);
  void add_collector(std::function<void()> collector);
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<MetricFamily>> families_;
  std::vector<std::function<void()>> collectors_;
};

// Prometheus number formatting: integers without a fraction, +Inf/-Inf/NaN spelled out.
std::string format_metric_value(double v);
// vLLM's build_1_2_5_buckets(max): 1, 2, 5, 10, 20, 50, ... up to max.
std::vector<double> buckets_1_2_5(double max_value);

}  // namespace k2::http
