#include "store.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <pybind11/stl.h>

#include "args.hpp"
#include "errors.hpp"
#include "fastcall.hpp"
#include "futures.hpp"
#include "kvactor/cluster.hpp"
#include "kvactor/kvstore.hpp"
#include "updater.hpp"

namespace kvactor::python {

namespace {

class py_store;

// Every open store, for close_all_stores(). Touched with the GIL held only; never destroyed.
std::vector<py_store*>& open_stores() {
  static auto* v = new std::vector<py_store*>();
  return *v;
}

class py_store {
 public:
  py_store(const std::string& type, const options& opts) {
    {
      py::gil_scoped_release nogil;  // a dist worker waits here for its cluster
      kv_ = std::make_shared<kvstore>(kvactor::create(type, opts));
    }
    open_stores().push_back(this);
  }
  py_store(const py_store&) = delete;
  py_store& operator=(const py_store&) = delete;
  // Nothing here throws: the registry exists since the constructor, and neither releasing the
  // GIL nor ending the store throws.
  // NOLINTNEXTLINE(bugprone-exception-escape)
  ~py_store() {
    auto& v = open_stores();
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
    close();
  }

  /// The store, or ShutDown once closed. The copy keeps it alive through a call that runs
  /// with the GIL released while another thread closes it.
  std::shared_ptr<kvstore> get() const {
    drain();
    if (!kv_) throw error{errc::shut_down, "the store was closed"};
    return kv_;
  }

  /// Waits for the store's calls (GIL released) and ends it; later calls raise ShutDown.
  void close() {
    std::shared_ptr<kvstore> kv = std::move(kv_);
    if (!kv) return;
    py::gil_scoped_release nogil;
    kv.reset();
  }

