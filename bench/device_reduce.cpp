// bench_device_reduce: the fused k-way sum on one GPU (device_kernels::sum_async) against a
// device-to-device copy moving the same bytes, measured in the same run, interleaved.
//
//   bench_device_reduce [--quick]
//
// Figures (one JSON line each, see bench_common.hpp), float32, k = 2, 4, 8 inputs of
// S = 1, 4, 16, 64, 256 MiB each (--quick: k = 2, 8 and S = 1, 16 MiB):
//   "k=K size=S"   value = (K+1)·S bytes read + written / median time of one sum (GB/s);
//                  limit = the same rate for copy_async of (K+1)·S/2 bytes device to device
//                  (cudaMemcpyAsync: the same bytes read + written). Target: ratio >= 0.9
//                  from S = 16 MiB (below, launch latency dominates both).
//   "k=4 size=S dtype=float16|bfloat16" (full mode, S = 64 MiB): the 16-bit sums (float32
//                  accumulation), same limit and target.
// Extra keys: call_us, limit_us, samples, gpu.
// Without a CUDA device: a note on stderr, no figures, exit 0.
#include <cstring>
#include <string>
#include <vector>

#include "device_common.hpp"

namespace {

using namespace kvbench;

void run_case(const kvactor::device_stream& s, kvactor::dtype t, std::size_t k,
              std::size_t bytes_per_input, bool with_dtype, const timing_config& tc,
              const std::string& gpu) {
  const kvactor::device d = s.device();
  const std::size_t n = bytes_per_input / kvactor::size_of(t);
  std::vector<dev_mem> inputs;
  std::vector<const void*> srcs;
  for (std::size_t j = 0; j < k; ++j) {
    inputs.emplace_back(d, bytes_per_input);
    kvactor::device_kernels::fill_async(s, t, inputs.back().ptr(), 1.0 + double(j), n);
    srcs.push_back(inputs.back().ptr());
  }
  dev_mem out(d, bytes_per_input);
  const std::size_t moved = (k + 1) * bytes_per_input;
  const std::size_t copy_bytes = moved / 2;
  dev_mem copy_src(d, copy_bytes), copy_dst(d, copy_bytes);
  kvactor::device_kernels::fill_async(s, kvactor::dtype::uint8, copy_src.ptr(), 1.0, copy_bytes);
  kvactor::synchronize(s);

  timed_path copy("copy_async device-to-device", double(moved), [&] {
    kvactor::device_kernels::copy_async(s, copy_dst.ptr(), d, copy_src.ptr(), d, copy_bytes);
  });
  timed_path sum("sum_async", double(moved),
                 [&] { kvactor::device_kernels::sum_async(s, t, out.ptr(), srcs.data(), k, n); });
  run_interleaved(s, {&copy, &sum}, tc);
  std::string name = "k=" + std::to_string(k) + " size=" + size_name(bytes_per_input);
  if (with_dtype) name += std::string{" dtype="} + kvactor::to_string(t);
  emit(rate_figure("device_reduce", name, sum, copy,
                   bytes_per_input >= 16 * MiB ? std::optional<double>{0.9} : std::nullopt, gpu));
}

}  // namespace

int main(int argc, char** argv) {
  return kvbench::device_bench_main(
      argc, argv, "bench_device_reduce", [](const kvbench::device_bench& b) {
        using kvbench::MiB;
        const std::vector<std::size_t> ks =
            b.quick ? std::vector<std::size_t>{2, 8} : std::vector<std::size_t>{2, 4, 8};
        const std::vector<std::size_t> sizes =
            b.quick ? std::vector<std::size_t>{1 * MiB, 16 * MiB}
                    : std::vector<std::size_t>{1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB};
        for (std::size_t k : ks)
          for (std::size_t size : sizes)
            run_case(b.stream, kvactor::dtype::float32, k, size, false, b.timing, b.gpu);
        if (!b.quick)
          for (auto t : {kvactor::dtype::float16, kvactor::dtype::bfloat16})
            run_case(b.stream, t, 4, 64 * MiB, true, b.timing, b.gpu);
      });
}
