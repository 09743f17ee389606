#include "config.hpp"

#include <kvactor/detail/thread_pool.hpp>
#include <kvactor/key.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace kvbench::dist {

[[noreturn]] void die(const std::string& what) {
  std::cerr << "bench_dist: " << what << "\n";
  std::exit(1);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string t;
  while (in >> t)
    out.push_back(t);
  return out;
}

const char* op_name(op_kind o) {
  switch (o) {
    case op_kind::push:
      return "push";
    case op_kind::pull:
      return "pull";
    default:
      return "pushpull";
  }
}
op_kind parse_op(const std::string& s) {
  if (s == "push") return op_kind::push;
  if (s == "pull") return op_kind::pull;
  if (s == "pushpull") return op_kind::pushpull;
  die("unknown operation " + s);
}
std::size_t up_bytes(op_kind o, std::size_t n) {
  return o == op_kind::pull ? 0 : n;
}
std::size_t down_bytes(op_kind o, std::size_t n) {
  return o == op_kind::push ? 0 : n;
}

bench_config make_config(bool quick) {
  bench_config c;
  c.quick = quick;
  c.topologies = {{1, 1}, {2, 2}};
  if (quick) {
    c.sizes = {4, 1 * MiB, 16 * MiB};
    c.blocks = 2;
    c.tput_block_bytes = 24 * MiB;
    c.rtt_block_bytes = 12 * MiB;
    c.max_ops_tput = 300;
    c.max_ops_rtt = 100;
    c.min_ops = 2;
    c.mem_rounds = 3;
  } else {
    c.sizes = {4, 4 * KiB, 1 * MiB, 16 * MiB, 64 * MiB};
    c.blocks = 9;
    c.tput_block_bytes = 64 * MiB;
    c.rtt_block_bytes = 48 * MiB;
    c.max_ops_tput = 1000;
    c.max_ops_rtt = 200;
    c.min_ops = 2;
    c.mem_rounds = 20;
  }
  if (const char* v = std::getenv(mem_key_env)) {
    c.mem_key = std::strtoull(v, nullptr, 10);
    if (c.mem_key < sizeof(float)) die(std::string{"bad "} + mem_key_env + ": " + v);
    c.sizes = {c.mem_key};
    c.mem_rounds = 3;  // a round of a 1 GiB key moves 4 GiB per worker
  }
  return c;
}

std::vector<many_keys_case> many_keys_cases(bool quick) {
  if (std::getenv(mem_key_env)) return {};
  // Sizes spread evenly on a log scale from 4 B to 4 KiB, in whole floats.
  auto spread = [](std::size_t n) {
    std::vector<std::size_t> sizes;
    for (std::size_t i = 0; i < n; ++i) {
      const double b = 4.0 * std::pow(1024.0, double(i) / double(n - 1));
      sizes.push_back(std::max<std::size_t>(4, static_cast<std::size_t>(b) / 4 * 4));
    }
    return sizes;
  };
  if (quick) return {{"100x4B-4KiB", spread(100)}};
  return {{"1000x4B", std::vector<std::size_t>(1000, 4)},
          {"1000x4B-4KiB", spread(1000)},
          {"1000x4KiB", std::vector<std::size_t>(1000, 4 * KiB)}};
}

std::int64_t many_key_of(std::size_t case_index, std::size_t i) {
  return 100000 + static_cast<std::int64_t>(case_index * 10000 + i);
}

std::int64_t key_of(std::size_t size_index) {
  return 100 + static_cast<std::int64_t>(size_index);
}

std::size_t window_for(std::size_t bytes) {
  return bytes >= 1 * MiB ? 2 : 8;
}

std::uint64_t big_array_bound() {
  for (const char* name : {"KVACTOR_BIGARRAY_BOUND", "MXNET_KVSTORE_BIGARRAY_BOUND"})
    if (const char* v = std::getenv(name)) return std::strtoull(v, nullptr, 10);
  return 1000000;
}

std::vector<part> plan_parts(std::int64_t k, std::size_t bytes, std::uint32_t servers) {
  const std::size_t n = bytes / sizeof(float);
  std::vector<part> parts;
  if (n >= big_array_bound() && servers > 1) {
    for (std::uint32_t s = 0; s < servers; ++s) {
      std::size_t b, e;
      kvactor::split_range(n, servers, s, b, e);
      parts.push_back(part{s, (e - b) * sizeof(float)});
    }
  } else {
    parts.push_back(part{static_cast<std::uint32_t>(kvactor::key(k).hash() % servers), bytes});
  }
  return parts;
}

}  // namespace kvbench::dist