 private:
  std::shared_ptr<kvstore> kv_;
};

options to_options(const py::kwargs& kw) {
  options o;
  for (const auto& item : kw) {
    const std::string name = py::str(item.first);
    const auto n = item.second.cast<std::size_t>();
    if (name == "num_shards")
      o.num_shards = n;
    else if (name == "worker_threads")
      o.worker_threads = n;
    else if (name == "reducer_threads")
      o.reducer_threads = n;
    else if (name == "parallel_threshold_bytes")
      o.parallel_threshold_bytes = n;
    else if (name == "fusion_key_bytes")
      o.fusion_key_bytes = n;
    else if (name == "fusion_bytes")
      o.fusion_bytes = n;
    else if (name == "fusion_window_us")
      o.fusion_window = std::chrono::microseconds(n);
    else
      throw py::type_error("create() got an unknown option '" + name +
                           "' (known: num_shards, worker_threads, reducer_threads, "
                           "parallel_threshold_bytes, fusion_key_bytes, fusion_bytes, "
                           "fusion_window_us)");
  }
  return o;
}

// Runs call(store) with the GIL released and wraps its future with the call's objects.
template <class Call>
py::object async_call(const py_store& s, keepalive keep, Call&& call) {
  auto kv = s.get();
  kvactor::future<void> f;
  {
    without_gil nogil;
    f = call(*kv);
  }
  return make_future(std::move(f), std::move(keep));
}

// Runs call(store) with the GIL released, waits for its future (interruptibly) and raises its
// error; returns the future.
template <class Call>
kvactor::future<void> blocking_call(const py_store& s, Call&& call) {
  auto kv = s.get();
  kvactor::future<void> f;
  {
    py::gil_scoped_release nogil;
    f = call(*kv);
  }
  wait_interruptible(f, std::nullopt);
  if (const auto& st = f.get_status(); !st.is_ok()) raise_status(st);
  return f;
}

// Runs fn(store) with the GIL released and returns what it returns.
template <class Fn>
auto released(const py_store& s, Fn&& fn) {
  auto kv = s.get();
  py::gil_scoped_release nogil;
  return fn(*kv);
}

[[noreturn]] void need(const char* what) {
  throw py::type_error(std::string{what} + " is required");
}

// MXNet's init "returns after data has been initialized": it waits (on dist stores for rank
// 0's value and the barrier after it, without which another worker's push could reach a
// server before the key exists) and raises; the completed future is returned too.
py::object init(const py_store& s, py::handle keys, py::handle values) {
  keepalive keep;
  key_list k = to_keys(keys);
  value_arg v = to_values(values, access::read, keep, "value");
  // The future holds the arrays from the start: interrupted (Ctrl-C) while waiting, it parks
  // them for the call still running.
  py::object f = async_call(s, std::move(keep), [&](kvstore& kv) {
    return v.sparse ? kv.init(k, v.rows) : kv.init(k, v.dense);
  });
  future_result(f, std::nullopt);
  return f;
}

py::object push(const py_store& s, py::handle keys, py::handle values, int priority) {
  keepalive keep;
  key_list k = to_keys(keys);
  value_arg v = to_values(values, access::read, keep, "value");
  return async_call(s, std::move(keep), [&](kvstore& kv) {
    return v.sparse ? kv.push(k, v.rows, priority) : kv.push(k, v.dense, priority);
  });
}

py::object pull(const py_store& s, py::handle keys, py::handle out, int priority,
                bool ignore_sparse) {
  if (out.is_none()) need("pull's out");
  keepalive keep;
  key_list k = to_keys(keys);
  value_arg o = to_values(out, access::write, keep, "out");
  return async_call(s, std::move(keep), [&](kvstore& kv) {
    return o.sparse ? kv.pull(k, o.row_outputs, priority, ignore_sparse)
                    : kv.pull(k, o.dense, priority, ignore_sparse);
  });
}

py::object pushpull(const py_store& s, py::handle keys, py::handle values, py::handle out,
                    int priority) {
  keepalive keep;
  key_list k = to_keys(keys);
  // Without out, the result is written back into the values.
  value_list v = to_dense(values, out.is_none() ? access::write : access::read, keep, "value");
  value_list o = out.is_none() ? value_list{} : to_dense(out, access::write, keep, "out");
  return async_call(s, std::move(keep),
                    [&](kvstore& kv) { return kv.pushpull(k, v, o, priority); });
}

py::object broadcast(const py_store& s, py::handle keys, py::handle values, py::handle out,
                     int priority) {
  if (out.is_none()) need("broadcast's out");
  keepalive keep;
  key_list k = to_keys(keys);
  value_list v = to_dense(values, access::read, keep, "value");
  value_list o = to_dense(out, access::write, keep, "out");
  return async_call(s, std::move(keep),
                    [&](kvstore& kv) { return kv.broadcast(k, v, o, priority); });
}

py::object row_sparse_pull(const py_store& s, py::handle keys, py::handle out, int priority,
                           py::handle row_ids) {
  if (out.is_none()) need("row_sparse_pull's out");
  if (row_ids.is_none()) need("row_sparse_pull's row_ids");
  keepalive keep;
  key_list k = to_keys(keys);
  value_arg o = to_values(out, access::write, keep, "out");
  value_list ids = to_dense(row_ids, access::read, keep, "row_ids");
  return async_call(s, std::move(keep), [&](kvstore& kv) {
    return o.sparse ? kv.row_sparse_pull(k, o.row_outputs, ids, priority)
                    : kv.row_sparse_pull(k, o.dense, ids, priority);
  });
}

void set_updater(const py_store& s, py::handle fn) {
  std::shared_ptr<const updater> u;
  if (!fn.is_none()) u = make_python_updater(fn);
  auto kv = s.get();
  py::gil_scoped_release nogil;
  if (u)
    kv->set_updater(std::move(u));
  else
    kv->set_updater(nullptr);
}

void set_optimizer_config(const py_store& s, const std::string& type,
                          const std::map<std::string, double>& params) {
  optimizer_config cfg{type, params};
  blocking_call(s, [&](kvstore& kv) { return kv.set_optimizer(cfg); });
}

void set_gradient_compression(const py_store& s, const py::dict& params) {
  std::string type;
  double threshold = 0.5;
  bool has_type = false;
  for (const auto& item : params) {
    const std::string name = py::str(item.first);
    if (name == "type") {
      type = item.second.cast<std::string>();
      has_type = true;
    } else if (name == "threshold") {
      threshold = item.second.cast<double>();
    } else {
      throw error{errc::invalid_argument, "set_gradient_compression: unknown parameter '" + name +
                                              "' (type and threshold are known)"};
    }
  }
  if (!has_type)
    throw error{errc::invalid_argument,
                "set_gradient_compression: 'type' is required ('2bit', '1bit' or 'none')"};
  blocking_call(s, [&](kvstore& kv) { return kv.set_gradient_compression(type, threshold); });
}

// push, pull and pushpull in CPython's fast calling convention (fastcall.hpp): the same
// functions as above, the arguments bound by name as pybind11 would.
const py_store& store_of(PyObject* self) {
  // The descriptor has checked that self is a _Store; one made by __new__ alone has no store.
  // A _Store or a Python class deriving from it alone keeps its one C++ object first in the
  // instance (pybind11's simple layout), found without pybind11's type lookup (a hash of the
  // type's name); any other layout takes that way.
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  const py_store* s = nullptr;
  if (inst->simple_layout)
    s = inst->simple_holder_constructed ? static_cast<const py_store*>(inst->simple_value_holder[0])
                                        : nullptr;
  else
    s = py::handle(self).cast<const py_store*>();
  if (!s) throw py::type_error("the store was not initialized (call kvactor.create)");
  return *s;
}

int priority_arg(PyObject* obj) {
  if (!obj) return 0;
  // PyLong_AsLong takes ints and __index__ objects and refuses floats, as pybind11's int does.
  const long v = PyLong_AsLong(obj);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  if (v < INT_MIN || v > INT_MAX) {
    PyErr_SetString(PyExc_OverflowError, "priority does not fit a C int");
    throw py::error_already_set();
  }
  return static_cast<int>(v);
}

bool bool_arg(PyObject* obj, bool absent, const char* name) {
  if (!obj) return absent;
  if (!PyBool_Check(obj)) throw py::type_error(std::string{name} + " must be a bool");
  return obj == Py_True;
}

py::handle or_none(PyObject* obj) {
  return obj ? py::handle(obj) : py::none();
}

PyObject* push_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[3];
  if (!bind_args("push", args, nargs, kw, {"key", "value", "priority"}, 2, a)) return nullptr;
  return guarded([&] { return push(store_of(self), a[0], a[1], priority_arg(a[2])); });
}

PyObject* pull_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[4];
  if (!bind_args("pull", args, nargs, kw, {"key", "out", "priority", "ignore_sparse"}, 1, a))
    return nullptr;
  return guarded([&] {
    return pull(store_of(self), a[0], or_none(a[1]), priority_arg(a[2]),
                bool_arg(a[3], true, "ignore_sparse"));
  });
}

