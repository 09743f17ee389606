// The worker role: a dist_sync store driven through stdin/stdout. Commands (one line each,
// one answer line each): "init" (READY), "mem R" (R rounds of push, pull and pushpull of
// every key, one call at a time; DONE), "warm OP SIZE_INDEX N WINDOW" (WARM), "run OP
// SIZE_INDEX N WINDOW WANT_LAT" (a barrier, then N timed operations; "RES rank t0 t1 cpu_ns
// cswitches [latencies]") and "quit". OP "many" with a many-keys case for SIZE_INDEX (and a
// window of 1) is one pushpull call of every key of that case. "big BYTES R" (DONE): the
// big-key memory case's key only (init, then R rounds of push, pull, pushpull, one at a time).
#include <kvactor/kvstore.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "config.hpp"
#include "proc_stats.hpp"
#include "roles.hpp"

namespace kvbench::dist {

namespace {

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace

int worker_main(bool quick) {
  const bench_config cfg = make_config(quick);
  try {
    auto kv = kvactor::create("dist_sync");
    const int rank = kv.rank();
    say("JOINED " + std::to_string(rank));
    std::vector<kvactor::key> keys;
    std::vector<kvactor::tensor> values;
    std::vector<std::vector<kvactor::tensor>> outs(cfg.sizes.size());  // per size, per slot
    for (std::size_t i = 0; i < cfg.sizes.size(); ++i) {
      keys.push_back(key_of(i));
      values.push_back(
          kvactor::tensor::zeros({static_cast<std::int64_t>(cfg.sizes[i] / sizeof(float))}));
    }
    // The many-keys cases' keys, values and outputs (config.hpp's many_keys_cases).
    const auto many = many_keys_cases(quick);
    std::vector<std::vector<kvactor::key>> mkeys(many.size());
    std::vector<std::vector<kvactor::tensor>> mvals(many.size()), mouts(many.size());
    for (std::size_t c = 0; c < many.size(); ++c)
      for (std::size_t i = 0; i < many[c].sizes.size(); ++i) {
        mkeys[c].emplace_back(many_key_of(c, i));
        const kvactor::shape s{static_cast<std::int64_t>(many[c].sizes[i] / sizeof(float))};
        mvals[c].push_back(kvactor::tensor::full(s, 1));
        mouts[c].push_back(kvactor::tensor::zeros(s));
      }
    auto slots = [&](std::size_t si, std::size_t n) -> std::vector<kvactor::tensor>& {
      while (outs[si].size() < n)
        outs[si].push_back(kvactor::tensor::zeros(values[si].shape()));
      return outs[si];
    };
    bool many_op = false;
    auto issue = [&](op_kind o, std::size_t si, const kvactor::tensor& out) {
      if (many_op) return kv.pushpull(mkeys[si], mvals[si], mouts[si]);
      switch (o) {
        case op_kind::push:
          return kv.push(keys[si], values[si]);
        case op_kind::pull:
          return kv.pull(keys[si], out);
        default:
          return kv.pushpull(keys[si], values[si], out);
      }
    };
    auto run_ops = [&](op_kind o, std::size_t si, std::size_t n, std::size_t window,
                       std::vector<long long>* lat) {
      auto& out = slots(si, window);
      std::vector<kvactor::future<void>> fl(window);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t slot = i % window;
        if (fl[slot].valid()) fl[slot].get();
        const long long t = lat ? mono_ns() : 0;
        fl[slot] = issue(o, si, out[slot]);
        if (lat) {
          fl[slot].get();
          lat->push_back(mono_ns() - t);
        }
      }
      for (auto& f : fl)
        if (f.valid()) f.get();
    };

    std::string line;
    while (std::getline(std::cin, line)) {
      const auto t = split(line);
      if (t.empty()) continue;
      if (t[0] == "init") {
        kv.init(keys, values).get();
        for (std::size_t c = 0; c < many.size(); ++c)
          kv.init(mkeys[c], mvals[c]).get();
        kv.barrier().get();
        for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
          slots(i, 1);
        say("READY");
      } else if (t[0] == "mem" && t.size() == 2) {
        const int rounds = std::stoi(t[1]);
        std::vector<kvactor::tensor> out0;
        for (std::size_t i = 0; i < cfg.sizes.size(); ++i)
          out0.push_back(slots(i, 1)[0]);
        for (int r = 0; r < rounds; ++r) {
          auto p = kv.push(keys, values);
          kv.pull(keys, out0).get();
          kv.pushpull(keys, values, out0).get();
          p.get();
        }
        say("DONE");
      } else if ((t[0] == "warm" && t.size() == 5) || (t[0] == "run" && t.size() == 6)) {
        many_op = t[1] == "many";
        const op_kind o = many_op ? op_kind::pushpull : parse_op(t[1]);
        const std::size_t si = std::stoul(t[2]), n = std::stoul(t[3]), window = std::stoul(t[4]);
        if (si >= (many_op ? many.size() : cfg.sizes.size()) || window == 0 ||
            (many_op && window != 1))
          die("bad command: " + line);
        if (t[0] == "warm") {
          run_ops(o, si, n, window, nullptr);
          say("WARM");
          continue;
        }
        const bool want_lat = t[5] == "1";
        std::vector<long long> lat;
        lat.reserve(want_lat ? n : 0);
        kv.barrier().get();
        const long long c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        const long long s0 = self_cswitches();
        const long long t0 = mono_ns();
        run_ops(o, si, n, window, want_lat ? &lat : nullptr);
        const long long t1 = mono_ns();
        const long long c1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        const long long s1 = self_cswitches();
        std::string res = "RES " + std::to_string(rank) + " " + std::to_string(t0) + " " +
                          std::to_string(t1) + " " + std::to_string(c1 - c0) + " " +
                          std::to_string(s1 - s0);
        for (long long l : lat)
          res += " " + std::to_string(l);
        say(res);
      } else if (t[0] == "big" && t.size() == 3) {
        // The big-key memory case (big_key.cpp): this key only, in a cluster of its own.
        const kvactor::shape s{static_cast<std::int64_t>(std::stoull(t[1]) / sizeof(float))};
        const auto value = kvactor::tensor::zeros(s), out = kvactor::tensor::zeros(s);
        kv.init(big_key, value).get();
        kv.barrier().get();
        for (int r = 0, rounds = std::stoi(t[2]); r < rounds; ++r) {
          kv.push(big_key, value).get();
          kv.pull(big_key, out).get();
          kv.pushpull(big_key, value, out).get();
        }
        say("DONE");
      } else if (t[0] == "quit") {
        break;
      } else {
        die("worker: unknown command: " + line);
      }
    }
  } catch (const kvactor::error& e) {
    die(std::string{"worker: kvactor::error: "} + e.what());
  }
  return 0;  // the store is gone: rank 0 has stopped the servers
}

}  // namespace kvbench::dist
