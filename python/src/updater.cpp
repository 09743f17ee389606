#include "updater.hpp"

#include <stdexcept>
#include <string>
#include <utility>

#include "arrays.hpp"
#include "lifetimes.hpp"

namespace kvactor::python {

namespace {

// "ValueError: boom (at file.py:12 in update)": the exception and the innermost frame.
std::string describe(py::error_already_set& e) {
  std::string text =
      std::string(py::str(e.type().attr("__qualname__"))) + ": " + std::string(py::str(e.value()));
  py::handle tb = e.trace();
  if (tb && !tb.is_none()) {
    while (!tb.attr("tb_next").is_none())
      tb = tb.attr("tb_next");
    const py::handle code = tb.attr("tb_frame").attr("f_code");
    text += " (at " + std::string(py::str(code.attr("co_filename"))) + ":" +
            std::string(py::str(tb.attr("tb_lineno"))) + " in " +
            std::string(py::str(code.attr("co_name"))) + ")";
  }
  return text;
}

class python_updater final : public updater {
 public:
  explicit python_updater(py::handle fn) : fn_(fn) {}
  python_updater(const python_updater&) = delete;
  python_updater& operator=(const python_updater&) = delete;

  // May run on a store thread, without the GIL: the notifier drops the callable.
  ~python_updater() override {
    auto fn = std::make_shared<py_ref>(std::move(fn_));
    post_to_python([fn] { fn->release(); });
  }

  void update(const key& k, const tensor& merged, tensor& stored,
              updater_state* /*state*/) const override {
    if (!interpreter_alive())
      throw std::runtime_error("the Python interpreter is exiting; the Python updater is gone");
    py::gil_scoped_acquire gil;
    try {
      py::object pk = k.is_int() ? py::object(py::int_(k.as_int())) : py::str(k.as_string());
      fn_.get()(pk, to_numpy(merged, false), to_numpy(stored, true));
    } catch (py::error_already_set& e) {
      throw std::runtime_error("the Python updater raised " + describe(e));
    }
  }

 private:
  py_ref fn_;
};

}  // namespace

std::shared_ptr<const updater> make_python_updater(py::handle fn) {
  if (!PyCallable_Check(fn.ptr()))
    throw py::type_error("the updater must be callable as updater(key, input, stored)");
  return std::make_shared<python_updater>(fn);
}

}  // namespace kvactor::python
