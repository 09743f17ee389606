// bench_local_reduce: push k float32 values to one key of a local store, then pull it into
// one output and wait for the pull; compare the memory traffic rate with a plain-loop k-way
// sum on the same number of threads, measured in the same run, interleaved (A,B,A,B...).
//
//   bench_local_reduce [--quick] [--no-diag] [--sizes=1MiB,4MiB] [--ks=1,2,4,8]
//
// --sizes and --ks keep only those cases of the chosen mode (for A/B runs of one size).
//
// Figures (one JSON line each, see bench_common.hpp):
//   "k=K size=S"       value = effective bytes / median round time, where a round moves
//                      (k+1)·n bytes in the reduce (k reads, 1 write) and 2·n in the pull;
//                      limit = (k+1)·n / median time of one pass of dst = s0+...+s(k-1) by a
//                      plain loop: the faster of one thread and a kvactor::thread_pool as wide
//                      as the store's reducer (parallel_for over the store's chunk count).
//                      Extra keys: round_us, overhead_us (round time minus the time the
//                      round's bytes take at the limit rate), the two limit candidates.
//   "mem_peak size=S"  (peak RSS − baseline) / bytes the store holds (n: the stored value; no
//                      updater, so no merge buffer); limit 2.5, lower is better; sizes >= 1 MiB.
//   "rss_growth size=S" RSS after the last round − RSS after the first round (bytes).
//   "mem_fixed_overhead" RSS the first store of the process costs with one 4-byte key.
//   "k=K size=S store_on_caf_system config=moderate-poll-attempts=0" (diagnostic; full mode,
//                      --no-diag skips it): the same store and options, run on a CAF system
//                      the benchmark makes with the store's settings plus that one scheduler
//                      setting, through the public embedding API
//                      kvactor::create(caf::actor_system&, ...); measured after the default
//                      store is gone, interleaved with its own limit samples. It shows how much
//                      of the default store's shortfall is CAF's idle-worker polling (see
//                      docs/PERFORMANCE.md).
//
// Sampling. Each repetition times the one-thread limit, the pool limit, then the store; each
// sample is a batch of passes/rounds lasting >= ~5 ms, preceded by one untimed pass/round of
// the same path, so every path is timed with its data as warm in the (large, shared) caches as
// the others' — without it, sizes that fit in the L3 cache favour whichever path runs second.
// The store's idle CAF workers keep polling for ~55 ms after its last message (see
// docs/PERFORMANCE.md), i.e. during the next limit samples; that was measured not to slow
// memory-bound loops here (it keeps the VM's vCPUs awake, if anything it speeds them up), so
// it errs, if at all, on the side of a higher limit.
//
// Memory accounting. Tensors come from the process-wide buffer pool, whose cached free
// buffers stay in RSS. Before each size the benchmark frees the previous size's tensors and
// calls buffer_pool::global().trim(), so (1) the baseline holds only this size's inputs,
// output and limit buffer (allocated and touched) and (2) the store's allocations cannot be
// served from buffers the benchmark released: what the store holds is fresh memory and shows
// in RSS. Thread stacks and malloc arenas that an earlier store of this process left behind
// are reused by later stores (glibc keeps them), so mem_peak is the incremental cost of a
// store; mem_fixed_overhead gives the first store's fixed cost. The peak is VmHWM reset right
// after the baseline (echo 5 > /proc/self/clear_refs); where that fails (not root, old kernel)
// it falls back to the largest VmRSS sampled between measurements, and stderr says so.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <kvactor/buffer_pool.hpp>
#include <kvactor/caf.hpp>
#include <kvactor/detail/thread_pool.hpp>
#include <kvactor/kvstore.hpp>

#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace kvbench;

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;