PyObject* pushpull_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kw) {
  PyObject* a[4];
  if (!bind_args("pushpull", args, nargs, kw, {"key", "value", "out", "priority"}, 2, a))
    return nullptr;
  return guarded(
      [&] { return pushpull(store_of(self), a[0], a[1], or_none(a[2]), priority_arg(a[3])); });
}

// The docs start with the signature in CPython's form, which inspect.signature reads.
PyMethodDef push_def{"push", cfunction(push_method), METH_FASTCALL | METH_KEYWORDS,
                     "push($self, key, value, priority=0)\n--\n\n"
                     "Pushes value(s) (a list per key: summed) to key(s); a kvactor.Future."};
PyMethodDef pull_def{"pull", cfunction(pull_method), METH_FASTCALL | METH_KEYWORDS,
                     "pull($self, key, out=None, priority=0, ignore_sparse=True)\n--\n\n"
                     "Pulls key(s) into out (a list per key: each filled); a kvactor.Future."};
PyMethodDef pushpull_def{
    "pushpull", cfunction(pushpull_method), METH_FASTCALL | METH_KEYWORDS,
    "pushpull($self, key, value, out=None, priority=0)\n--\n\n"
    "Pushes value(s), then pulls the result into out (None: back into the values); a "
    "kvactor.Future."};

}  // namespace

void close_all_stores() {
  // close() releases the GIL, during which a store may be closed by its owner: take a copy.
  const std::vector<py_store*> stores = open_stores();
  for (py_store* s : stores)
    if (std::find(open_stores().begin(), open_stores().end(), s) != open_stores().end()) s->close();
}

