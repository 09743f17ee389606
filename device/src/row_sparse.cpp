#include "kvactor/row_sparse.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "kvactor/detail/kernels.hpp"

namespace kvactor {

namespace {

std::size_t row_elems(const shape& full) {
  std::size_t r = 1;
  for (std::size_t i = 1; i < full.ndim(); ++i)
    r *= static_cast<std::size_t>(full[i]);
  return r;
}

shape rows_shape(const shape& full, std::size_t rows) {
  std::vector<std::int64_t> d = full.dims();
  d[0] = static_cast<std::int64_t>(rows);
  return shape{d};
}

// t itself when it is in host memory, else a host copy: the host reads what it builds from.
tensor on_host(const tensor& t) {
  return t.device().is_cpu() ? t : t.copy_to(device::cpu());
}

// t moved to d (host-built rows go back to the device the caller's rows were on).
tensor moved_to(tensor t, device d) {
  if (d.is_cpu()) return t;  // moved, not copied
  return t.copy_to(d);
}

}  // namespace

std::size_t row_sparse_tensor::row_size() const noexcept {
  return shape_.ndim() ? row_elems(shape_) : 0;
}

row_sparse_tensor row_sparse_tensor::from(tensor indices, tensor data, const kvactor::shape& full) {
  if (!full.is_valid_nonempty())
    throw error{errc::invalid_argument,
                "row_sparse: the full shape " + full.to_string() + " is empty"};
  if (!indices.defined() || !data.defined())
    throw error{errc::invalid_argument, "row_sparse: undefined indices or data"};
  if (indices.dtype() != dtype::int64 || indices.shape().ndim() != 1)
    throw error{errc::invalid_argument,
                "row_sparse: indices must be 1-D int64, got " + indices.describe()};
  const std::size_t n = indices.size();
  if (data.shape() != rows_shape(full, n) && !(n == 0 && data.size() == 0))
    throw error{errc::shape_mismatch, "row_sparse: data " + data.shape().to_string() +
                                          " does not hold " + std::to_string(n) + " rows of " +
                                          full.to_string()};
  tensor host_ids = on_host(indices);
  const auto* ids = host_ids.cdata<std::int64_t>();
  for (std::size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= full[0])
      throw error{errc::out_of_range, "row_sparse: row " + std::to_string(ids[i]) +
                                          " is outside [0, " + std::to_string(full[0]) + ")"};
    if (i && ids[i] <= ids[i - 1])
      throw error{errc::invalid_argument, "row_sparse: indices must be strictly increasing (row " +
                                              std::to_string(ids[i]) + " after " +
                                              std::to_string(ids[i - 1]) + ")"};
  }
  row_sparse_tensor r;
  r.indices_ = std::move(indices);
  r.host_indices_ = std::move(host_ids);
  r.data_ = std::move(data);
  r.shape_ = full;
  return r;
}

row_sparse_tensor row_sparse_tensor::from_rows(const std::vector<std::int64_t>& ids,
                                               const tensor& rows, const kvactor::shape& full) {
  if (!full.is_valid_nonempty())
    throw error{errc::invalid_argument,
                "row_sparse: the full shape " + full.to_string() + " is empty"};
  if (!rows.defined() || rows.shape() != rows_shape(full, ids.size()))
    throw error{errc::shape_mismatch, "row_sparse: " + std::to_string(ids.size()) +
                                          " ids but rows of shape " + rows.shape().to_string()};
  for (auto id : ids)
    if (id < 0 || id >= full[0])
      throw error{errc::out_of_range, "row_sparse: row " + std::to_string(id) + " is outside [0, " +
                                          std::to_string(full[0]) + ")"};
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return ids[a] < ids[b]; });
  std::vector<std::int64_t> uniq;
  for (auto i : order)
    if (uniq.empty() || uniq.back() != ids[i]) uniq.push_back(ids[i]);
  const std::size_t row = row_elems(full);
  tensor data = tensor::zeros(rows_shape(full, uniq.size()), rows.dtype());
  const tensor host_rows = on_host(rows);
  host_rows.wait_to_read();
  const void* src = host_rows.data_unchecked();
  std::size_t u = 0;
  for (std::size_t j = 0; j < order.size(); ++j) {
    const std::size_t i = order[j];
    while (uniq[u] != ids[i])
      ++u;
    // data[u] += rows[i], one row at a time (rows are contiguous).
    kernels::accumulate(rows.dtype(),
                        static_cast<char*>(data.data_unchecked()) + u * row * size_of(rows.dtype()),
                        static_cast<const char*>(src) + i * row * size_of(rows.dtype()), 0, row);
  }
  return from(tensor::from(uniq, {static_cast<std::int64_t>(uniq.size())}),
              moved_to(std::move(data), rows.device()), full);
}

row_sparse_tensor row_sparse_tensor::from_dense(const tensor& dense) {
  if (!dense.defined() || dense.shape().ndim() == 0)
    throw error{errc::invalid_argument,
                "row_sparse: from_dense needs a defined tensor of rank >= 1"};
  const kvactor::shape& full = dense.shape();
  const std::size_t row = row_elems(full);
  const std::size_t bytes = row * size_of(dense.dtype());
  const tensor host = on_host(dense);
  host.wait_to_read();
  const auto* p = static_cast<const unsigned char*>(host.data_unchecked());
  std::vector<std::int64_t> ids;
  for (std::int64_t r = 0; r < full[0]; ++r) {
    const auto* q = p + static_cast<std::size_t>(r) * bytes;
    bool nz = false;
    for (std::size_t i = 0; i < row && !nz; ++i)
      nz = kernels::load(dense.dtype(), q, i) != 0.0;
    if (nz) ids.push_back(r);
  }
  tensor data = tensor::empty(rows_shape(full, ids.size()), dense.dtype());
  for (std::size_t i = 0; i < ids.size(); ++i)
    std::memcpy(static_cast<char*>(data.data_unchecked()) + i * bytes,
                p + static_cast<std::size_t>(ids[i]) * bytes, bytes);
  return from(tensor::from(ids, {static_cast<std::int64_t>(ids.size())}),
              moved_to(std::move(data), dense.device()), full);
}

row_sparse_tensor row_sparse_tensor::zeros(const kvactor::shape& full, kvactor::dtype t) {
  return from(tensor::zeros({0}, dtype::int64), tensor::zeros(rows_shape(full, 0), t), full);
}

tensor row_sparse_tensor::to_dense() const {
  if (!defined()) throw error{errc::invalid_argument, "to_dense of an undefined row_sparse_tensor"};
  tensor out = tensor::zeros(shape_, data_.dtype());
  const std::size_t bytes = row_size() * size_of(data_.dtype());
  const auto* ids = host_indices_.cdata<std::int64_t>();
  const tensor rows = on_host(data_);
  rows.wait_to_read();
  const auto* src = static_cast<const char*>(rows.data_unchecked());
  for (std::size_t i = 0; i < num_rows(); ++i)
    std::memcpy(static_cast<char*>(out.data_unchecked()) + static_cast<std::size_t>(ids[i]) * bytes,
                src + i * bytes, bytes);
  return moved_to(std::move(out), data_.device());
}

}  // namespace kvactor
