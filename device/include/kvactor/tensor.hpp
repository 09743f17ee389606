// tensor: MXNet's NDArray role. A shape, a dtype, a device and contiguous storage shared by
// every copy of the handle (copying a tensor copies the handle, not the data; copy() copies
// data). Storage comes from the buffer pool, or is a non-owning view of user memory.
//
// Leases. While the store works on a tensor it holds a lease: a read lease on tensors given
// to push (and init/broadcast), a write lease on tensors given to pull. The checked accessors
// (data<T>(), at(), set(), fill(), to_vector(), copy...) wait until no conflicting lease is
// held, so reading a pull's output after issuing the pull sees the pulled value, and writing
// a pushed tensor waits until the store has read it — as MXNet's engine does. data_unchecked()
// skips the wait (the store's own kernels use it).
//
// CUDA tensors (device::cuda(N), kvactor/cuda.hpp): storage comes from that device's pool
// (kvactor/detail/device_memory.hpp) and data<T>() / data_unchecked() give device pointers. The
// checked accessors (at, set, to_vector, fill, copy, copy_to, astype) work on them too: they
// stage through pinned memory and return when done (the blocking user API). Without a CUDA
// device (no GPU, or a build without CUDA) creating one throws errc::unsupported.
//
// Thread-safety: a tensor handle may be copied and read from any thread. Writing the same
// elements from two threads at once is a data race, as with any memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "kvactor/buffer_pool.hpp"
#include "kvactor/device.hpp"
#include "kvactor/dtype.hpp"
#include "kvactor/error.hpp"
#include "kvactor/shape.hpp"

namespace kvactor {

namespace detail {

/// Bytes plus lease counters. Not used directly by users.
class storage {
 public:
  storage(std::shared_ptr<buffer> owned, std::size_t bytes, device dev) noexcept;
  storage(void* external, std::size_t bytes, device dev) noexcept;
  /// Bytes that live in the same allocation as this block (tensor.cpp's small host tensors).
  struct own_bytes {};
  storage(own_bytes, void* inside, std::size_t bytes) noexcept;
  ~storage();

  void* data() const noexcept { return data_; }
  std::size_t bytes() const noexcept { return bytes_; }
  device where() const noexcept { return device_; }
  bool owns_memory() const noexcept { return owned_ != nullptr || inside_; }

  void begin_read() const noexcept;
  void end_read() const noexcept;
  void begin_write() const noexcept;
  void end_write() const noexcept;
  /// Blocks until no write lease is held.
  void wait_readable() const;
  /// Blocks until no lease at all is held.
  void wait_writable() const;
  int pending_reads() const noexcept;
  int pending_writes() const noexcept;

 private:
  void notify_waiters() const noexcept;

  std::shared_ptr<buffer> owned_;
  void* data_;
  std::size_t bytes_;
  device device_;
  bool inside_ = false;
  mutable std::atomic<int> readers_{0};
  mutable std::atomic<int> writers_{0};
  mutable std::atomic<int> waiters_{0};
};

}  // namespace detail

class tensor {
 public:
  /// An undefined tensor (no storage); defined() is false.
  tensor() = default;

