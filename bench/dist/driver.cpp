// The driver's cases: per topology, the memory phase, then for every size and operation an
// rtt and a throughput case, each as interleaved (baseline, store) block pairs; the figures
// are described at the top of main.cpp.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "cluster.hpp"
#include "config.hpp"
#include "measure.hpp"
#include "proc_stats.hpp"
#include "raw_mesh.hpp"
#include "roles.hpp"

namespace kvbench::dist {

namespace {

// --timeline: a fresh directory for the measured cluster's files (KVACTOR_TIMELINE=dir/job:
// one file per process), reported and removed after the cluster has shut down.
struct timeline_files {
  std::string dir, base;
  timeline_files() {
    char tmpl[] = "/tmp/kvactor-bench-timeline-XXXXXX";
    if (!::mkdtemp(tmpl)) die("cannot make a directory for the timeline files");
    dir = tmpl;
    base = dir + "/job";
  }
  ~timeline_files() {
    remove_all();
    ::rmdir(dir.c_str());
  }
  timeline_files(const timeline_files&) = delete;
  timeline_files& operator=(const timeline_files&) = delete;
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (const dirent* e = ::readdir(d))
        if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
      ::closedir(d);
    }
    return out;
  }
  void report(const std::string& prefix) const {
    std::size_t bytes = 0;
    const auto all = names();
    for (const auto& f : all) {
      struct ::stat st {};
      if (::stat(f.c_str(), &st) == 0) bytes += static_cast<std::size_t>(st.st_size);
    }
    std::cerr << "bench_dist: " << prefix << " timeline: " << all.size() << " files, " << bytes
              << " bytes\n";
  }
  void remove_all() const {
    for (const auto& f : names())
      ::unlink(f.c_str());
  }
};

struct topology_run {
  const bench_config& cfg;
  int S, W;
  std::string prefix;        // "1x1"
  cluster* plain = nullptr;  // --tls, --timeline: the baseline, the store without either

  std::size_t ops_for(std::size_t wire, bool rtt) const {
    const std::size_t budget = rtt ? cfg.rtt_block_bytes : cfg.tput_block_bytes;
    const std::size_t maxo = rtt ? cfg.max_ops_rtt : cfg.max_ops_tput;
    return std::clamp<std::size_t>(budget / std::max<std::size_t>(wire, 1), cfg.min_ops, maxo);
  }

