// Shared by the device benchmarks (bench_device_reduce, bench_device_staging,
// bench_device_quantize): the no-GPU exit, device buffers, and interleaved timing of paths that
// enqueue work on one stream. Uses only kvactor's CUDA-free API (no CUDA headers in bench/).
//
// Timing. A sample enqueues a batch of calls of one path and waits for the stream (the batch
// lasts >= ~5 ms, so the wait's latency is noise), preceded by one untimed call + wait so that
// every path starts equally warm. Paths of one case are sampled in turn (A,B,A,B...) for
// min_reps..max_reps repetitions within a time budget; figures use medians.
#pragma once

#include <kvactor/cuda.hpp>
#include <kvactor/detail/device_kernels.hpp>
#include <kvactor/detail/device_memory.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench_common.hpp"

namespace kvbench {

constexpr std::size_t MiB = std::size_t{1} << 20;

/// Prints why there is nothing to measure and returns true when there is no real CUDA device.
inline bool no_gpu(const char* bench) {
  if (kvactor::cuda_emulated()) {
    std::fprintf(
        stderr, "%s: the devices are emulated (KVACTOR_EMULATE_CUDA); nothing to measure\n", bench);
    return true;
  }
  if (kvactor::cuda_device_count() > 0) return false;
  std::fprintf(stderr, "%s: no CUDA device (%s); nothing to measure\n", bench,
               kvactor::cuda_compiled() ? "none found by the CUDA runtime"
                                        : "kvactor was built without CUDA");
  return true;
}

/// Device memory that stays referenced for the benchmark's life.
struct dev_mem {
  std::shared_ptr<kvactor::buffer> buf;
  dev_mem() = default;
  dev_mem(kvactor::device d, std::size_t bytes) : buf(kvactor::device_pool::of(d).acquire(bytes)) {}
  void* ptr() const { return buf->data(); }
  template <class T>
  T* as() const {
    return static_cast<T*>(buf->data());
  }
};

struct timed_path {
  timed_path(std::string n, double b, std::function<void()> f)
      : name(std::move(n)), bytes(b), fn(std::move(f)) {}
  std::string name;
  double bytes = 0;  // bytes counted per call
  std::function<void()> fn;
  int batch = 1;
  std::vector<double> samples;  // seconds per call

  double median_s() const { return median(samples); }
  double rate() const { return bytes / median_s(); }
};

struct timing_config {
  int min_reps = 7;
  int max_reps = 25;
  double budget_s = 1.0;          // per case, after calibration
  double sample_target_s = 5e-3;  // a sample's batch lasts about this long
};

inline double time_batch(const kvactor::device_stream& s, int batch,
                         const std::function<void()>& fn) {
  fn();
  kvactor::synchronize(s);
  const auto t0 = clock::now();
  for (int i = 0; i < batch; ++i)
    fn();
  kvactor::synchronize(s);
  return seconds_since(t0) / batch;
}

/// Calibrates each path's batch, then samples all paths in turn.
inline void run_interleaved(const kvactor::device_stream& s, std::vector<timed_path*> paths,
                            const timing_config& cfg) {
  // Twice: the first estimate (one call) includes the wait's latency, which dominates small
  // calls; the second is timed over the batch the first suggests.
  for (auto* p : paths) {
    p->batch = 1;
    for (int pass = 0; pass < 2; ++pass) {
      const double one = time_batch(s, p->batch, p->fn);
      p->batch =
          one <= 0 ? 10000 : static_cast<int>(std::clamp(cfg.sample_target_s / one, 1.0, 10000.0));
    }
  }
  const auto t0 = clock::now();
  for (int rep = 0; rep < cfg.max_reps; ++rep) {
    if (rep >= cfg.min_reps && seconds_since(t0) > cfg.budget_s) break;
    for (auto* p : paths)
      p->samples.push_back(time_batch(s, p->batch, p->fn));
  }
}

/// A figure in GB/s for `p` against `limit` (both rates of bytes per second).
inline figure rate_figure(const std::string& bench, const std::string& case_name,
                          const timed_path& p, const timed_path& limit,
                          std::optional<double> target, const std::string& gpu) {
  figure f;
  f.bench = bench;
  f.case_name = case_name;
  f.value = p.rate() / 1e9;
  f.unit = "GB/s";
  f.limit = limit.rate() / 1e9;
  f.target = target;
  f.extra = {{"call_us", json_number(p.median_s() * 1e6)},
             {"limit_us", json_number(limit.median_s() * 1e6)},
             {"limit_path", json_string(limit.name)},
             {"samples", json_number(static_cast<double>(p.samples.size()))},
             {"gpu", json_string(gpu)}};
  return f;
}

/// What a device benchmark's cases run on: stream 0 of cuda(0), and its timing settings.
struct device_bench {
  kvactor::device_stream stream;
  std::string gpu;  // the device's name, for the figures
  timing_config timing;
  bool quick = false;
};

/// A device benchmark's main: parses [--quick] (exit 2 on anything else), exits 0 with a note
/// when there is no GPU, runs `cases`, and exits 1 naming the error when it throws.
inline int device_bench_main(int argc, char** argv, const char* name,
                             const std::function<void(const device_bench&)>& cases) {
  device_bench b;
  for (int i = 1; i < argc; ++i) {
    if (std::string{argv[i]} == "--quick") {
      b.quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", name);
      return 2;
    }
  }
  if (no_gpu(name)) return 0;
  try {
    const auto d = kvactor::device::cuda(0);
    b.stream = kvactor::get_stream(d);
    b.gpu = kvactor::cuda_device_name(d);
    if (b.quick) {
      b.timing.min_reps = 3;
      b.timing.max_reps = 5;
      b.timing.budget_s = 0.2;
    }
    cases(b);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace kvbench
