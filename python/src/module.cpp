// The _kvactor extension module: kvactor's store for Python. The pure-Python package
// (python/kvactor/) re-exports it with MXNet's names; see docs/ARCHITECTURE.md, "Python".
#include <pybind11/pybind11.h>

#include "bench_hooks.hpp"
#include "errors.hpp"
#include "futures.hpp"
#include "kvactor/cuda.hpp"
#include "lifetimes.hpp"
#include "sparse.hpp"
#include "store.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_kvactor, m) {
  using namespace kvactor::python;
  m.doc() = "kvactor's key-value store (MXNet's KVStore API); import kvactor instead.";
  bind_errors(m);
  bind_futures(m);
  bind_sparse(m);
  bind_store(m);
  bind_bench_hooks(m);
  m.def("cuda_compiled", &kvactor::cuda_compiled,
        "Whether kvactor was built with its CUDA device layer.");
  m.def(
      "cuda_emulated",
      [] {
        py::gil_scoped_release nogil;
        return kvactor::cuda_emulated();
      },
      "Whether the CUDA devices are emulated (KVACTOR_EMULATE_CUDA, no real GPU).");
  m.def(
      "cuda_device_count",
      [] {
        py::gil_scoped_release nogil;
        return kvactor::cuda_device_count();
      },
      "CUDA devices kvactor can use (emulated ones included).");
  // Before the interpreter tears itself down: end every store (their calls, updaters and
  // cluster goodbyes need Python or the GIL), then the notifier thread; from then on nothing of
  // kvactor calls into Python.
  m.def("_shutdown", [] {
    close_all_stores();
    stop_python_threads();
  });
  py::module_::import("atexit").attr("register")(m.attr("_shutdown"));
}
