// Private to sum_float.cu / sum_int.cu: the fused k-way sum. One pass: each element of dst is
// the sum of the k sources in order, computed in darith<T>::type and stored once, exactly as
// kernels::sum does on the CPU (16-bit floats accumulate in float32 and round once, integers
// wrap). With every pointer 16-byte aligned a thread handles 16 bytes per source per step
// (all k loads issued before the adds); the rest, or everything when unaligned, goes element
// by element. dst may be one of the sources: each thread reads its elements before it writes
// them, and no other thread touches them.
#pragma once

#include "device_math.cuh"
#include "launch.hpp"

namespace kvactor::cudak {

template <int K>
struct src_ptrs {
  const void* p[K];
};
constexpr int max_inputs = 256;  // device_kernels::max_sum_inputs

template <class T>
union pack {
  static constexpr int count = 16 / sizeof(T);
  uint4 raw;
  T e[count];
};

// K inputs known at compile time.
template <class T, int K>
__global__ void __launch_bounds__(block_threads)
    sum_fixed(T* dst, src_ptrs<K> s, std::size_t nvec, std::size_t n) {
  using A = darith<T>;
  using P = pack<T>;
  const std::size_t stride = grid_stride();
  const std::size_t tid = thread_index();
  for (std::size_t v = tid; v < nvec; v += stride) {
    P in[K];
#pragma unroll
    for (int j = 0; j < K; ++j)
      in[j].raw = static_cast<const uint4*>(s.p[j])[v];
    P out;
#pragma unroll
    for (int e = 0; e < P::count; ++e) {
      typename A::type acc = A::in(in[0].e[e]);
#pragma unroll
      for (int j = 1; j < K; ++j)
        acc += A::in(in[j].e[e]);
      out.e[e] = A::out(acc);
    }
    reinterpret_cast<uint4*>(dst)[v] = out.raw;
  }
  for (std::size_t i = nvec * P::count + tid; i < n; i += stride) {
    typename A::type acc = A::in(static_cast<const T*>(s.p[0])[i]);
#pragma unroll
    for (int j = 1; j < K; ++j)
      acc += A::in(static_cast<const T*>(s.p[j])[i]);
    dst[i] = A::out(acc);
  }
}

// Any k up to max_inputs.
template <class T>
__global__ void __launch_bounds__(block_threads)
    sum_any(T* dst, src_ptrs<max_inputs> s, int k, std::size_t nvec, std::size_t n) {
  using A = darith<T>;
  using P = pack<T>;
  const std::size_t stride = grid_stride();
  const std::size_t tid = thread_index();
  for (std::size_t v = tid; v < nvec; v += stride) {
    P in;
    in.raw = static_cast<const uint4*>(s.p[0])[v];
    typename A::type acc[P::count];
#pragma unroll
    for (int e = 0; e < P::count; ++e)
      acc[e] = A::in(in.e[e]);
    for (int j = 1; j < k; ++j) {
      in.raw = static_cast<const uint4*>(s.p[j])[v];
#pragma unroll
      for (int e = 0; e < P::count; ++e)
        acc[e] += A::in(in.e[e]);
    }
    P out;
#pragma unroll
    for (int e = 0; e < P::count; ++e)
      out.e[e] = A::out(acc[e]);
    reinterpret_cast<uint4*>(dst)[v] = out.raw;
  }
  for (std::size_t i = nvec * P::count + tid; i < n; i += stride) {
    typename A::type acc = A::in(static_cast<const T*>(s.p[0])[i]);
    for (int j = 1; j < k; ++j)
      acc += A::in(static_cast<const T*>(s.p[j])[i]);
    dst[i] = A::out(acc);
  }
}

template <class T, int K>
cudaError_t launch_fixed(const launch& l, void* dst, const void* const* srcs, std::size_t nvec,
                         std::size_t n) {
  src_ptrs<K> s;
  for (int j = 0; j < K; ++j)
    s.p[j] = srcs[j];
  const std::size_t tail = n - nvec * pack<T>::count;
  const unsigned blocks = grid_for(l, sum_fixed<T, K>, nvec > tail ? nvec : tail);
  sum_fixed<T, K><<<blocks, block_threads, 0, l.stream>>>(static_cast<T*>(dst), s, nvec, n);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_sum(const launch& l, void* dst, const void* const* srcs, std::size_t k,
                       std::size_t n, bool vector) {
  const std::size_t nvec = vector ? n / pack<T>::count : 0;
  switch (k) {
    case 1:
      return launch_fixed<T, 1>(l, dst, srcs, nvec, n);
    case 2:
      return launch_fixed<T, 2>(l, dst, srcs, nvec, n);
    case 3:
      return launch_fixed<T, 3>(l, dst, srcs, nvec, n);
    case 4:
      return launch_fixed<T, 4>(l, dst, srcs, nvec, n);
    case 5:
      return launch_fixed<T, 5>(l, dst, srcs, nvec, n);
    case 6:
      return launch_fixed<T, 6>(l, dst, srcs, nvec, n);
    case 7:
      return launch_fixed<T, 7>(l, dst, srcs, nvec, n);
    case 8:
      return launch_fixed<T, 8>(l, dst, srcs, nvec, n);
    default:
      break;
  }
  if (k > static_cast<std::size_t>(max_inputs)) return cudaErrorInvalidValue;
  src_ptrs<max_inputs> s{};
  for (std::size_t j = 0; j < k; ++j)
    s.p[j] = srcs[j];
  const std::size_t tail = n - nvec * pack<T>::count;
  const unsigned blocks = grid_for(l, sum_any<T>, nvec > tail ? nvec : tail);
  sum_any<T><<<blocks, block_threads, 0, l.stream>>>(static_cast<T*>(dst), s, static_cast<int>(k),
                                                     nvec, n);
  return cudaGetLastError();
}

}  // namespace kvactor::cudak