// The limit's kernel: a plain loop, K known at compile time (as a hand-written loop would
// be), one pass, K loads and one store per element.
template <std::size_t K>
void plain_sum(float* __restrict dst, const float* const* srcs, std::size_t b, std::size_t e) {
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

void plain_sum_k(std::size_t k, float* dst, const float* const* srcs, std::size_t b,
                 std::size_t e) {
  switch (k) {
    case 1:
      plain_sum<1>(dst, srcs, b, e);
      break;
    case 2:
      plain_sum<2>(dst, srcs, b, e);
      break;
    case 3:
      plain_sum<3>(dst, srcs, b, e);
      break;
    case 4:
      plain_sum<4>(dst, srcs, b, e);
      break;
    case 5:
      plain_sum<5>(dst, srcs, b, e);
      break;
    case 6:
      plain_sum<6>(dst, srcs, b, e);
      break;
    case 7:
      plain_sum<7>(dst, srcs, b, e);
      break;
    case 8:
      plain_sum<8>(dst, srcs, b, e);
      break;
    default:
      std::abort();
  }
}

// The store's chunking (actors/src/shard_core.cpp, chunks_for): bytes / 256 KiB, clamped to
// [1, 4·threads]. The limit's pool pass uses the same count.
std::size_t chunks_for(std::size_t bytes, std::size_t threads) {
  return std::clamp<std::size_t>(bytes / (256 * KiB), 1, threads * 4);
}

// "4KiB", "1MiB", "64MiB" or plain bytes; 0 when unreadable.
std::size_t parse_size(const std::string& s) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(s, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const std::string unit = s.substr(used);
  if (unit.empty() || unit == "B") return v;
  if (unit == "KiB") return v * KiB;
  if (unit == "MiB") return v * MiB;
  return 0;
}

// A comma-separated list; false when an item is unreadable.
bool parse_list(const std::string& s, std::vector<std::size_t>& out, bool sizes) {
  out.clear();
  std::size_t b = 0;
  while (b <= s.size()) {
    std::size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    const std::string item = s.substr(b, e - b);
    std::size_t v = 0;
    if (sizes) {
      v = parse_size(item);
    } else {
      try {
        v = std::stoul(item);
      } catch (const std::exception&) {
        v = 0;
      }
    }
    if (v == 0 || (!sizes && v > 8)) return false;
    out.push_back(v);
    b = e + 1;
  }
  return !out.empty();
}

struct config {
  bool quick = false;
  bool diag = true;
  std::vector<std::size_t> sizes;
  std::vector<std::size_t> ks;
  int min_reps = 7;
  int max_reps = 25;
  double case_budget_s = 1.2;     // per (k, size) and path set, after warm-up
  double sample_target_s = 5e-3;  // a sample is a batch of rounds lasting about this long
};

std::size_t hardware_threads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

// RSS the first store of the process costs with nothing but a 4-byte key in it (actor system,
// shard actors, reducer threads).
void measure_fixed_overhead(const kvactor::options& opts) {
  kvactor::buffer_pool::global().trim();
  auto v = kvactor::tensor::ones({1});
  auto out = kvactor::tensor::zeros({1});
  const auto before = read_proc_mem();
  std::size_t after = 0;
  {
    auto kv = kvactor::create("local", opts);
    kv.init(0, v).get();
    for (int i = 0; i < 100; ++i)
      kv.pushpull(0, v, out).get();
    after = read_proc_mem().rss;
  }
  emit(figure{"local_reduce",
              "mem_fixed_overhead",
              double(after) - double(before.rss),
              "B",
              std::nullopt,
              std::nullopt,
              true,
              {{"note", json_string("RSS of the process's first store with one 4-byte key, "
                                    "after 100 pushpulls (later stores reuse most of it)")}}});
}

// The tensors of one size: k inputs (input j holds j+1), the store's output, the limit's dst.
struct buffers {
  std::size_t n = 0;
  std::vector<kvactor::tensor> inputs;
  kvactor::tensor out, limit_dst;
  std::vector<const float*> src_ptrs;

  buffers(std::size_t elements, std::size_t kmax) : n(elements) {
    for (std::size_t j = 0; j < kmax; ++j)
      inputs.push_back(kvactor::tensor::full({std::int64_t(n)}, 1.0 + double(j)));
    out = kvactor::tensor::zeros({std::int64_t(n)});
    limit_dst = kvactor::tensor::zeros({std::int64_t(n)});
    for (const auto& t : inputs)
      src_ptrs.push_back(static_cast<const float*>(t.data_unchecked()));
  }
};

// Times one store against the limit for one (k, size), interleaved, and prints the figure.
struct case_runner {
  const config& cfg;
  kvactor::thread_pool& limit_pool;
  std::size_t threads;
  std::function<void()> after_rep;  // RSS sampling

  void run(kvactor::kvstore& kv, buffers& b, std::size_t k, const std::string& case_name,
           bool with_target, const std::function<void()>& after_warmup) {
    const std::size_t n = b.n, size = n * sizeof(float);
    std::vector<kvactor::tensor> vals(b.inputs.begin(), b.inputs.begin() + std::ptrdiff_t(k));
    auto store_round = [&] {
      kv.push(0, vals);
      kv.pull(0, b.out).wait();
    };
    const std::size_t limit_bytes = (k + 1) * size;
    const std::size_t parts = chunks_for(limit_bytes, threads);
    float* dst = static_cast<float*>(b.limit_dst.data_unchecked());
    const float* const* srcs = b.src_ptrs.data();
    auto limit_single = [&] { plain_sum_k(k, dst, srcs, 0, n); };
    const std::function<void(std::size_t)> chunk = [&](std::size_t i) {
      std::size_t lo, hi;
      kvactor::split_range(n, parts, i, lo, hi);
      plain_sum_k(k, dst, srcs, lo, hi);
    };
    auto limit_pool_pass = [&] { limit_pool.parallel_for(parts, chunk); };

    // Warm-up, then calibrate the batch sizes.
    store_round();
    if (after_warmup) after_warmup();
    const int b_store = batch_for(time_batch(3, store_round), cfg.sample_target_s);
    const int b_single = batch_for(time_batch(3, limit_single), cfg.sample_target_s);
    const int b_pool = batch_for(time_batch(3, limit_pool_pass), cfg.sample_target_s);

    // Interleaved samples: one-thread limit, pool limit, store, one-thread limit, ...
    std::vector<double> s_store, s_single, s_pool;
    const auto t0 = clock::now();
    for (int r = 0; r < cfg.max_reps; ++r) {
      if (r >= cfg.min_reps && seconds_since(t0) > cfg.case_budget_s) break;
      s_single.push_back(time_batch(b_single, limit_single));
      s_pool.push_back(time_batch(b_pool, limit_pool_pass));
      s_store.push_back(time_batch(b_store, store_round));
      if (after_rep) after_rep();
    }

    // Sanity: out holds the sum of the k pushed values (elements 0 and n-1).
    const double want = double(k) * double(k + 1) / 2.0;  // 1 + 2 + ... + k
    if (b.out.at(0) != want || b.out.at(n - 1) != want)
      std::cerr << "bench_local_reduce: WRONG RESULT " << case_name << ": " << b.out.at(0)
                << " != " << want << "\n";

    const double single_s = median(s_single), pool_s = median(s_pool);
    const bool pool_wins = pool_s <= single_s;
    const double limit = double(limit_bytes) / std::min(single_s, pool_s);
    const double round_bytes = double((k + 1) * size + 2 * size);
    const double round_s = median(s_store);
    figure f{"local_reduce", case_name, round_bytes / round_s, "B/s", limit, std::nullopt,
             false,          {}};
    if (with_target) f.target = 0.8;
    f.extra = {
        {"round_us", json_number(round_s * 1e6)},
        {"overhead_us", json_number((round_s - round_bytes / limit) * 1e6)},
        {"limit_path",
         json_string(pool_wins ? "thread_pool(" + std::to_string(threads) + ") parallel_for " +
                                     std::to_string(parts) + " chunks"
                               : std::string{"1 thread"})},
        {"limit_1thread_Bps", json_number(double(limit_bytes) / single_s)},
        {"limit_pool_Bps", json_number(double(limit_bytes) / pool_s)},
        {"reps", std::to_string(s_store.size())},
    };
    emit(f);
  }
};

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  std::vector<std::size_t> only_sizes, only_ks;
  const char* usage =
      "usage: bench_local_reduce [--quick] [--no-diag] [--sizes=1MiB,4MiB] [--ks=1,2,4,8]\n";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--no-diag") {
      cfg.diag = false;
    } else if (a.rfind("--sizes=", 0) == 0) {
      if (!parse_list(a.substr(8), only_sizes, true)) {
        std::cerr << "bench_local_reduce: bad size list " << a << "\n" << usage;
        return 2;
      }
    } else if (a.rfind("--ks=", 0) == 0) {
      if (!parse_list(a.substr(5), only_ks, false)) {
        std::cerr << "bench_local_reduce: bad k list (1..8) " << a << "\n" << usage;
        return 2;
      }
    } else if (a == "--help" || a == "-h") {
      std::cerr << usage;
      return 0;
    } else {
      std::cerr << "bench_local_reduce: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (cfg.quick) {
    cfg.sizes = {4 * KiB, 1 * MiB};
    cfg.ks = {1, 4};
    cfg.min_reps = 3;
    cfg.max_reps = 5;
    cfg.case_budget_s = 0.05;
    cfg.sample_target_s = 1e-3;
    cfg.diag = false;
  } else {
    cfg.sizes = {4 * KiB, 64 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB};
    cfg.ks = {1, 2, 4, 8};
  }
  if (!only_sizes.empty()) cfg.sizes = only_sizes;
  if (!only_ks.empty()) cfg.ks = only_ks;
  const std::size_t kmax = *std::max_element(cfg.ks.begin(), cfg.ks.end());

  kvactor::options opts;  // the defaults a user gets
  const std::size_t threads = opts.reducer_threads ? opts.reducer_threads : hardware_threads();
  std::cerr << "bench_local_reduce: " << (cfg.quick ? "quick" : "full") << " mode, "
            << hardware_threads() << " hardware threads, reducer_threads=" << threads
            << ", parallel_threshold_bytes=" << opts.parallel_threshold_bytes << "\n";
  const auto t_start = clock::now();

  // The limit's threads: as many as the store's reducer. Created before any baseline.
  kvactor::thread_pool limit_pool(threads);

  measure_fixed_overhead(opts);

  // The diagnostic system: the settings the store gives its own system (max-threads = worker
  // threads) plus work-stealing.moderate-poll-attempts = 0: an idle worker parks on its
  // condition variable at once (woken by the next external enqueue) instead of polling.
  const char* diag_name = "moderate-poll-attempts=0";
  std::unique_ptr<caf::actor_system_config> diag_cfg;
  std::unique_ptr<caf::actor_system> diag_sys;
  if (cfg.diag) {
    diag_cfg = std::make_unique<caf::actor_system_config>();
    diag_cfg->set("scheduler.max-threads",
                  opts.worker_threads ? opts.worker_threads : hardware_threads());
    diag_cfg->set("work-stealing.moderate-poll-attempts", std::size_t{0});
    kvactor::add_to_config(*diag_cfg);
    diag_sys = std::make_unique<caf::actor_system>(*diag_cfg);
  }

  bool warned_hwm = false;
  for (const std::size_t size : cfg.sizes) {
    const std::string sname = size_name(size);

    // Fresh start for this size: the previous size's tensors are gone; drop the pool's cache.
    kvactor::buffer_pool::global().trim();
    buffers b(size / sizeof(float), kmax);

    const proc_mem base = read_proc_mem();
    const bool hwm_ok = reset_peak_rss();
    if (!hwm_ok && !warned_hwm) {
      std::cerr << "bench_local_reduce: cannot reset VmHWM via /proc/self/clear_refs; peak RSS "
                   "falls back to VmRSS sampled between measurements\n";
      warned_hwm = true;
    }
    std::size_t sampled_peak = base.rss;
    auto sample_rss = [&] {
      const std::size_t r = read_proc_mem().rss;
      sampled_peak = std::max(sampled_peak, r);
      return r;
    };

    std::size_t rss_first = 0, rss_last = 0;
    case_runner runner{cfg, limit_pool, threads, [&] { rss_last = sample_rss(); }};
    {
      auto kv = kvactor::create("local", opts);
      kv.init(0, b.inputs[0]).get();
      sample_rss();
      for (const std::size_t k : cfg.ks) {
        const bool first = k == cfg.ks.front();
        runner.run(kv, b, k, "k=" + std::to_string(k) + " size=" + sname, size >= 1 * MiB, [&] {
          if (first) rss_first = sample_rss();
        });
      }
    }  // the store is destroyed here
    const proc_mem after = read_proc_mem();
    const std::size_t peak = hwm_ok ? after.hwm : sampled_peak;
    if (size >= 1 * MiB) {
      emit(figure{
          "local_reduce",
          "mem_peak size=" + sname,
          (double(peak) - double(base.rss)) / double(size),
          "x stored bytes",
          2.5,
          std::nullopt,
          true,
          {{"peak_minus_baseline_B", json_number(double(peak) - double(base.rss))},
           {"stored_B", json_number(double(size))},
           {"peak_source", json_string(hwm_ok ? "VmHWM after clear_refs" : "VmRSS samples")}}});
    }
    emit(figure{"local_reduce",
                "rss_growth size=" + sname,
                double(rss_last) - double(rss_first),
                "B",
                std::nullopt,
                std::nullopt,
                true,
                {{"rss_after_round1_B", json_number(double(rss_first))},
                 {"rss_after_last_round_B", json_number(double(rss_last))}}});

    if (diag_sys) {
      auto kv = kvactor::create(*diag_sys, "local", opts);
      kv.init(0, b.inputs[0]).get();
      case_runner diag_runner{cfg, limit_pool, threads, nullptr};
      for (const std::size_t k : cfg.ks)
        diag_runner.run(kv, b, k,
                        "k=" + std::to_string(k) + " size=" + sname +
                            " store_on_caf_system config=" + diag_name,
                        false, nullptr);
    }
  }
  diag_sys.reset();
  diag_cfg.reset();
  std::cerr << "bench_local_reduce: " << seconds_since(t_start) << " s\n";
  return 0;
}
