// MXNet's call arguments, read from Python: keys (an int, a str, or a list of them) and
// values or outputs in MXNet's forms (one array, a list, a list of lists), each array a
// tensor view (arrays.hpp) or a kvactor.RowSparse (sparse.hpp). Which form pairs with which
// key is the store's rule (kvactor/kvstore.hpp), so nothing is reinterpreted here.
// Thread-safety: GIL held.
#pragma once

#include <string>

#include <pybind11/pybind11.h>

#include "arrays.hpp"
#include "kvactor/kvstore.hpp"

namespace kvactor::python {

namespace py = pybind11;

/// An int (or anything with __index__), a str, or a list/tuple of those.
key_list to_keys(py::handle keys);

/// A converted value or output argument: dense arrays, or RowSparse objects (never both).
struct value_arg {
  bool sparse = false;
  value_list dense;
  sparse_list rows;                // sparse values (init, push)
  sparse_output_list row_outputs;  // sparse outputs (pull, row_sparse_pull)
};

/// Values (read) or outputs (write: dense arrays must be writable; RowSparse objects become
/// outputs). The objects go into keep. `what` names the argument in errors ("value", "out").
value_arg to_values(py::handle v, access mode, keepalive& keep, const std::string& what);

/// Dense arrays only (row ids, pushpull's values): RowSparse is refused with a TypeError.
value_list to_dense(py::handle v, access mode, keepalive& keep, const std::string& what);

}  // namespace kvactor::python
