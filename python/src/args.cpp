#include "args.hpp"

#include <utility>
#include <vector>

#include "sparse.hpp"

namespace kvactor::python {

namespace {

bool is_sequence(py::handle h) {
  return py::isinstance<py::list>(h) || py::isinstance<py::tuple>(h);
}

key one_key(py::handle k) {
  if (PyLong_CheckExact(k.ptr())) {  // the common key, without PyNumber_Index's new reference
    const long long v = PyLong_AsLongLong(k.ptr());
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return key{static_cast<std::int64_t>(v)};
  }
  if (py::isinstance<py::str>(k)) return key{k.cast<std::string>()};
  if (!PyBool_Check(k.ptr()) && PyIndex_Check(k.ptr())) {
    const long long v =
        PyLong_AsLongLong(py::reinterpret_steal<py::object>(PyNumber_Index(k.ptr())).ptr());
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return key{static_cast<std::int64_t>(v)};
  }
  throw py::type_error("a key is an int or a str, got " +
                       std::string(py::str(py::type::handle_of(k).attr("__qualname__"))));
}

// The forms of value_list and its sparse relatives, gathered before the kind is known.
template <class T>
struct shaped {
  enum { single, list, nested } form = single;
  T one;
  std::vector<T> flat;
  std::vector<std::vector<T>> lists;

  template <class L>
  L to() && {
    if (form == single) return L(one);
    if (form == list) return L(std::move(flat));
    return L(std::move(lists));
  }
};

template <class T, class Leaf>
shaped<T> walk(py::handle v, const Leaf& leaf, const std::string& what) {
  shaped<T> out;
  if (!is_sequence(v)) {
    out.one = leaf(v, what);
    return out;
  }
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(v);
  const std::size_t n = seq.size();
  bool any_nested = false, all_nested = n > 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool s = is_sequence(seq[i]);
    any_nested = any_nested || s;
    all_nested = all_nested && s;
  }
  if (any_nested && !all_nested)
    throw py::type_error(what +
                         ": mixes arrays and lists; give one array per key, a list per "
                         "key, or a list of arrays");
  if (all_nested) {
    out.form = shaped<T>::nested;
    for (std::size_t i = 0; i < n; ++i) {
      const py::sequence inner = seq[i];
      std::vector<T> row;
      for (std::size_t j = 0; j < inner.size(); ++j) {
        if (is_sequence(inner[j]))
          throw py::type_error(what + "[" + std::to_string(i) + "][" + std::to_string(j) +
                               "]: lists nest two levels deep at most");
        row.push_back(
            leaf(inner[j], what + "[" + std::to_string(i) + "][" + std::to_string(j) + "]"));
      }
      out.lists.push_back(std::move(row));
    }
    return out;
  }
  out.form = shaped<T>::list;
  for (std::size_t i = 0; i < n; ++i)
    out.flat.push_back(leaf(seq[i], what + "[" + std::to_string(i) + "]"));
  return out;
}

// Whether the first array of v (depth first) is a RowSparse; an empty list counts as dense.
bool first_is_sparse(py::handle v) {
  while (is_sequence(v)) {
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(v);
    if (seq.size() == 0) return false;
    v = seq[0];
  }
  return is_row_sparse(v);
}

[[noreturn]] void mixed(const std::string& what) {
  throw py::type_error(what +
                       ": mixes NumPy/DLPack arrays and kvactor.RowSparse values; one "
                       "call takes one kind (make two calls)");
}

}  // namespace

key_list to_keys(py::handle keys) {
  if (!is_sequence(keys)) return key_list(one_key(keys));
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(keys);
  std::vector<key> ks;
  ks.reserve(seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i)
    ks.push_back(one_key(seq[i]));
  return key_list(std::move(ks));
}

value_list to_dense(py::handle v, access mode, keepalive& keep, const std::string& what) {
  auto leaf = [&](py::handle x, const std::string& name) {
    if (is_row_sparse(x))
      throw py::type_error(name + ": a kvactor.RowSparse is not accepted here (a dense array is)");
    return to_tensor(x, mode, keep, name);
  };
  if (!is_sequence(v)) return value_list(leaf(v, what));  // one array: no lists to gather
  return walk<tensor>(v, leaf, what).to<value_list>();
}

value_arg to_values(py::handle v, access mode, keepalive& keep, const std::string& what) {
  value_arg out;
  if (!first_is_sparse(v)) {
    auto leaf = [&](py::handle x, const std::string& name) {
      if (is_row_sparse(x)) mixed(what);
      return to_tensor(x, mode, keep, name);
    };
    out.dense = walk<tensor>(v, leaf, what).to<value_list>();
    return out;
  }
  out.sparse = true;
  auto sparse_leaf = [&](py::handle x, const std::string&) -> const py_row_sparse& {
    if (!is_row_sparse(x)) mixed(what);
    keep.push_back(py::reinterpret_borrow<py::object>(x));
    return x.cast<const py_row_sparse&>();
  };
  if (mode == access::write) {
    auto leaf = [&](py::handle x, const std::string& name) {
      return sparse_leaf(x, name).output();
    };
    out.row_outputs = walk<row_sparse_output>(v, leaf, what).to<sparse_output_list>();
  } else {
    auto leaf = [&](py::handle x, const std::string& name) {
      return sparse_leaf(x, name).current();
    };
    out.rows = walk<row_sparse_tensor>(v, leaf, what).to<sparse_list>();
  }
  return out;
}

}  // namespace kvactor::python
