// bench_dist --shm: the co-located shared-memory path. Per topology two clusters run side by
// side on this host, one whose every process has KVACTOR_SHM=0 (the TCP store, which every
// other case measures) and one with KVACTOR_SHM=1 (payload slices through memfd segments, frame
// headers on TCP), and each block is a triple run back to back: TCP store, shm store, and a
// memcpy of the same bytes (per worker one thread copying each operation's payload bytes from
// one touched buffer into another, the workers' threads at once), n operations each.
//
// Figures, push and pull of the keys from 1 MiB up (1, 16, 64 MiB; --quick: 1, 16 MiB):
//   "SxW shm OP SIZE throughput" (1x1) / "2x2 shm OP SIZE throughput aggregate": value = the
//       shm store's B/s, limit = the TCP store's; target 2.0 from 16 MiB up.
//   "SxW shm OP SIZE vs_memcpy" (aggregate for 2x2): value = the shm store's B/s, limit = the
//       memcpy's; target 0.5.
// Extras as in the other cases (cpu_us_per_op against the TCP store's, paired ratios).
#include <algorithm>
#include <cstring>
#include <iostream>
#include <optional>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "cluster.hpp"
#include "config.hpp"
#include "measure.hpp"
#include "proc_stats.hpp"
#include "roles.hpp"

namespace kvbench::dist {

namespace {

// W threads at once, each copying `bytes` n times between its two buffers (touched before).
block_times memcpy_block(int workers, std::size_t bytes, std::size_t n) {
  std::vector<std::vector<char>> src(static_cast<std::size_t>(workers)),
      dst(static_cast<std::size_t>(workers));
  for (int w = 0; w < workers; ++w) {
    src[static_cast<std::size_t>(w)].assign(bytes, static_cast<char>(w + 1));
    dst[static_cast<std::size_t>(w)].assign(bytes, 0);
  }
  block_times b;
  b.ops_per_client = n;
  b.t0.assign(static_cast<std::size_t>(workers), 0);
  b.t1.assign(static_cast<std::size_t>(workers), 0);
  std::vector<long long> cpu(static_cast<std::size_t>(workers), 0);
  std::vector<std::thread> ts;
  for (int w = 0; w < workers; ++w)
    ts.emplace_back([&, w] {
      const auto i = static_cast<std::size_t>(w);
      const long long c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
      b.t0[i] = mono_ns();
      for (std::size_t k = 0; k < n; ++k) {
        std::memcpy(dst[i].data(), src[i].data(), bytes);
        do_not_optimize(dst[i][k % bytes]);
      }
      b.t1[i] = mono_ns();
      cpu[i] = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    });
  for (auto& t : ts)
    t.join();
  for (long long c : cpu)
    b.cpu_ns += c;
  return b;
}

void start(std::optional<cluster>& cl, int S, int W, const std::string& self_exe, bool quick,
           bool shm) {
  cl.emplace(S, W, self_exe, quick, false, std::string{}, shm);
  cl->collect("JOINED", 60000);
  cl->send_all("init");
  cl->collect("READY", 120000);
}

void run_topology(const bench_config& cfg, int S, int W, const std::string& self_exe) {
  const std::string prefix = std::to_string(S) + "x" + std::to_string(W);
  std::optional<cluster> tcp_cl, shm_cl;
  start(tcp_cl, S, W, self_exe, cfg.quick, false);
  start(shm_cl, S, W, self_exe, cfg.quick, true);
  cluster& tcp = *tcp_cl;
  cluster& shm = *shm_cl;
  for (std::size_t si = 0; si < cfg.sizes.size(); ++si) {
    const std::size_t size = cfg.sizes[si];
    if (size < 1 * MiB) continue;
    for (op_kind o : {op_kind::push, op_kind::pull}) {
      const std::string base = prefix + " shm " + op_name(o) + " " + size_name(size);
      if (!cfg.filter.empty() && base.find(cfg.filter) == std::string::npos) continue;
      const std::size_t wire = up_bytes(o, size) + down_bytes(o, size);
      const std::size_t window = window_for(size);
      const std::size_t n =
          std::clamp<std::size_t>(cfg.tput_block_bytes / wire, cfg.min_ops, cfg.max_ops_tput);
      case_stats t, s, m;
      std::vector<double> paired_tcp, paired_mem;
      for (int b = 0; b < cfg.blocks; ++b) {
        const block_times tb = run_store_block(tcp, o, si, n, window, window, false);
        const block_times sb = run_store_block(shm, o, si, n, window, window, false);
        const block_times mb = memcpy_block(W, wire, n);
        t.add(tb, wire);
        s.add(sb, wire);
        m.add(mb, wire);
        const rates tr = block_rates(tb, wire), sr = block_rates(sb, wire),
                    mr = block_rates(mb, wire);
        paired_tcp.push_back(W == 1 ? sr.per_client / tr.per_client : sr.aggregate / tr.aggregate);
        paired_mem.push_back(W == 1 ? sr.per_client / mr.per_client : sr.aggregate / mr.aggregate);
      }
      auto extra = [&](const case_stats& lim, const std::vector<double>& p) {
        return std::vector<std::pair<std::string, std::string>>{
            {"window", json_number(double(window))},
            {"ops_per_block", json_number(double(n))},
            {"blocks", json_number(cfg.blocks)},
            {"op_us", json_number(median(s.op_s) * 1e6)},
            {"limit_op_us", json_number(median(lim.op_s) * 1e6)},
            {"cpu_us_per_op", json_number(s.cpu_us_per_op())},
            {"limit_cpu_us_per_op", json_number(lim.cpu_us_per_op())},
            {"cswitch_per_op", json_number(s.cswitches_per_op())},
            {"paired_ratio", json_number(median(p))},
            {"paired_ratio_min", json_number(*std::min_element(p.begin(), p.end()))},
            {"paired_ratio_max", json_number(*std::max_element(p.begin(), p.end()))},
        };
      };
      const auto& sv = W == 1 ? s.per_client : s.aggregate;
      const auto& tv = W == 1 ? t.per_client : t.aggregate;
      const auto& mv = W == 1 ? m.per_client : m.aggregate;
      const std::string kind = W == 1 ? " throughput" : " throughput aggregate";
      emit(figure{"dist", base + kind, median(sv), "B/s", median(tv),
                  size >= 16 * MiB ? std::optional<double>{2.0} : std::nullopt, false,
                  extra(t, paired_tcp)});
      emit(figure{"dist", base + " vs_memcpy", median(sv), "B/s", median(mv), 0.5, false,
                  extra(m, paired_mem)});
    }
  }
  if (!shm.shut_down(30000)) die(prefix + ": the shm cluster did not shut down in order");
  if (!tcp.shut_down(30000)) die(prefix + ": the TCP cluster did not shut down in order");
}

}  // namespace

int shm_main(const bench_config& cfg, const std::string& self_exe) {
  const auto t0 = clock::now();
  for (const auto& [S, W] : cfg.topologies) {
    if (!cfg.topology.empty() && cfg.topology != std::to_string(S) + "x" + std::to_string(W))
      continue;
    run_topology(cfg, S, W, self_exe);
  }
  std::cerr << "bench_dist: shm: " << seconds_since(t0) << " s\n";
  return 0;
}

}  // namespace kvbench::dist
