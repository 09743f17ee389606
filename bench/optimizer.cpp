// bench_optimizer: the element-wise optimizer update as the stores run it on big arrays —
// begin_update once, then update_range over chunks on a kvactor::thread_pool — for SGD with
// momentum and Adam on float32 weights of 1..64 MiB, against the memory-bandwidth limit of the
// same machine measured in the same run, interleaved (A, B, A, B, ...).
//
//   bench_optimizer [--quick]
//
// Figures (one JSON line each, see bench_common.hpp):
//   "<optimizer> size=S"   value = bytes the update moves / median time of one update, where
//                          the bytes are everything it reads and writes: weight read + write,
//                          gradient read, each state slot read + write (SGD momentum: 5 x 4 B
//                          per element, Adam: 7 x 4 B).
//                          limit = the same bytes / the time of a plain loop moving as many
//                          bytes per element, the fastest of: an in-place sum with the update's
//                          read/write pattern (every updated array += the gradient: SGD 3 reads
//                          and 2 writes, Adam 4 and 3) and a k-way sum dst = s0 + ... + s(k-1)
//                          (k + 1 arrays: k = 4 for SGD, 6 for Adam), each on one thread and on
//                          the same thread_pool with the same chunks. Every path works on
//                          buffers of its own and runs twice untimed before each timed batch;
//                          consecutive paths never share buffers. Target ratio 0.7.
//                          Extra keys: update_us, limit_path, the limits of each loop, chunks.
#include <kvactor/detail/thread_pool.hpp>
#include <kvactor/optimizer_state.hpp>
#include <kvactor/serialization/optimizer_config.hpp>
#include <kvactor/tensor.hpp>
#include <kvactor/updater.hpp>

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "optimizers.hpp"

