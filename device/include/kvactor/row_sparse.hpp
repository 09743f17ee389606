// row_sparse_tensor: MXNet's RowSparseNDArray. A full shape (rows x ...), the indices of the
// rows that are present (int64, strictly increasing) and their values (one row each); every
// other row is zero. Row-sparse gradients of embeddings touch a few rows of a big table, and
// only those rows are merged, updated and sent.
//
// Devices. The rows (data) may live on a CUDA device, as MXNet's GPU row-sparse arrays do;
// the indices may too. The host needs the indices to check them and to route rows, so a host
// copy of them is made once, when the tensor is built (they are small); the rows stay where
// they are, and the stores copy or merge them on the devices (conversions that build rows on
// the host copy them back to the rows' device).
// Thread-safety: as tensor (a handle to shared storage).
#pragma once

#include <cstdint>
#include <vector>

#include "kvactor/tensor.hpp"

namespace kvactor {

class row_sparse_tensor {
 public:
  /// Undefined; defined() is false.
  row_sparse_tensor() = default;

  /// indices: 1-D int64, strictly increasing, each in [0, full[0]); data: (indices.size(),
  /// full[1], ...) of any dtype. Either may be on a CUDA device. Throws kvactor::error
  /// (invalid_argument, out_of_range, shape_mismatch) naming what is wrong.
  static row_sparse_tensor from(tensor indices, tensor data, const kvactor::shape& full);
  /// Rows given by (unsorted, possibly repeated) ids, with their values: repeated rows are
  /// summed and the rows sorted. The result's rows are on rows' device.
  static row_sparse_tensor from_rows(const std::vector<std::int64_t>& ids, const tensor& rows,
                                     const kvactor::shape& full);
  /// The rows of `dense` holding any non-zero element (its rows on dense's device).
  static row_sparse_tensor from_dense(const tensor& dense);
  /// No rows present.
  static row_sparse_tensor zeros(const kvactor::shape& full, kvactor::dtype t = dtype::float32);

  bool defined() const noexcept { return data_.defined(); }
  const kvactor::shape& shape() const noexcept { return shape_; }
  kvactor::dtype dtype() const noexcept { return data_.dtype(); }
  /// As given (on the host or a device).
  const tensor& indices() const noexcept { return indices_; }
  /// The indices in host memory: indices() itself when it is there.
  const tensor& host_indices() const noexcept { return host_indices_; }
  /// Where the rows live.
  kvactor::device device() const noexcept { return data_.device(); }
  const tensor& data() const noexcept { return data_; }
  std::size_t num_rows() const noexcept { return indices_.size(); }
  /// Elements per row.
  std::size_t row_size() const noexcept;
  /// The dense tensor it stands for, on the rows' device.
  tensor to_dense() const;

 private:
  tensor indices_;
  tensor host_indices_;
  tensor data_;
  kvactor::shape shape_;
};

}  // namespace kvactor
