// The fused k-way sum for the integer dtypes (see sum.cuh); sums wrap.
#include "sum.cuh"

namespace kvactor::cudak {

cudaError_t sum_integer(const launch& l, dtype t, void* dst, const void* const* srcs, std::size_t k,
                        std::size_t n, bool vector) {
  switch (t) {
    case dtype::int32:
      return launch_sum<std::int32_t>(l, dst, srcs, k, n, vector);
    case dtype::int64:
      return launch_sum<std::int64_t>(l, dst, srcs, k, n, vector);
    case dtype::uint8:
      return launch_sum<std::uint8_t>(l, dst, srcs, k, n, vector);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace kvactor::cudak
