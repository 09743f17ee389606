// The fused k-way sum for the floating dtypes (see sum.cuh).
#include "sum.cuh"

namespace kvactor::cudak {

cudaError_t sum_floating(const launch& l, dtype t, void* dst, const void* const* srcs,
                         std::size_t k, std::size_t n, bool vector) {
  switch (t) {
    case dtype::float32:
      return launch_sum<float>(l, dst, srcs, k, n, vector);
    case dtype::float64:
      return launch_sum<double>(l, dst, srcs, k, n, vector);
    case dtype::float16:
      return launch_sum<h16>(l, dst, srcs, k, n, vector);
    case dtype::bfloat16:
      return launch_sum<b16>(l, dst, srcs, k, n, vector);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace kvactor::cudak