  /// Pooled storage with unspecified contents (a host tensor of at most 64 bytes keeps them
  /// in its storage block: one allocation, no pool).
  static tensor empty(const kvactor::shape& s, kvactor::dtype t = dtype::float32,
                      kvactor::device d = device::cpu());
  static tensor zeros(const kvactor::shape& s, kvactor::dtype t = dtype::float32,
                      kvactor::device d = device::cpu());
  static tensor ones(const kvactor::shape& s, kvactor::dtype t = dtype::float32,
                     kvactor::device d = device::cpu());
  /// Every element set to `value` converted to t (rounded to nearest for 16-bit floats,
  /// truncated toward zero for integers).
  static tensor full(const kvactor::shape& s, double value, kvactor::dtype t = dtype::float32,
                     kvactor::device d = device::cpu());
  /// A copy of n = s.numel() elements of type T from src.
  template <class T>
  static tensor from(const T* src, const kvactor::shape& s) {
    return from_bytes(src, s, dtype_of_v<T>);
  }
  template <class T>
  static tensor from(const std::vector<T>& src, const kvactor::shape& s) {
    check_count(src.size(), s);
    return from_bytes(src.data(), s, dtype_of_v<T>);
  }
  /// from<T>({1, 2, 3}, {3}); preferred over the pointer overload for braced lists, so that
  /// {0} means one zero and not a null pointer.
  template <class T>
  static tensor from(std::initializer_list<T> src, const kvactor::shape& s) {
    check_count(src.size(), s);
    return from_bytes(src.begin(), s, dtype_of_v<T>);
  }
  /// A non-owning view of user memory; the memory must outlive every use of the view,
  /// including operations in flight on it.
  template <class T>
  static tensor view(T* data, const kvactor::shape& s) {
    return view_bytes(data, s, dtype_of_v<T>);
  }
  static tensor view_bytes(void* data, const kvactor::shape& s, kvactor::dtype t);
  /// A non-owning view of memory on device d (for a CUDA device: device memory of that
  /// device, e.g. another library's tensor handed over by DLPack). Throws like empty() for a
  /// device this build or machine cannot serve; the memory must outlive every use of the view.
  static tensor view_bytes(void* data, const kvactor::shape& s, kvactor::dtype t,
                           kvactor::device d);
  /// Takes a pooled buffer (e.g. one the transport received into) as the storage, without
  /// copying; the buffer must hold at least s.numel() elements of t.
  static tensor from_buffer(std::shared_ptr<buffer> b, const kvactor::shape& s, kvactor::dtype t);
  static tensor from_bytes(const void* src, const kvactor::shape& s, kvactor::dtype t);

  bool defined() const noexcept { return storage_ != nullptr; }
  explicit operator bool() const noexcept { return defined(); }
  const kvactor::shape& shape() const noexcept { return shape_; }
  kvactor::dtype dtype() const noexcept { return dtype_; }
  kvactor::device device() const noexcept;
  /// Number of elements.
  std::size_t size() const noexcept { return numel_; }
  std::size_t nbytes() const noexcept { return numel_ * size_of(dtype_); }
  /// "float32(2, 3) @cpu(0)"
  std::string describe() const;

  /// A deep copy on the same device.
  tensor copy() const;
  /// A deep copy on device d (host <-> device and between devices included).
  tensor copy_to(kvactor::device d) const;
  /// Copies this tensor's elements into dst, on whichever device dst is; shapes and dtypes
  /// must match (else throws kvactor::error with shape_mismatch / dtype_mismatch).
  void copy_to(tensor& dst) const;
  /// A converted copy.
  tensor astype(kvactor::dtype t) const;
  void fill(double value);

  /// Typed element pointers; T must be the tensor's element type (else throws
  /// dtype_mismatch). Waits for conflicting leases.
  template <class T>
  T* data() {
    check_type(dtype_of_v<T>);
    wait_to_write();
    return static_cast<T*>(data_unchecked());
  }
  template <class T>
  const T* data() const {
    check_type(dtype_of_v<T>);
    wait_to_read();
    return static_cast<const T*>(data_unchecked());
  }
  /// Read-only element pointer, whatever the handle's constness: waits for write leases
  /// only, so reading a tensor that is being pushed does not wait for the push.
  template <class T>
  const T* cdata() const {
    return data<T>();
  }
  /// Element i converted to double. Waits for write leases.
  double at(std::size_t i) const;
  /// Sets element i (converted as full() converts). Waits for all leases.
  void set(std::size_t i, double value);
  /// All elements as doubles. Waits for write leases.
  std::vector<double> to_vector() const;

  void wait_to_read() const;
  void wait_to_write() const;

  /// The bytes, without waiting for leases. For kernels that the store orders itself.
  void* data_unchecked() const noexcept;
  /// True when both handles refer to overlapping bytes.
  bool overlaps(const tensor& other) const noexcept;
  /// The storage block (shared by copies of this handle); null when undefined.
  const std::shared_ptr<detail::storage>& storage_ptr() const noexcept { return storage_; }

  /// Same storage reinterpreted with another shape of the same element count.
  tensor reshape(const kvactor::shape& s) const;

 private:
  tensor(std::shared_ptr<detail::storage> st, kvactor::shape s, kvactor::dtype t);
  void check_type(kvactor::dtype t) const;
  static void check_count(std::size_t n, const kvactor::shape& s);

  std::shared_ptr<detail::storage> storage_;
  kvactor::shape shape_;
  kvactor::dtype dtype_ = dtype::float32;
  std::size_t numel_ = 0;
};

}  // namespace kvactor
