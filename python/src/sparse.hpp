// kvactor.RowSparse: MXNet's RowSparseNDArray for the store's Python API. A value (rows, their
// int64 indices, the full shape) that init and push take, and an output that pull and
// row_sparse_pull fill: after a pull into it has completed, it holds the rows that pull
// brought (MXNet's `out` of stype row_sparse). It keeps its own copy of the rows and indices
// (they are few: that is what row-sparse is for), so its .data and .indices are NumPy views of
// memory the object owns.
// Thread-safety: GIL held for every member, as Python calls them.
#pragma once

#include <pybind11/pybind11.h>

#include "kvactor/row_sparse.hpp"
#include "kvactor/row_sparse_output.hpp"

namespace kvactor::python {

namespace py = pybind11;

class py_row_sparse {
 public:
  explicit py_row_sparse(row_sparse_tensor value);

  /// The rows of the last pull into it that completed, else the value it was made with.
  /// Waits (GIL released) while a pull into it is in flight.
  row_sparse_tensor current() const;
  /// Where the store writes a pull into it.
  const row_sparse_output& output() const noexcept { return out_; }

 private:
  row_sparse_tensor initial_;
  row_sparse_output out_;
};

void bind_sparse(py::module_& m);

/// Whether h is a kvactor.RowSparse (a type check without pybind11's type lookup, which
/// hashes the C++ type's name: this runs for every argument of every call).
bool is_row_sparse(py::handle h) noexcept;

}  // namespace kvactor::python