std::shared_ptr<kvstore> native_store(py::handle store) {
  return store.cast<const py_store&>().get();
}

void bind_store(py::module_& m) {
  m.def("_node_role", &node_role_from_env,
        "The DMLC_ROLE of this process ('scheduler', 'server', 'worker', or '').");
  m.def(
      "_run_node",
      [] {
        py::gil_scoped_release nogil;
        return run_node_from_env();
      },
      "Runs this process's scheduler or server role until the cluster stops; the exit "
      "status.");

  py::class_<py_store> cls(m, "_Store");
  cls.def(py::init([](const std::string& type, const py::kwargs& kw) {
            return std::make_unique<py_store>(type, to_options(kw));
          }),
          py::arg("type") = "local")
      .def("init", &init, py::arg("key"), py::arg("value"),
           "Stores the first value of each key; waits until it is stored (dist stores: rank "
           "0's value, then a barrier) and raises its error, as MXNet's init returns after the "
           "data is initialized. Returns the completed Future.")
      .def("broadcast", &broadcast, py::arg("key"), py::arg("value"), py::arg("out"),
           py::arg("priority") = 0)
      .def("row_sparse_pull", &row_sparse_pull, py::arg("key"), py::arg("out") = py::none(),
           py::arg("priority") = 0, py::arg("row_ids") = py::none())
      .def("_set_updater", &set_updater, py::arg("updater"),
           "Sets a Python function as the updater (None removes it): updater(key, input, "
           "stored), key an int or a str, input and stored NumPy arrays viewing the merged push "
           "and the stored value; update stored in place (stored += input). It runs on the "
           "store's threads holding the GIL, which serialises the store's updates with all "
           "Python code (set_optimizer runs in C++). An exception it raises fails that push "
           "(kvactor.UpdaterFailed); the store stays usable. It must not call the store (it runs "
           "inside it). Dist stores refuse it (kvactor.Unsupported). Keep no reference to the "
           "arrays.")
      .def("_set_optimizer_config", &set_optimizer_config, py::arg("type"), py::arg("params"))
      .def("set_gradient_compression", &set_gradient_compression, py::arg("compression_params"))
      .def(
          "save_optimizer_states",
          [](const py_store& s, const std::string& fname, bool dump) {
            blocking_call(s, [&](kvstore& kv) { return kv.save_optimizer_states(fname, dump); });
          },
          py::arg("fname"), py::arg("dump_optimizer") = false)
      .def(
          "load_optimizer_states",
          [](const py_store& s, const std::string& fname) {
            blocking_call(s, [&](kvstore& kv) { return kv.load_optimizer_states(fname); });
          },
          py::arg("fname"))
      .def(
          "_send_command_to_servers",
          [](const py_store& s, int head, const std::string& body) {
            blocking_call(s, [&](kvstore& kv) { return kv.send_command_to_servers(head, body); });
          },
          py::arg("head"), py::arg("body"))
      .def("barrier",
           [](const py_store& s) { blocking_call(s, [](kvstore& kv) { return kv.barrier(); }); })
      .def(
          "is_capable",
          [](const py_store& s, const std::string& capability) {
            return released(s, [&](kvstore& kv) { return kv.is_capable(capability); });
          },
          py::arg("capability"))
      .def("wait_all", [](const py_store& s) { released(s, [](kvstore& kv) { kv.wait_all(); }); })
      .def_property_readonly("outstanding",
                             [](const py_store& s) {
                               return released(s, [](kvstore& kv) { return kv.outstanding(); });
                             })
      .def_property_readonly(
          "type",
          [](const py_store& s) { return released(s, [](kvstore& kv) { return kv.type(); }); })
      .def_property_readonly(
          "rank",
          [](const py_store& s) { return released(s, [](kvstore& kv) { return kv.rank(); }); })
      .def_property_readonly("num_workers",
                             [](const py_store& s) {
                               return released(s, [](kvstore& kv) { return kv.num_workers(); });
                             })
      .def("close", &py_store::close);
  add_method(cls, &push_def);
  add_method(cls, &pull_def);
  add_method(cls, &pushpull_def);
}

}  // namespace kvactor::python
