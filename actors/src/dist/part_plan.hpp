// How a worker places a key on the servers: small keys whole on server hash(key) mod S, big
// ones (at least KVACTOR_BIGARRAY_BOUND elements) split by whole rows over all servers, and
// any key whose bytes would not fit in one message split further, into parts that each fit
// (a server may then hold several parts of one key).
// Thread-safety: pure functions.
#pragma once

#include <boost/container/small_vector.hpp>

#include <cstdint>

#include "../key_registry.hpp"
#include "kvactor/error.hpp"

namespace kvactor::detail {

struct part_plan {
  std::uint32_t server = 0;
  std::uint32_t index = 0;   // part number on the wire
  std::uint32_t of = 1;      // parts the key is split into (some may be empty and unsent)
  std::uint64_t offset = 0;  // in elements
  std::uint64_t count = 0;
  std::uint64_t row_begin = 0, row_end = 0;  // the rows it holds
  std::uint64_t stream = 0;
};

/// A key's parts: inline for keys of up to two parts (no allocation per operation).
using part_list = boost::container::small_vector<part_plan, 2>;

/// The one rule that spreads a key's parts: a part's ordering stream on the worker's
/// connection and its shard on the server both come from it (part 0 of a whole key: the key's
/// own hash).
inline std::uint64_t part_hash(std::size_t key_hash, std::uint32_t part) noexcept {
  return key_hash ^ (std::uint64_t{part} * 0x9e3779b97f4a7c15ull);
}

/// Elements per row: the key's shape without its first dimension.
std::uint64_t row_size(const key_info& info);

/// ok, or invalid_argument naming the limit when one row of the key (with the 8-byte id a
/// row-sparse message adds) is over `max_payload` bytes: no split could send it.
status check_rows_fit(const key_info& info, std::uint64_t max_payload);

/// The parts of a key that passed check_rows_fit; every part's messages (dense, or its rows
/// with their ids) carry at most `max_payload` bytes.
part_list plan_parts(const key_info& info, std::uint32_t servers, std::uint64_t big_bound,
                     std::uint64_t max_payload);

}  // namespace kvactor::detail
