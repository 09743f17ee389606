#include "part_plan.hpp"

#include <algorithm>

#include "kvactor/detail/thread_pool.hpp"

namespace kvactor::detail {

namespace {
// Bytes of one row in the largest message a part may need: a row-sparse push sends each row
// with its int64 id.
std::uint64_t row_wire_bytes(const key_info& info) {
  return row_size(info) * size_of(info.dtype) + 8;
}
}  // namespace

std::uint64_t row_size(const key_info& info) {
  return info.shape.ndim() ? info.numel() / static_cast<std::uint64_t>(info.shape[0]) : 1;
}

status check_rows_fit(const key_info& info, std::uint64_t max_payload) {
  if (row_wire_bytes(info) <= max_payload) return {};
  return status{errc::invalid_argument,
                "key " + info.name() + " of shape " + info.shape.to_string() + ": one row is " +
                    std::to_string(row_wire_bytes(info) - 8) +
                    " bytes, and a row travels whole in one message of at most " +
                    std::to_string(max_payload) + " bytes (KVACTOR_MAX_MESSAGE_BYTES)"};
}

part_list plan_parts(const key_info& info, std::uint32_t servers, std::uint64_t big_bound,
                     std::uint64_t max_payload) {
  part_list parts;
  const std::uint64_t n = info.numel(), row = row_size(info), rows = n / row;
  const std::size_t h = info.user_key.hash();
  const std::uint64_t rows_per_message =
      std::max<std::uint64_t>(1, max_payload / row_wire_bytes(info));
  const std::uint64_t needed =
      std::max<std::uint64_t>(1, (rows + rows_per_message - 1) / rows_per_message);
  // A big key is split over all servers by whole rows (so a row-sparse request to a part names
  // whole rows of it); small keys go whole to one server unless they do not fit a message.
  const bool spread = n >= big_bound && servers > 1 && rows > 1;
  const std::uint64_t count = spread ? std::max<std::uint64_t>(servers, needed) : needed;
  if (count == 1) {
    parts.push_back(
        part_plan{static_cast<std::uint32_t>(h % servers), 0, 1, 0, n, 0, rows, part_hash(h, 0)});
    return parts;
  }
  const auto of = static_cast<std::uint32_t>(count);
  for (std::uint32_t s = 0; s < of; ++s) {
    std::size_t b, e;
    split_range(static_cast<std::size_t>(rows), of, s, b, e);
    if (b == e) continue;  // fewer rows than servers
    const auto server = static_cast<std::uint32_t>(spread ? s % servers : (h + s) % servers);
    parts.push_back(part_plan{server, s, of, b * row, (e - b) * row, b, e, part_hash(h, s)});
  }
  return parts;
}

}  // namespace kvactor::detail
