// Shared helpers of the kvactor benchmarks: JSON lines on stdout, order statistics, clocks
// and /proc/self memory figures. Header-only; every benchmark is a plain main() program.
//
// Output contract (bench/README in docs/PERFORMANCE.md): one JSON object per line on stdout
// with "bench", "case", "value", "unit" and, where a limit applies, "limit" and
// "ratio" = value / limit (the limit measured in the same run, interleaved with the measured
// path). Diagnostics go to stderr only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace kvbench {

using clock = std::chrono::steady_clock;

inline double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

/// Runs fn `warmups` times untimed (warming the caches for this path, every path alike), then
/// times `batch` runs; seconds per run.
inline double time_batch(int batch, const std::function<void()>& fn, int warmups = 1) {
  for (int i = 0; i < warmups; ++i)
    fn();
  const auto t0 = clock::now();
  for (int i = 0; i < batch; ++i)
    fn();
  return seconds_since(t0) / batch;
}

/// Runs per sample so that a sample lasts about target_s (1..1000).
inline int batch_for(double one_run_s, double target_s) {
  if (one_run_s <= 0) return 1000;
  return static_cast<int>(std::clamp(target_s / one_run_s, 1.0, 1000.0));
}

/// One figure. extra holds further keys whose values are already JSON (quote strings with
/// json_string()).
struct figure {
  std::string bench;
  std::string case_name;
  double value = 0;
  std::string unit;
  std::optional<double> limit;
  std::optional<double> target;
  bool lower_is_better = false;
  std::vector<std::pair<std::string, std::string>> extra;
};

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/// A finite number as JSON (non-finite values, which JSON cannot carry, become null).
inline std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

inline void emit(const figure& f) {
  std::ostringstream o;
  o << "{\"bench\":" << json_string(f.bench) << ",\"case\":" << json_string(f.case_name)
    << ",\"value\":" << json_number(f.value) << ",\"unit\":" << json_string(f.unit);
  if (f.limit) {
    o << ",\"limit\":" << json_number(*f.limit)
      << ",\"ratio\":" << json_number(*f.limit != 0 ? f.value / *f.limit : NAN);
  }
  if (f.target) o << ",\"target\":" << json_number(*f.target);
  if (f.lower_is_better) o << ",\"lower_is_better\":true";
  for (const auto& [k, v] : f.extra)
    o << "," << json_string(k) << ":" << v;
  o << "}\n";
  std::fputs(o.str().c_str(), stdout);
  std::fflush(stdout);
}

/// The q-quantile (0..1) by nearest rank; the median for q = 0.5 averages the middle pair.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  if (q == 0.5) {
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  }
  const double pos = std::ceil(q * static_cast<double>(v.size())) - 1;
  const std::size_t i = static_cast<std::size_t>(std::clamp(pos, 0.0, double(v.size() - 1)));
  return v[i];
}
inline double median(std::vector<double> v) {
  return quantile(std::move(v), 0.5);
}

/// "4KiB", "1MiB", ...
inline std::string size_name(std::size_t bytes) {
  if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
    return std::to_string(bytes >> 20) + "MiB";
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

// ---- memory figures from /proc/self ----

struct proc_mem {
  std::size_t rss = 0;  ///< VmRSS, bytes
  std::size_t hwm = 0;  ///< VmHWM (peak RSS since start or the last reset), bytes
};

inline proc_mem read_proc_mem() {
  proc_mem m;
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    auto field = [&](const char* name, std::size_t& out) {
      const std::size_t len = std::char_traits<char>::length(name);
      if (line.compare(0, len, name) == 0)
        out = std::strtoull(line.c_str() + len, nullptr, 10) * 1024;
    };
    field("VmRSS:", m.rss);
    field("VmHWM:", m.hwm);
  }
  return m;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0, needs write access to clear_refs).
inline bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

/// Keeps the optimiser from dropping a computed value.
template <class T>
inline void do_not_optimize(const T& v) {
  asm volatile("" : : "g"(&v) : "memory");
}

}  // namespace kvbench