  void run_case(cluster& cl, raw_mesh* mesh, op_kind o, std::size_t si, bool rtt) {
    const std::size_t size = cfg.sizes[si];
    const auto parts = plan_parts(key_of(si), size, static_cast<std::uint32_t>(S));
    const std::size_t wire = up_bytes(o, size) + down_bytes(o, size);
    const std::size_t window = rtt ? 1 : window_for(size);
    const std::size_t n = ops_for(wire, rtt);
    const std::size_t warm = std::max<std::size_t>(window, 1);
    const char* mode = !plain ? " " : cfg.tls ? " tls " : " timeline ";
    const std::string base = prefix + mode + op_name(o) + " " + size_name(size);
    if (!cfg.filter.empty() &&
        (base + (rtt ? " rtt" : " throughput")).find(cfg.filter) == std::string::npos)
      return;
    case_stats raw, store, rounds;
    // With several workers a push or pushpull round trip waits for the round (every worker's
    // push): a second raw baseline whose servers do the same puts that wait beside the store's.
    const bool in_rounds = rtt && !plain && W > 1 && o != op_kind::pull;
    // Each block pair (raw, store) runs back to back; its ratio sees the same machine load.
    std::vector<double> paired, paired_agg, paired_rounds;
    for (int b = 0; b < cfg.blocks; ++b) {
      const block_times rb = plain ? run_store_block(*plain, o, si, n, window, warm, rtt)
                                   : mesh->run(parts, o, n, window, warm, rtt);
      const block_times sb = run_store_block(cl, o, si, n, window, warm, rtt);
      raw.add(rb, wire);
      store.add(sb, wire);
      if (rtt) {
        std::vector<double> rl(rb.lat.begin(), rb.lat.end()), sl(sb.lat.begin(), sb.lat.end());
        paired.push_back(median(sl) / median(rl));
        if (in_rounds) {
          const block_times wb = mesh->run(parts, o, n, window, warm, rtt, true);
          rounds.add(wb, wire);
          std::vector<double> wl(wb.lat.begin(), wb.lat.end());
          paired_rounds.push_back(median(sl) / median(wl));
        }
      } else {
        const rates rr = block_rates(rb, wire), sr = block_rates(sb, wire);
        paired.push_back(sr.per_client / rr.per_client);
        paired_agg.push_back(sr.aggregate / rr.aggregate);
      }
    }
    std::vector<std::pair<std::string, std::string>> common = {
        {"window", json_number(double(window))},
        {"ops_per_block", json_number(double(n))},
        {"blocks", json_number(cfg.blocks)},
        {"parts", json_number(double(parts.size()))},
        {"cpu_us_per_op", json_number(store.cpu_us_per_op())},
        {"limit_cpu_us_per_op", json_number(raw.cpu_us_per_op())},
        {"cpu_cores", json_number(store.cpu_cores())},
        {"limit_cpu_cores", json_number(raw.cpu_cores())},
        {"cswitch_per_op", json_number(store.cswitches_per_op())},
        {"limit_cswitch_per_op", json_number(raw.cswitches_per_op())},
    };
    auto with_paired = [](std::vector<std::pair<std::string, std::string>> e,
                          const std::vector<double>& p) {
      e.emplace_back("paired_ratio", json_number(median(p)));
      e.emplace_back("paired_ratio_min", json_number(*std::min_element(p.begin(), p.end())));
      e.emplace_back("paired_ratio_max", json_number(*std::max_element(p.begin(), p.end())));
      return e;
    };
    // Issue 13's bounds on the store's CPU per operation against raw TCP's, where it sets one.
    auto with_cpu = [&](std::vector<std::pair<std::string, std::string>> e, double bound) {
      e.emplace_back("cpu_ratio", json_number(store.cpu_us_per_op() / raw.cpu_us_per_op()));
      e.emplace_back("cpu_target", json_number(bound));
      return e;
    };
    if (rtt) {
      const bool small = size <= 4 * KiB && !plain;
      auto extra = common;
      extra.insert(extra.begin(), {{"p99_us", json_number(quantile(store.lat_us, 0.99))},
                                   {"limit_p99_us", json_number(quantile(raw.lat_us, 0.99))},
                                   {"samples", json_number(double(store.lat_us.size()))}});
      if (small) extra = with_cpu(std::move(extra), 3.0);
      emit(figure{"dist", base + " rtt", median(store.lat_us), "us", median(raw.lat_us),
                  small ? std::optional<double>{2.0} : std::nullopt, true,
                  with_paired(extra, paired)});
      if (in_rounds) {
        // Context for the figure above (no target of its own): the raw baseline in rounds.
        std::vector<std::pair<std::string, std::string>> r = {
            {"samples", json_number(double(store.lat_us.size()))},
            {"cpu_us_per_op", json_number(store.cpu_us_per_op())},
            {"limit_cpu_us_per_op", json_number(rounds.cpu_us_per_op())},
            {"cswitch_per_op", json_number(store.cswitches_per_op())},
            {"limit_cswitch_per_op", json_number(rounds.cswitches_per_op())}};
        emit(figure{"dist", base + " rtt vs_raw_rounds", median(store.lat_us), "us",
                    median(rounds.lat_us), std::nullopt, true, with_paired(r, paired_rounds)});
      }
      return;
    }
    // Against raw TCP: 0.9 per worker at 1x1, 0.85 aggregate for 2x2 pushpull (issue 13).
    const bool big = size >= 1 * MiB;
    const double goal = plain ? (cfg.tls ? 0.7 : 0.95) : W == 1 ? 0.9 : 0.85;
    const std::optional<double> target =
        big && (plain || W == 1) ? std::optional<double>{goal} : std::nullopt;
    const std::optional<double> aggregate_target =
        big && (plain || o == op_kind::pushpull) ? std::optional<double>{goal} : std::nullopt;
    auto extra = common;
    extra.insert(extra.begin(), {{"op_us", json_number(median(store.op_s) * 1e6)},
                                 {"limit_op_us", json_number(median(raw.op_s) * 1e6)}});
    if (W == 1) {
      if (big && !plain) extra = with_cpu(std::move(extra), 1.3);
      emit(figure{"dist", base + " throughput", median(store.per_client), "B/s",
                  median(raw.per_client), target, false, with_paired(extra, paired)});
    } else {
      emit(figure{"dist", base + " throughput per_worker", median(store.per_client), "B/s",
                  median(raw.per_client), target, false, with_paired(extra, paired)});
      emit(figure{"dist", base + " throughput aggregate", median(store.aggregate), "B/s",
                  median(raw.aggregate), aggregate_target, false, with_paired(extra, paired_agg)});
    }
  }

