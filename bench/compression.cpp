// bench_compression: the gradient-compression kernels (kvactor/detail/compression.hpp) on ONE
// thread, against a same-run memcpy of the same gradient size, interleaved (A,B,A,B...).
//
//   bench_compression [--quick]
//
// Figures (one JSON line each, see bench_common.hpp), for 2bit and 1bit, float32 gradients of
// S = 1, 4, 16, 64 MiB (--quick: 1 MiB):
//   "2bit quantize size=S"       value = bytes the kernel reads and writes / median time of one
//                                call over the whole array: grad read (S), residual read and
//                                written (2·S), words written (S/16 for 2bit, S/32 for 1bit).
//   "2bit dequantize size=S"     words read + S written.
//   "2bit dequantize_add size=S" words read + S read + S written (merging one sender).
//   limit = 2·S / median time of memcpy(dst, src, S) (bytes read + written), measured in the
//   same repetitions. Target for quantize: ratio >= 0.5. Extra keys: call_us, limit_us,
//   elements_per_ns, cpu_path (the kernels' code path: "avx2" or "generic").
//   "... cpu=generic" (full mode, where the CPU path is not already generic): the same kernel
//   forced onto the generic (baseline ISA: SSE2 on x86-64) path, a diagnostic for CPUs
//   without AVX2; no target.
//
// Sampling. Each repetition times memcpy, then each kernel of the case set; each sample is a
// batch of calls lasting >= ~5 ms (1 ms in --quick), preceded by one untimed call of the same
// path so that every path is timed with its data as warm in the caches as the others'. The
// residual is carried from call to call, as in training (it stays bounded: error feedback).
#include <kvactor/detail/compression.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace kvbench;
namespace gc = kvactor::compression;

constexpr std::size_t MiB = 1024 * 1024;

struct config {
  bool quick = false;
  std::vector<std::size_t> sizes;
  int min_reps = 7;
  int max_reps = 25;
  double case_budget_s = 1.5;     // per size, after warm-up
  double sample_target_s = 5e-3;  // a sample is a batch of calls lasting about this long
};

