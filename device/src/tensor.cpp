#include "kvactor/tensor.hpp"

#include <condition_variable>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>

#include "cuda_backend.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/detail/kernels.hpp"
#include "kvactor/detail/recycling_allocator.hpp"

namespace kvactor {

std::string device::to_string() const {
  return std::string{kind_ == kind::cpu ? "cpu(" : "cuda("} + std::to_string(index_) + ")";
}

namespace detail {

namespace {

// Waiters on leases park on one of a few striped condition variables, so a storage block
// needs no mutex of its own and releasing a lease with nobody waiting costs two atomics.
struct stripe {
  std::mutex mu;
  std::condition_variable cv;
};
constexpr std::size_t num_stripes = 64;

stripe& stripe_for(const void* p) noexcept {
  static stripe stripes[num_stripes];
  return stripes[(reinterpret_cast<std::uintptr_t>(p) >> 6) % num_stripes];
}

}  // namespace

storage::storage(std::shared_ptr<buffer> owned, std::size_t bytes, device dev) noexcept
    : owned_(std::move(owned)), data_(owned_->data()), bytes_(bytes), device_(dev) {}

storage::storage(void* external, std::size_t bytes, device dev) noexcept
    : data_(external), bytes_(bytes), device_(dev) {}

storage::storage(own_bytes, void* inside, std::size_t bytes) noexcept
    : data_(inside), bytes_(bytes), device_(device::cpu()), inside_(true) {}

storage::~storage() = default;

namespace {

// A small host tensor's bytes inside its storage block: a pooled buffer cost a second
// allocation, the pool's lock and its size-class lookup twice, for as little as 4 bytes (a
// server makes one per small request it receives). The blocks are recycled: one thread makes
// them and often another frees them.
constexpr std::size_t inline_bytes = 64;
struct inline_storage final : storage {
  explicit inline_storage(std::size_t n) noexcept : storage(own_bytes{}, inside, n) {}
  alignas(64) unsigned char inside[inline_bytes];  // the pool's alignment
};

}  // namespace

// Storage blocks are recycled too: a server makes one per request it receives.
template <class Memory>
std::shared_ptr<storage> make_storage(Memory m, std::size_t bytes, device d) {
  return std::allocate_shared<storage>(recycling_allocator<storage>{}, std::move(m), bytes, d);
}

void storage::begin_read() const noexcept {
  readers_.fetch_add(1, std::memory_order_acq_rel);
}
void storage::begin_write() const noexcept {
  writers_.fetch_add(1, std::memory_order_acq_rel);
}

void storage::end_read() const noexcept {
  if (readers_.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_waiters();
}
void storage::end_write() const noexcept {
  if (writers_.fetch_sub(1, std::memory_order_seq_cst) == 1) notify_waiters();
}

void storage::notify_waiters() const noexcept {
  // Pairs with the seq_cst increment of waiters_ in the wait functions: either the waiter
  // sees the released count, or we see the waiter and wake it under its stripe's lock.
  if (waiters_.load(std::memory_order_seq_cst) == 0) return;
  auto& s = stripe_for(this);
  std::lock_guard<std::mutex> g(s.mu);
  s.cv.notify_all();
}

int storage::pending_reads() const noexcept {
  return readers_.load(std::memory_order_acquire);
}
int storage::pending_writes() const noexcept {
  return writers_.load(std::memory_order_acquire);
}

namespace {
template <class Pred>
void wait_until(const storage* self, std::atomic<int>& waiters, Pred ready) {
  if (ready()) return;
  auto& s = stripe_for(self);
  std::unique_lock<std::mutex> lk(s.mu);
  waiters.fetch_add(1, std::memory_order_seq_cst);
  s.cv.wait(lk, ready);
  waiters.fetch_sub(1, std::memory_order_relaxed);
}
}  // namespace

void storage::wait_readable() const {
  wait_until(this, waiters_, [this] { return writers_.load(std::memory_order_seq_cst) == 0; });
}

void storage::wait_writable() const {
  wait_until(this, waiters_, [this] {
    return writers_.load(std::memory_order_seq_cst) == 0 &&
           readers_.load(std::memory_order_seq_cst) == 0;
  });
}

}  // namespace detail

namespace {

void check_creatable(const shape& s, device d) {
  // A cuda device that this build or this machine cannot serve: errc::unsupported (no CUDA
  // build, no GPU), an index out of range: errc::invalid_argument.
  if (!d.is_cpu()) check_cuda_device(d);
  for (auto dim : s.dims())
    if (dim < 0)
      throw error{errc::invalid_argument, "negative dimension in shape " + s.to_string()};
  if (s.ndim() > 0 && s.numel() == 0) {
    for (auto dim : s.dims())
      if (dim == 0) return;  // a legitimately empty tensor
    throw error{errc::invalid_argument, "shape " + s.to_string() + " has too many elements"};
  }
}

// The byte count of s elements of type t; a count that does not fit in size_t is an error
// (wrapping it would create a tensor over a buffer far smaller than its elements).
std::size_t checked_bytes(const shape& s, dtype t) {
  const auto n = static_cast<std::uint64_t>(s.numel());
  if (n > std::numeric_limits<std::size_t>::max() / size_of(t))
    throw error{errc::invalid_argument,
                "shape " + s.to_string() + " of " + to_string(t) + " has too many bytes"};
  return static_cast<std::size_t>(n) * size_of(t);
}

// ---- the blocking API on cuda tensors: enqueue on the device's blocking stream, then wait ----

void cuda_copy(device dst_dev, void* dst, device src_dev, const void* src, std::size_t bytes) {
  if (!bytes) return;
  const auto s = detail::blocking_stream(dst_dev.is_cpu() ? src_dev : dst_dev);
  device_kernels::copy_async(s, dst, dst_dev, src, src_dev, bytes);
  synchronize(s);
}

void cuda_fill(device d, dtype t, void* dst, double value, std::size_t n) {
  if (!n) return;
  const auto s = detail::blocking_stream(d);
  device_kernels::fill_async(s, t, dst, value, n);
  synchronize(s);
}

void cuda_cast(device d, dtype from, const void* src, dtype to, void* dst, std::size_t n) {
  if (!n) return;
  const auto s = detail::blocking_stream(d);
  device_kernels::cast_async(s, from, src, to, dst, n);
  synchronize(s);
}

}  // namespace

tensor::tensor(std::shared_ptr<detail::storage> st, kvactor::shape s, kvactor::dtype t)
    : storage_(std::move(st)), shape_(std::move(s)), dtype_(t), numel_(shape_.numel()) {
  if (shape_.ndim() == 0) numel_ = 0;
}

kvactor::device tensor::device() const noexcept {
  return storage_ ? storage_->where() : kvactor::device::cpu();
}

tensor tensor::empty(const kvactor::shape& s, kvactor::dtype t, kvactor::device d) {
  check_creatable(s, d);
  const std::size_t bytes = checked_bytes(s, t);
  if (d.is_cpu() && bytes <= detail::inline_bytes)
    return tensor{std::allocate_shared<detail::inline_storage>(
                      detail::recycling_allocator<detail::inline_storage>{}, bytes),
                  s, t};
  auto buf = d.is_cpu() ? buffer_pool::global().acquire(bytes) : device_pool::of(d).acquire(bytes);
  return tensor{detail::make_storage(std::move(buf), bytes, d), s, t};
}

tensor tensor::zeros(const kvactor::shape& s, kvactor::dtype t, kvactor::device d) {
  auto x = empty(s, t, d);
  if (d.is_cpu())
    std::memset(x.data_unchecked(), 0, x.nbytes());
  else
    cuda_fill(d, dtype::uint8, x.data_unchecked(), 0.0, x.nbytes());
  return x;
}

tensor tensor::ones(const kvactor::shape& s, kvactor::dtype t, kvactor::device d) {
  return full(s, 1.0, t, d);
}

tensor tensor::full(const kvactor::shape& s, double value, kvactor::dtype t, kvactor::device d) {
  auto x = empty(s, t, d);
  if (d.is_cpu())
    kernels::fill(t, x.data_unchecked(), value, 0, x.size());
  else
    cuda_fill(d, t, x.data_unchecked(), value, x.size());
  return x;
}

tensor tensor::from_bytes(const void* src, const kvactor::shape& s, kvactor::dtype t) {
  auto x = empty(s, t);
  if (x.nbytes()) {
    if (!src) throw error{errc::invalid_argument, "null source pointer for " + x.describe()};
    std::memcpy(x.data_unchecked(), src, x.nbytes());
  }
  return x;
}

tensor tensor::view_bytes(void* data, const kvactor::shape& s, kvactor::dtype t) {
  return view_bytes(data, s, t, kvactor::device::cpu());
}

tensor tensor::view_bytes(void* data, const kvactor::shape& s, kvactor::dtype t,
                          kvactor::device d) {
  check_creatable(s, d);
  const std::size_t bytes = checked_bytes(s, t);
  if (!data && bytes)
    throw error{errc::invalid_argument, "null pointer for a view of " + s.to_string()};
  return tensor{detail::make_storage(data, bytes, d), s, t};
}

tensor tensor::from_buffer(std::shared_ptr<buffer> b, const kvactor::shape& s, kvactor::dtype t) {
  check_creatable(s, kvactor::device::cpu());
  const std::size_t bytes = checked_bytes(s, t);
  if (!b) throw error{errc::invalid_argument, "from_buffer: null buffer"};
  if (b->capacity() < bytes)
    throw error{errc::invalid_argument, "from_buffer: a buffer of " +
                                            std::to_string(b->capacity()) + " bytes cannot hold " +
                                            s.to_string() + " " + to_string(t)};
  return tensor{detail::make_storage(std::move(b), bytes, kvactor::device::cpu()), s, t};
}

void tensor::check_count(std::size_t n, const kvactor::shape& s) {
  if (static_cast<std::int64_t>(n) != s.numel())
    throw error{errc::shape_mismatch,
                std::to_string(n) + " elements given for shape " + s.to_string()};
}

void tensor::check_type(kvactor::dtype t) const {
  if (!defined()) throw error{errc::invalid_argument, "undefined tensor"};
  if (t != dtype_)
    throw error{errc::dtype_mismatch,
                std::string{"element type "} + to_string(t) + " requested from a " + describe()};
}

std::string tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string{to_string(dtype_)} + shape_.to_string() + " @" + device().to_string();
}

void* tensor::data_unchecked() const noexcept {
  return storage_ ? storage_->data() : nullptr;
}

void tensor::wait_to_read() const {
  if (storage_) storage_->wait_readable();
}
void tensor::wait_to_write() const {
  if (storage_) storage_->wait_writable();
}

tensor tensor::copy() const {
  return copy_to(device());
}

tensor tensor::copy_to(kvactor::device d) const {
  if (!defined()) throw error{errc::invalid_argument, "copy of an undefined tensor"};
  auto out = empty(shape_, dtype_, d);
  wait_to_read();
  if (d.is_cpu() && device().is_cpu())
    std::memcpy(out.data_unchecked(), data_unchecked(), nbytes());
  else
    cuda_copy(d, out.data_unchecked(), device(), data_unchecked(), nbytes());
  return out;
}

void tensor::copy_to(tensor& dst) const {
  if (!defined() || !dst.defined())
    throw error{errc::invalid_argument, "copy between undefined tensors"};
  if (dst.shape_ != shape_)
    throw error{errc::shape_mismatch, "copy of " + describe() + " into " + dst.describe()};
  if (dst.dtype_ != dtype_)
    throw error{errc::dtype_mismatch, "copy of " + describe() + " into " + dst.describe()};
  if (dst.storage_ == storage_) return;
  wait_to_read();
  dst.wait_to_write();
  if (dst.device().is_cpu() && device().is_cpu())
    std::memmove(dst.data_unchecked(), data_unchecked(), nbytes());
  else
    cuda_copy(dst.device(), dst.data_unchecked(), device(), data_unchecked(), nbytes());
}

tensor tensor::astype(kvactor::dtype t) const {
  if (!defined()) throw error{errc::invalid_argument, "astype of an undefined tensor"};
  auto out = empty(shape_, t, device());
  wait_to_read();
  if (device().is_cpu())
    kernels::cast(dtype_, data_unchecked(), t, out.data_unchecked(), 0, size());
  else
    cuda_cast(device(), dtype_, data_unchecked(), t, out.data_unchecked(), size());
  return out;
}

void tensor::fill(double value) {
  if (!defined()) throw error{errc::invalid_argument, "fill of an undefined tensor"};
  wait_to_write();
  if (device().is_cpu())
    kernels::fill(dtype_, data_unchecked(), value, 0, size());
  else
    cuda_fill(device(), dtype_, data_unchecked(), value, size());
}

double tensor::at(std::size_t i) const {
  if (i >= size())
    throw error{errc::out_of_range,
                "index " + std::to_string(i) + " out of range for " + describe()};
  wait_to_read();
  if (device().is_cpu()) return kernels::load(dtype_, data_unchecked(), i);
  const std::size_t w = size_of(dtype_);
  unsigned char elem[8];
  const char* src = static_cast<const char*>(data_unchecked()) + i * w;
  cuda_copy(kvactor::device::cpu(), elem, device(), src, w);
  return kernels::load(dtype_, elem, 0);
}

void tensor::set(std::size_t i, double value) {
  if (i >= size())
    throw error{errc::out_of_range,
                "index " + std::to_string(i) + " out of range for " + describe()};
  wait_to_write();
  if (device().is_cpu()) {
    kernels::store(dtype_, data_unchecked(), i, value);
    return;
  }
  const std::size_t w = size_of(dtype_);
  unsigned char elem[8];
  kernels::store(dtype_, elem, 0, value);
  char* dst = static_cast<char*>(data_unchecked()) + i * w;
  cuda_copy(device(), dst, kvactor::device::cpu(), elem, w);
}

std::vector<double> tensor::to_vector() const {
  std::vector<double> v(size());
  if (v.empty()) return v;
  wait_to_read();
  if (device().is_cpu()) {
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = kernels::load(dtype_, data_unchecked(), i);
    return v;
  }
  const auto host = copy_to(kvactor::device::cpu());
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = kernels::load(dtype_, host.data_unchecked(), i);
  return v;
}

bool tensor::overlaps(const tensor& other) const noexcept {
  if (!defined() || !other.defined()) return false;
  if (storage_ == other.storage_) return true;
  auto a = reinterpret_cast<std::uintptr_t>(data_unchecked());
  auto b = reinterpret_cast<std::uintptr_t>(other.data_unchecked());
  return a < b + other.nbytes() && b < a + nbytes() && nbytes() && other.nbytes();
}

tensor tensor::reshape(const kvactor::shape& s) const {
  if (!defined()) throw error{errc::invalid_argument, "reshape of an undefined tensor"};
  for (auto dim : s.dims())
    if (dim < 0)
      throw error{errc::invalid_argument, "negative dimension in shape " + s.to_string()};
  if (s.numel() != static_cast<std::int64_t>(size()))
    throw error{errc::shape_mismatch, "cannot reshape " + describe() + " to " + s.to_string()};
  return tensor{storage_, s, dtype_};
}

}  // namespace kvactor
