// The facade's pulls into row-sparse outputs (kvactor/row_sparse_output.hpp). row_sparse_pull
// reads each output's row ids on the host (sorted, unique), allocates that many rows on the
// output's device, has the store copy just those rows there (store_impl::row_sparse_pull with
// row_layout::compact: the key is never densified), converts them when the output asks for another
// element type, and gives each output its new row_sparse_tensor only once the whole call has
// succeeded. pull follows MXNet's ignore_sparse rule for row-sparse outputs. Thread-safety: the
// functions may be called from any thread; row_sparse_output_state is guarded by its mutex.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>

#include "kvactor/kvstore.hpp"
#include "kvactor/row_sparse_output.hpp"

namespace kvactor::detail {

class store_impl;

struct row_sparse_output_state {
  kvactor::device dev = kvactor::device::cpu();
  std::optional<kvactor::dtype> type;

  std::mutex mu;
  std::condition_variable idle;
  std::size_t in_flight = 0;  // pulls into it not yet complete; guarded by mu
  row_sparse_tensor value;    // guarded by mu
  // Pulls into it are numbered as issued; one that completes after a later one (another key's
  // row pulls run independently) does not overwrite the later one's rows. Guarded by mu.
  std::uint64_t issued = 0, applied = 0;
};

future<void> pull_rows_into(store_impl& s, const key_list& keys, const sparse_output_list& outs,
                            const value_list& row_ids, int priority);

/// MXNet's pull with row-sparse outputs: skipped (nothing written) with ignore_sparse,
/// refused (invalid_argument: "use row_sparse_pull") without.
future<void> pull_sparse_outputs(const key_list& keys, const sparse_output_list& outs,
                                 bool ignore_sparse);

}  // namespace kvactor::detail