namespace {

using namespace kvbench;

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;

// The store's chunking for an update (actors/src/shard_host.cpp: an update counts 3 x nbytes,
// chunks_for(bytes) = bytes / 256 KiB clamped to [1, 4 * threads]).
std::size_t chunks_for(std::size_t bytes, std::size_t threads) {
  return std::clamp<std::size_t>(bytes / (256 * KiB), 1, threads * 4);
}

struct config {
  bool quick = false;
  std::vector<std::size_t> sizes;
  int min_reps = 7;
  int max_reps = 25;
  double case_budget_s = 1.5;
  double sample_target_s = 5e-3;
};

// ---- the limit's loops: plain code the compiler vectorises ----

// Every updated array += the gradient: the update's read/write pattern (SGD momentum: weight
// and momentum; Adam: weight, mean and var).
void inplace_sum2(float* __restrict a, float* __restrict b, const float* __restrict g,
                  std::size_t lo, std::size_t hi) {
  for (std::size_t i = lo; i < hi; ++i) {
    a[i] += g[i];
    b[i] += g[i];
  }
}
void inplace_sum3(float* __restrict a, float* __restrict b, float* __restrict c,
                  const float* __restrict g, std::size_t lo, std::size_t hi) {
  for (std::size_t i = lo; i < hi; ++i) {
    a[i] += g[i];
    b[i] += g[i];
    c[i] += g[i];
  }
}

// dst = s0 + ... + s(K-1): k reads and one write.
template <std::size_t K>
void kway_sum(float* __restrict dst, const float* const* srcs, std::size_t b, std::size_t e) {
  const float* s[K];
  for (std::size_t j = 0; j < K; ++j)
    s[j] = srcs[j];
  for (std::size_t i = b; i < e; ++i) {
    float acc = s[0][i];
    for (std::size_t j = 1; j < K; ++j)
      acc += s[j][i];
    dst[i] = acc;
  }
}

struct optimizer_case {
  const char* name;
  kvactor::optimizer_config cfg;
  std::size_t slots;  // state slots: bytes per element = (3 + 2 * slots) * 4
};

// Weight-sized float32 arrays, written once (so their pages exist) before any timing.
std::vector<kvactor::tensor> arrays(std::size_t n, std::size_t count, double first) {
  std::vector<kvactor::tensor> out;
  for (std::size_t j = 0; j < count; ++j)
    out.push_back(
        kvactor::tensor::full({static_cast<std::int64_t>(n)}, first * static_cast<double>(j + 1)));
  return out;
}

float* f32(const kvactor::tensor& t) {
  return static_cast<float*>(t.data_unchecked());
}

void run_case(const config& cfg, kvactor::thread_pool& pool, const optimizer_case& oc,
              std::size_t size) {
  const std::size_t threads = pool.size();
  const std::size_t n = size / sizeof(float);
  const std::size_t words = 3 + 2 * oc.slots;  // per element: w r+w, g r, slots r+w
  const std::size_t bytes = words * size;
  const std::size_t parts = chunks_for(3 * size, threads);
  const kvactor::key k{0};

  auto made = kvactor::detail::make_optimizer(oc.cfg);
  if (!made) {
    std::cerr << "bench_optimizer: " << made.error().to_string() << "\n";
    std::exit(1);
  }
  const std::shared_ptr<const kvactor::updater> u = *made;
  // Every path has buffers of its own, so none starts with another's data in the caches
  // (1..64 MiB arrays straddle the last-level cache size here).
  const auto upd_set = arrays(n, 2, 0.5);  // weight 0.5, gradient 1.0 (rescaled by 0.5)
  kvactor::tensor weight = upd_set[0];
  const kvactor::tensor& grad = upd_set[1];
  auto state = u->make_state(k, weight);
  const std::size_t upd_arrays = oc.slots + 1;  // weight and slots
  const auto inplace_set = arrays(n, upd_arrays + 1, 1e-3);
  const std::size_t ksrc = words - 1;
  const auto kway_set = arrays(n, ksrc + 1, 1e-3);

  const std::function<void(std::size_t)> update_chunk = [&](std::size_t i) {
    std::size_t lo, hi;
    kvactor::split_range(n, parts, i, lo, hi);
    u->update_range(k, grad, weight, state.get(), lo, hi);
  };
  auto update_pass = [&] {
    u->begin_update(k, state.get());
    pool.parallel_for(parts, update_chunk);
  };

  // In-place limit: weight-and-slots many arrays += a gradient array.
  auto inplace = [&](std::size_t lo, std::size_t hi) {
    const auto& a = inplace_set;
    if (upd_arrays == 2)
      inplace_sum2(f32(a[0]), f32(a[1]), f32(a[2]), lo, hi);
    else
      inplace_sum3(f32(a[0]), f32(a[1]), f32(a[2]), f32(a[3]), lo, hi);
  };
  // k-way sum limit: words - 1 sources into one destination.
  std::vector<const float*> srcs;
  for (std::size_t j = 0; j < ksrc; ++j)
    srcs.push_back(f32(kway_set[j]));
  float* dst = f32(kway_set[ksrc]);
  auto kway = [&](std::size_t lo, std::size_t hi) {
    if (ksrc == 4)
      kway_sum<4>(dst, srcs.data(), lo, hi);
    else
      kway_sum<6>(dst, srcs.data(), lo, hi);
  };
  auto pooled = [&](const std::function<void(std::size_t, std::size_t)>& loop) {
    return [&pool, &loop, n, parts] {
      pool.parallel_for(parts, [&](std::size_t i) {
        std::size_t lo, hi;
        kvactor::split_range(n, parts, i, lo, hi);
        loop(lo, hi);
      });
    };
  };
  const std::function<void(std::size_t, std::size_t)> inplace_fn = inplace, kway_fn = kway;
  struct path {
    std::string name;
    std::function<void()> run;
    int batch = 1;
    std::vector<double> samples;
  };
  std::vector<path> paths;
  // Consecutive paths never share buffers: update, in-place, k-way, update, ...
  paths.push_back({"update", update_pass, 1, {}});
  paths.push_back({"inplace 1 thread", [&] { inplace(0, n); }, 1, {}});
  paths.push_back({"kway 1 thread", [&] { kway(0, n); }, 1, {}});
  paths.push_back({"inplace thread_pool", pooled(inplace_fn), 1, {}});
  paths.push_back({"kway thread_pool", pooled(kway_fn), 1, {}});
  for (auto& p : paths)
    p.batch = batch_for(time_batch(2, p.run, 2), cfg.sample_target_s);

  const auto t0 = clock::now();
  for (int r = 0; r < cfg.max_reps; ++r) {
    if (r >= cfg.min_reps && seconds_since(t0) > cfg.case_budget_s) break;
    for (auto& p : paths)
      p.samples.push_back(time_batch(p.batch, p.run, 2));
  }

  // Sanity: the update ran and the weight stayed finite.
  const double w0 = weight.at(0), wl = weight.at(n - 1);
  if (!std::isfinite(w0) || w0 != wl || w0 == 0.5)
    std::cerr << "bench_optimizer: SUSPICIOUS RESULT " << oc.name << ": " << w0 << " " << wl
              << "\n";

  const double update_s = median(paths[0].samples);
  std::size_t best = 1;
  for (std::size_t j = 1; j < paths.size(); ++j)
    if (median(paths[j].samples) < median(paths[best].samples)) best = j;
  const double limit = static_cast<double>(bytes) / median(paths[best].samples);
  auto bps = [&](std::size_t j) {
    return json_number(static_cast<double>(bytes) / median(paths[j].samples));
  };
  figure f{"optimizer",
           std::string{oc.name} + " size=" + size_name(size),
           static_cast<double>(bytes) / update_s,
           "B/s",
           limit,
           0.7,
           false,
           {}};
  f.extra = {
      {"update_us", json_number(update_s * 1e6)},
      {"bytes_per_element", std::to_string(words * sizeof(float))},
      {"limit_path", json_string(paths[best].name)},
      {"limit_inplace_1thread_Bps", bps(1)},
      {"limit_kway_1thread_Bps", bps(2)},
      {"limit_inplace_pool_Bps", bps(3)},
      {"limit_kway_pool_Bps", bps(4)},
      {"threads", std::to_string(threads)},
      {"chunks", std::to_string(parts)},
      {"reps", std::to_string(paths[0].samples.size())},
  };
  emit(f);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--help" || a == "-h") {
      std::cerr << "usage: bench_optimizer [--quick]\n";
      return 0;
    } else {
      std::cerr << "bench_optimizer: unknown argument " << a << "\n";
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
  // As wide as a store's reducer pool by default (options.reducer_threads = 0: every core).
  const std::size_t threads = std::max(1u, std::thread::hardware_concurrency());
  kvactor::thread_pool pool(threads);
  std::cerr << "bench_optimizer: " << (cfg.quick ? "quick" : "full") << " mode, " << threads
            << " threads\n";
  const auto t_start = clock::now();

  const optimizer_case cases[] = {
      {"sgd_momentum",
       {"sgd", {{"learning_rate", 0.01}, {"momentum", 0.9}, {"wd", 1e-4}, {"rescale_grad", 0.5}}},
       1},
      {"adam", {"adam", {{"learning_rate", 0.001}, {"wd", 1e-4}, {"rescale_grad", 0.5}}}, 2},
  };
  for (const std::size_t size : cfg.sizes)
    for (const auto& oc : cases)
      run_case(cfg, pool, oc, size);
  std::cerr << "bench_optimizer: " << seconds_since(t_start) << " s\n";
  return 0;
}
