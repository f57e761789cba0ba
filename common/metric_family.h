// Building prometheus-cpp metric families by hand, for collectors that read
// their values at scrape time (server, replication and gateway metrics):
// prometheus-cpp's Family<T> registries own their values, these collectors
// sample someone else's counters instead.
//
// Thread-safety: plain functions on the caller's objects.

#ifndef LOCKWARDEN_COMMON_METRIC_FAMILY_H_
#define LOCKWARDEN_COMMON_METRIC_FAMILY_H_

#include <string>
#include <utility>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace lockwarden {

inline prometheus::MetricFamily MakeMetricFamily(std::string name,
                                                 std::string help,
                                                 prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

// Appends one sample; counters and gauges keep their value in different
// fields of ClientMetric, chosen by the family's type.
inline void AddMetricSample(
    prometheus::MetricFamily* f, double value,
    std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (f->type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

}  // namespace lockwarden

#endif  // LOCKWARDEN_COMMON_METRIC_FAMILY_H_