struct path {
  path(std::string n, double b, bool t, std::function<void()> f)
      : name(std::move(n)), bytes(b), with_target(t), fn(std::move(f)) {}
  std::string name;  // "2bit quantize"
  double bytes = 0;  // per call
  bool with_target = false;
  std::function<void()> fn;
  bool generic = false;  // run with gc::detail::force_generic(true)
  int batch = 1;
  std::vector<double> samples;
};

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--help" || a == "-h") {
      std::cerr << "usage: bench_compression [--quick]\n";
      return 0;
    } else {
      std::cerr << "bench_compression: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (cfg.quick) {
    cfg.sizes = {1 * MiB};
    cfg.min_reps = 3;
    cfg.max_reps = 5;
    cfg.case_budget_s = 0.05;
    cfg.sample_target_s = 1e-3;
  } else {
    cfg.sizes = {1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB};
  }
  std::cerr << "bench_compression: " << (cfg.quick ? "quick" : "full") << " mode, 1 thread\n";
  const auto t_start = clock::now();

  const gc::params two{gc::kind::two_bit, 0.5f};
  const gc::params one{gc::kind::one_bit, 0.0f};

  for (const std::size_t size : cfg.sizes) {
    const std::size_t n = size / sizeof(float);
    const std::string sname = size_name(size);

    // Gradients uniform in [-1, 1): with threshold 0.5 the 2-bit codes are mixed (+t, -t, 0)
    // and the 1-bit signs random, so no branch predictor could help a branchy kernel either.
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> grad(n), res2(n, 0.0f), res1(n, 0.0f), out(n, 0.0f), acc(n, 0.0f);
    for (auto& g : grad)
      g = dist(rng);
    std::vector<std::uint32_t> w2(gc::words(two.type, n)), w1(gc::words(one.type, n));
    std::vector<float> src(n, 1.0f), dst(n, 0.0f);

    const double S = double(size);
    const double w2b = double(w2.size() * 4), w1b = double(w1.size() * 4);
    path limit{"memcpy", 2 * S, false, [&] {
                 std::memcpy(dst.data(), src.data(), size);
                 do_not_optimize(dst[n - 1]);
               }};
    std::vector<path> kernels{
        {"2bit quantize", 3 * S + w2b, true,
         [&] { gc::quantize(two, grad.data(), res2.data(), w2.data(), n, 0, w2.size()); }},
        {"2bit dequantize", w2b + S, false,
         [&] { gc::dequantize(two, w2.data(), out.data(), n, 0, w2.size()); }},
        {"2bit dequantize_add", w2b + 2 * S, false,
         [&] { gc::dequantize_add(two, w2.data(), acc.data(), n, 0, w2.size()); }},
        {"1bit quantize", 3 * S + w1b, true,
         [&] { gc::quantize(one, grad.data(), res1.data(), w1.data(), n, 0, w1.size()); }},
        {"1bit dequantize", w1b + S, false,
         [&] { gc::dequantize(one, w1.data(), out.data(), n, 0, w1.size()); }},
        {"1bit dequantize_add", w1b + 2 * S, false,
         [&] { gc::dequantize_add(one, w1.data(), acc.data(), n, 0, w1.size()); }},
    };

    // The CPU's best path (AVX2 where the CPU has it); in full mode also the generic
    // (baseline ISA) path of each kernel, as a diagnostic without a target.
    std::vector<path> paths = kernels;
    if (!cfg.quick && std::string(gc::detail::cpu_path()) != "generic") {
      for (const auto& k : kernels) {
        paths.push_back(k);
        paths.back().generic = true;
        paths.back().with_target = false;
      }
    }
    auto select = [](const path& p) { gc::detail::force_generic(p.generic); };

    // Warm-up (first touch of every buffer), then calibrate the batch sizes.
    limit.fn();
    for (auto& p : paths) {
      select(p);
      p.fn();
    }
    limit.batch = batch_for(time_batch(2, limit.fn), cfg.sample_target_s);
    for (auto& p : paths) {
      select(p);
      p.batch = batch_for(time_batch(2, p.fn), cfg.sample_target_s);
    }

    const auto t0 = clock::now();
    for (int r = 0; r < cfg.max_reps; ++r) {
      if (r >= cfg.min_reps && seconds_since(t0) > cfg.case_budget_s) break;
      for (auto& p : paths) {
        limit.samples.push_back(time_batch(limit.batch, limit.fn));
        select(p);
        p.samples.push_back(time_batch(p.batch, p.fn));
      }
    }

    gc::detail::force_generic(false);

    // Sanity: a fresh quantize of the first word against its definition (the residual there
    // is whatever the runs left, so recompute from a copy).
    {
      std::vector<float> r(res2.begin(), res2.begin() + 16);
      std::uint32_t word = 0;
      gc::quantize(two, grad.data(), r.data(), &word, 16, 0, 1);
      std::vector<float> d(16);
      gc::dequantize(two, &word, d.data(), 16, 0, 1);
      for (std::size_t j = 0; j < 16; ++j) {
        const float x = res2[j] + grad[j];
        const float want = x >= 0.5f ? 0.5f : (x <= -0.5f ? -0.5f : 0.0f);
        if (d[j] != want || r[j] != x - want) {
          std::cerr << "bench_compression: WRONG RESULT at element " << j << "\n";
          return 1;
        }
      }
    }

    const double limit_s = median(limit.samples);
    const double limit_Bps = limit.bytes / limit_s;
    for (const auto& p : paths) {
      const double s = median(p.samples);
      gc::detail::force_generic(p.generic);
      const std::string cpu = gc::detail::cpu_path();
      gc::detail::force_generic(false);
      figure f{"compression", p.name + " size=" + sname + (p.generic ? " cpu=generic" : ""),
               p.bytes / s,   "B/s",
               limit_Bps,     std::nullopt,
               false,         {}};
      if (p.with_target) f.target = 0.5;
      f.extra = {
          {"call_us", json_number(s * 1e6)},
          {"limit_us", json_number(limit_s * 1e6)},
          {"limit_path", json_string("memcpy " + sname + " (1 thread)")},
          {"cpu_path", json_string(cpu)},
          {"elements_per_ns", json_number(double(n) / s * 1e-9)},
          {"reps", std::to_string(p.samples.size())},
      };
      emit(f);
    }
  }
  std::cerr << "bench_compression: " << seconds_since(t_start) << " s\n";
  return 0;
}