  // Where a many-keys case's bytes go: one part per server, all its keys' bytes.
  std::vector<part> many_parts(std::size_t c) const {
    const auto mc = many_keys_cases(cfg.quick)[c];
    std::vector<part> per(static_cast<std::size_t>(S));
    for (int s = 0; s < S; ++s)
      per[static_cast<std::size_t>(s)].server = static_cast<std::uint32_t>(s);
    for (std::size_t i = 0; i < mc.sizes.size(); ++i)
      for (const auto& p :
           plan_parts(many_key_of(c, i), mc.sizes[i], static_cast<std::uint32_t>(S)))
        per[p.server].bytes += p.bytes;
    std::vector<part> out;
    for (const auto& p : per)
      if (p.bytes) out.push_back(p);
    return out;
  }

  // One pushpull call of every key of many-keys case c per operation (one call at a time),
  // against raw TCP moving the same bytes as one message per server.
  void run_many_case(cluster& cl, raw_mesh& mesh, std::size_t c) {
    const auto mc = many_keys_cases(cfg.quick)[c];
    const std::string name = prefix + " many_keys " + mc.name + " pushpull";
    if (!cfg.filter.empty() && name.find(cfg.filter) == std::string::npos) return;
    const auto parts = many_parts(c);
    std::size_t bytes = 0;
    for (const auto& p : parts)
      bytes += p.bytes;
    const std::size_t wire = 2 * bytes;
    const std::size_t n = ops_for(wire, true);
    case_stats raw, store;
    std::vector<double> paired;
    for (int b = 0; b < cfg.blocks; ++b) {
      const block_times rb = mesh.run(parts, op_kind::pushpull, n, 1, 1, false);
      const block_times sb = run_store_block(cl, "many", c, n, 1, 1, false);
      raw.add(rb, wire);
      store.add(sb, wire);
      paired.push_back(block_rates(sb, wire).per_client / block_rates(rb, wire).per_client);
    }
    emit(figure{
        "dist",
        name + " throughput",
        median(store.per_client),
        "B/s",
        median(raw.per_client),
        0.6,
        false,
        {{"keys", json_number(double(mc.sizes.size()))},
         {"bytes_per_call", json_number(double(bytes))},
         {"op_us", json_number(median(store.op_s) * 1e6)},
         {"limit_op_us", json_number(median(raw.op_s) * 1e6)},
         {"ops_per_block", json_number(double(n))},
         {"blocks", json_number(cfg.blocks)},
         {"cpu_us_per_op", json_number(store.cpu_us_per_op())},
         {"limit_cpu_us_per_op", json_number(raw.cpu_us_per_op())},
         {"paired_ratio", json_number(median(paired))},
         {"paired_ratio_min", json_number(*std::min_element(paired.begin(), paired.end()))},
         {"paired_ratio_max", json_number(*std::max_element(paired.begin(), paired.end()))}}});
  }

