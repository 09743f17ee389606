#include "kvactor/row_sparse_output.hpp"

#include "sparse_pull.hpp"

namespace kvactor {

row_sparse_output::row_sparse_output() : s_(std::make_shared<detail::row_sparse_output_state>()) {}

row_sparse_output::row_sparse_output(kvactor::device d) : row_sparse_output() {
  s_->dev = d;
}

row_sparse_output::row_sparse_output(kvactor::device d, kvactor::dtype t) : row_sparse_output(d) {
  s_->type = t;
}

kvactor::device row_sparse_output::device() const noexcept {
  return s_->dev;
}

std::optional<kvactor::dtype> row_sparse_output::dtype() const noexcept {
  return s_->type;
}

row_sparse_tensor row_sparse_output::value() const {
  std::unique_lock<std::mutex> lk(s_->mu);
  s_->idle.wait(lk, [this] { return s_->in_flight == 0; });
  return s_->value;
}

}  // namespace kvactor
