// bench_dist's configuration: the operations, sizes, topologies and block budgets of a run,
// and where a key's parts live (the store's rule, restated for the raw TCP baseline).
// Thread-safety: plain values and functions without state (big_array_bound reads the
// environment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kvbench::dist {

constexpr std::size_t KiB = 1024, MiB = 1024 * 1024;

/// Prints "bench_dist: <what>" on stderr and exits 1.
[[noreturn]] void die(const std::string& what);

/// The words of s (split at white space): a worker command or answer.
std::vector<std::string> split(const std::string& s);

enum class op_kind { push, pull, pushpull };
inline const op_kind all_ops[] = {op_kind::push, op_kind::pull, op_kind::pushpull};

const char* op_name(op_kind o);
op_kind parse_op(const std::string& s);
std::size_t up_bytes(op_kind o, std::size_t n);
std::size_t down_bytes(op_kind o, std::size_t n);

struct bench_config {
  bool quick = false;
  std::vector<std::size_t> sizes;
  std::vector<std::pair<int, int>> topologies;  // (servers, workers)
  int blocks = 5;
  std::size_t tput_block_bytes = 0;  // wire bytes per worker per throughput block
  std::size_t rtt_block_bytes = 0;
  std::size_t max_ops_tput = 0, max_ops_rtt = 0;
  std::size_t min_ops = 3;
  int mem_rounds = 20;
  std::string filter;     // --filter: only cases whose name contains it (no memory figures)
  std::string topology;   // --topology: only this one ("1x1" or "2x2")
  bool tls = false;       // --tls: TLS store against plaintext store
  bool timeline = false;  // --timeline: the store with KVACTOR_TIMELINE against it without
  /// --mem-key BYTES: the memory phase only, on one key of this size (no timing cases, no
  /// many-keys sets, no raw baseline). 0: off.
  std::size_t mem_key = 0;
};

/// The environment variable through which --mem-key reaches the workers.
inline constexpr const char* mem_key_env = "KVBENCH_DIST_MEM_KEY";

/// The cases of a run; with KVBENCH_DIST_MEM_KEY set, that one key size only (--mem-key).
bench_config make_config(bool quick);

/// The "many small keys" cases: one pushpull call of every key of a set, against raw TCP
/// moving the same bytes as one message per server.
struct many_keys_case {
  std::string name;                // "1000x4B"
  std::vector<std::size_t> sizes;  // bytes of each key
};
/// None with --mem-key.
std::vector<many_keys_case> many_keys_cases(bool quick);
std::int64_t many_key_of(std::size_t case_index, std::size_t i);

std::int64_t key_of(std::size_t size_index);
std::size_t window_for(std::size_t bytes);
std::uint64_t big_array_bound();

// One part of a key: the server that holds it and its bytes. The worker's rule
// (actors/src/dist/part_plan.cpp, plan_parts): split over all servers from the big-array bound,
// else whole on hash(key) mod S.
struct part {
  std::uint32_t server;
  std::size_t bytes;
};
std::vector<part> plan_parts(std::int64_t k, std::size_t bytes, std::uint32_t servers);

}  // namespace kvbench::dist