  void run(const std::string& self_exe) {
    const auto t_start = clock::now();
    prefix = std::to_string(S) + "x" + std::to_string(W);
    std::size_t max_part = 64;
    std::vector<std::size_t> stored(static_cast<std::size_t>(S), 0);
    for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
      for (const auto& p : plan_parts(key_of(i), cfg.sizes[i], static_cast<std::uint32_t>(S))) {
        max_part = std::max(max_part, p.bytes);
        stored[p.server] += p.bytes;
      }
    for (std::size_t c = 0; c < many_keys_cases(cfg.quick).size(); ++c)
      for (const auto& p : many_parts(c)) {
        max_part = std::max(max_part, p.bytes);
        stored[p.server] += p.bytes;
      }
    std::optional<raw_mesh> mesh;
    std::optional<cluster> baseline;
    if (cfg.tls || cfg.timeline) {
      baseline.emplace(S, W, self_exe, cfg.quick, false);
      baseline->collect("JOINED", 60000);
      baseline->send_all("init");
      baseline->collect("READY", 120000);
      plain = &*baseline;
    } else {
      mesh.emplace(S, W, max_part);
    }
    // --timeline: every process of the measured cluster records; its files are counted and
    // removed at the end.
    timeline_files files;
    cluster cl(S, W, self_exe, cfg.quick, cfg.tls, cfg.timeline ? files.base : std::string{});
    cl.collect("JOINED", 60000);
    std::vector<std::size_t> base_rss;
    for (int s = 0; s < S; ++s)
      base_rss.push_back(read_mem(cl.server(s).pid).rss);
    cl.send_all("init");
    cl.collect("READY", 120000);
    std::cerr << "bench_dist: " << prefix << " cluster ready after " << seconds_since(t_start)
              << " s\n";

    // Memory phase: one round, RSS; R - 1 more, RSS and the peak.
    // --filter memory: the memory phase alone (no timing case has that word in its name).
    const bool mem_only = cfg.filter == "memory";
    const bool mem = (cfg.filter.empty() || mem_only) && !cfg.tls && !cfg.timeline;
    if (mem) {
      cl.send_all("mem 1");
      cl.collect("DONE", 120000);
      std::vector<std::size_t> rss1;
      for (int s = 0; s < S; ++s)
        rss1.push_back(read_mem(cl.server(s).pid).rss);
      cl.send_all("mem " + std::to_string(cfg.mem_rounds - 1));
      cl.collect("DONE", 300000);
      for (int s = 0; s < S; ++s) {
        const proc_figures m = read_mem(cl.server(s).pid);
        const std::string sn = prefix + " server " + std::to_string(s);
        emit_mem_peak(sn + " mem_peak", m.hwm, stored[s], base_rss[s], cfg.mem_rounds);
        emit(figure{"dist",
                    sn + " rss_growth",
                    (double(m.rss) - double(rss1[s])) / double(cfg.mem_rounds - 1),
                    "B/round",
                    std::nullopt,
                    std::nullopt,
                    true,
                    {{"rss_after_round1_B", json_number(double(rss1[s]))},
                     {"rss_after_last_round_B", json_number(double(m.rss))},
                     {"rounds", json_number(cfg.mem_rounds)}}});
      }
    }

    for (std::size_t si = 0; si < cfg.sizes.size() && !mem_only; ++si)
      for (op_kind o : all_ops)
        for (bool rtt : {true, false})
          run_case(cl, mesh ? &*mesh : nullptr, o, si, rtt);
    for (std::size_t c = 0; mesh && c < many_keys_cases(cfg.quick).size(); ++c)
      run_many_case(cl, *mesh, c);

    for (int s = 0; s < S && mem && !mem_only; ++s) {
      const proc_figures m = read_mem(cl.server(s).pid);
      emit(figure{"dist",
                  prefix + " server " + std::to_string(s) + " mem_peak whole_run",
                  double(m.hwm) / double(stored[s]),
                  "x stored bytes",
                  mem_bound,
                  std::nullopt,
                  true,
                  {{"peak_B", json_number(double(m.hwm))},
                   {"stored_B", json_number(double(stored[s]))},
                   {"rss_end_B", json_number(double(m.rss))},
                   {"incremental_x",
                    json_number((double(m.hwm) - double(base_rss[s])) / double(stored[s]))}}});
    }
    if (!cl.shut_down(30000)) die(prefix + ": the cluster did not shut down in order");
    if (baseline && !baseline->shut_down(30000))
      die(prefix + ": the baseline cluster did not shut down in order");
    if (cfg.timeline) files.report(prefix);
    std::cerr << "bench_dist: " << prefix << " done after " << seconds_since(t_start) << " s\n";
  }
};

}  // namespace

void emit_mem_peak(const std::string& name, std::size_t peak, std::size_t stored,
                   std::size_t rss_before, int rounds) {
  emit(figure{"dist",
              name,
              double(peak) / double(stored),
              "x stored bytes",
              mem_bound,
              std::nullopt,
              true,
              {{"peak_B", json_number(double(peak))},
               {"stored_B", json_number(double(stored))},
               {"rss_before_init_B", json_number(double(rss_before))},
               {"incremental_x", json_number((double(peak) - double(rss_before)) / double(stored))},
               {"rounds", json_number(rounds)}}});
}

int driver_main(bool quick, bool tls, bool timeline, const std::string& filter,
                const std::string& topology, int blocks, bool shm) {
  bench_config cfg = make_config(quick);
  cfg.tls = tls;
  cfg.timeline = timeline;
  cfg.filter = filter;
  cfg.topology = topology;
  if (blocks > 0) cfg.blocks = blocks;
  char path[4096];
  const ssize_t len = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (len <= 0) die("cannot find this program (/proc/self/exe)");
  const std::string self_exe(path, static_cast<std::size_t>(len));
  std::cerr << "bench_dist: " << (quick ? "quick" : "full") << " mode, "
            << std::thread::hardware_concurrency() << " hardware threads, server " << KVACTOR_SERVER
            << ", big-array bound " << big_array_bound() << " elements\n";
  if (shm) return shm_main(cfg, self_exe);
  const auto t_start = clock::now();
  for (const auto& [S, W] : cfg.topologies) {
    if (!cfg.topology.empty() && cfg.topology != std::to_string(S) + "x" + std::to_string(W))
      continue;
    topology_run t{cfg, S, W, ""};
    t.run(self_exe);
    if (!cfg.tls && !cfg.timeline) big_key_case(cfg, self_exe, S, W);
  }
  std::cerr << "bench_dist: " << seconds_since(t_start) << " s\n";
  return 0;
}

}  // namespace kvbench::dist
