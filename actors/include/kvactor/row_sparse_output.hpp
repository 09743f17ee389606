// row_sparse_output: where kvstore::row_sparse_pull writes a row-sparse result, MXNet's
// RowSparseNDArray given as `out`. How many rows a pull brings is known only from its row
// ids, so the output is not a row_sparse_tensor (a value, whose indices and rows are fixed)
// but a handle the store fills: each pull that succeeds gives it a new row_sparse_tensor
// holding exactly the requested rows (sorted, unique) and their values, on the output's
// device (rows and indices), of its element type (the key's unless given).
//
//   kvactor::row_sparse_output out;                       // host, the key's type
//   kv.row_sparse_pull("w", out, kvactor::tensor::from<std::int64_t>({3, 1, 3}, {3}));
//   kvactor::row_sparse_tensor rows = out.value();        // indices {1, 3}, data 2 x row
//
// A pull that fails leaves the output as it was. value() waits while a pull into the output
// is in flight (as a dense output's checked accessors wait for the store's write lease), so
// reading it after the call returned is safe without waiting on the future first.
// Thread-safety: a handle to shared state (copies are the same output); all members may be
// called from any thread.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <vector>

#include "kvactor/row_sparse.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor {

namespace detail {
struct row_sparse_output_state;
}

class row_sparse_output {
 public:
  /// On the host, of the key's element type.
  row_sparse_output();
  /// On device d (the rows and the indices), of the key's element type.
  explicit row_sparse_output(kvactor::device d);
  /// On device d, of element type t (the pulled rows converted as dense pulls convert).
  row_sparse_output(kvactor::device d, kvactor::dtype t);

  kvactor::device device() const noexcept;
  /// The element type asked for, or nothing for the key's.
  std::optional<kvactor::dtype> dtype() const noexcept;
  /// The rows of the last pull into it that succeeded; undefined before any. Waits while a
  /// pull into it is in flight.
  row_sparse_tensor value() const;

  /// Internal: the shared state the store fills.
  const std::shared_ptr<detail::row_sparse_output_state>& state() const noexcept { return s_; }

 private:
  std::shared_ptr<detail::row_sparse_output_state> s_;
};

/// One row-sparse output, a list (one per key of a key list, or several for one key), or a
/// list of lists (one list per key), paired with keys as value_list's outputs are.
class sparse_output_list {
 public:
  enum class form { none, single, list, nested };

  sparse_output_list() = default;
  // Implicit by design: callers pass one output, a list or a list of lists as they have it.
  // NOLINTBEGIN(google-explicit-constructor)
  sparse_output_list(const row_sparse_output& o) : flat_{o}, form_(form::single) {}
  sparse_output_list(std::vector<row_sparse_output> os) : flat_(std::move(os)), form_(form::list) {}
  sparse_output_list(std::initializer_list<row_sparse_output> os) : flat_(os), form_(form::list) {}
  sparse_output_list(std::vector<std::vector<row_sparse_output>> os)
      : nested_(std::move(os)), form_(form::nested) {}
  // NOLINTEND(google-explicit-constructor)

  form shape() const noexcept { return form_; }
  /// The output of form::single, or the outputs of form::list.
  const std::vector<row_sparse_output>& flat() const noexcept { return flat_; }
  const std::vector<std::vector<row_sparse_output>>& nested() const noexcept { return nested_; }

 private:
  std::vector<row_sparse_output> flat_;
  std::vector<std::vector<row_sparse_output>> nested_;
  form form_ = form::none;
};

}  // namespace kvactor
