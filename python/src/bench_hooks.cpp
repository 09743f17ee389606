#include "bench_hooks.hpp"

#include <chrono>

#include "args.hpp"
#include "store.hpp"

namespace kvactor::python {

namespace {

// n synchronous in-place pushpulls of `value` (one array) on `key`, each waited for with
// get(), as a C++ program would write them; the seconds they took. The arguments are
// converted once, before the clock starts: a C++ caller holds its tensors already.
double pushpull_loop(py::handle store, py::handle key, py::handle value, int n) {
  if (n < 1) throw py::value_error("_bench_pushpull_loop: n must be at least 1");
  keepalive keep;
  const key_list k = to_keys(key);
  const value_list v = to_dense(value, access::write, keep, "value");
  const std::shared_ptr<kvstore> kv = native_store(store);
  py::gil_scoped_release nogil;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    kv->pushpull(k, v).get();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void bind_bench_hooks(py::module_& m) {
  m.def("_bench_pushpull_loop", &pushpull_loop, py::arg("store"), py::arg("key"), py::arg("value"),
        py::arg("n"),
        "Benchmark hook: n in-place pushpulls of value on key, in C++ without the GIL; seconds.");
}

}  // namespace kvactor::python
