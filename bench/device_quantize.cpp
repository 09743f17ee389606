// bench_device_quantize: the gradient-compression kernels on the GPU (device_kernels::
// quantize_async / dequantize_async / dequantize_add_async) against a same-run device-to-device
// copy of the gradient's size, interleaved.
//
//   bench_device_quantize [--quick]
//
// Figures (one JSON line each, see bench_common.hpp), float32 gradients of S = 4, 16, 64,
// 256 MiB (--quick: 16 MiB):
//   "2bit quantize size=S"        value = bytes read + written / median time of one call:
//                                 grad read (S), residual read and written (2·S), words written
//                                 (S/16), in GB/s; limit = 2·S / median time of copy_async of S
//                                 bytes device to device. Target: ratio >= 0.8.
//   "2bit dequantize size=S"      words read + S written; no target.
//   "2bit dequantize_add size=S"  words read + S read + S written; no target.
//   "1bit quantize size=S"        as 2bit with S/32 words; no target.
// The residual is carried from call to call, as in training. Extra keys: call_us, limit_us,
// samples, gpu. Without a CUDA device: a note on stderr, no figures, exit 0.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "device_common.hpp"

namespace {

using namespace kvbench;
namespace gc = kvactor::compression;
namespace dk = kvactor::device_kernels;

void run_size(const kvactor::device_stream& s, std::size_t bytes, const timing_config& tc,
              const std::string& gpu) {
  const kvactor::device d = s.device();
  const std::size_t n = bytes / sizeof(float);
  // A random gradient (uploaded once), a zero residual.
  std::vector<float> host(n);
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  for (auto& x : host)
    x = normal(rng);
  dev_mem grad(d, bytes), residual(d, bytes), out(d, bytes), acc(d, bytes);
  dev_mem words(d, gc::words(gc::kind::two_bit, n) * 4 + gc::words(gc::kind::one_bit, n) * 4);
  dev_mem copy_dst(d, bytes);
  dk::copy_async(s, grad.ptr(), d, host.data(), kvactor::device::cpu(), bytes);
  dk::fill_async(s, kvactor::dtype::float32, residual.ptr(), 0.0, n);
  dk::fill_async(s, kvactor::dtype::float32, acc.ptr(), 0.0, n);
  kvactor::synchronize(s);

  const gc::params two{gc::kind::two_bit, 0.5f}, one{gc::kind::one_bit, 0.0f};
  const double w2 = double(gc::words(two.type, n) * 4), w1 = double(gc::words(one.type, n) * 4);
  const double S = double(bytes);
  timed_path copy("copy_async device-to-device", 2 * S,
                  [&] { dk::copy_async(s, copy_dst.ptr(), d, grad.ptr(), d, bytes); });
  timed_path q2("2bit quantize", 3 * S + w2, [&] {
    dk::quantize_async(s, two, grad.as<float>(), residual.as<float>(), words.as<std::uint32_t>(),
                       n);
  });
  timed_path d2("2bit dequantize", S + w2, [&] {
    dk::dequantize_async(s, two, words.as<std::uint32_t>(), out.as<float>(), n);
  });
  timed_path a2("2bit dequantize_add", 2 * S + w2, [&] {
    dk::dequantize_add_async(s, two, words.as<std::uint32_t>(), acc.as<float>(), n);
  });
  timed_path q1("1bit quantize", 3 * S + w1, [&] {
    dk::quantize_async(s, one, grad.as<float>(), residual.as<float>(), words.as<std::uint32_t>(),
                       n);
  });
  run_interleaved(s, {&copy, &q2, &d2, &a2, &q1}, tc);
  const std::string size = " size=" + size_name(bytes);
  emit(rate_figure("device_quantize", "2bit quantize" + size, q2, copy, 0.8, gpu));
  emit(rate_figure("device_quantize", "2bit dequantize" + size, d2, copy, std::nullopt, gpu));
  emit(rate_figure("device_quantize", "2bit dequantize_add" + size, a2, copy, std::nullopt, gpu));
  emit(rate_figure("device_quantize", "1bit quantize" + size, q1, copy, std::nullopt, gpu));
}

}  // namespace

int main(int argc, char** argv) {
  return kvbench::device_bench_main(
      argc, argv, "bench_device_quantize", [](const kvbench::device_bench& b) {
        using kvbench::MiB;
        const std::vector<std::size_t> sizes =
            b.quick ? std::vector<std::size_t>{16 * MiB}
                    : std::vector<std::size_t>{4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB};
        for (std::size_t size : sizes)
          run_size(b.stream, size, b.timing, b.gpu);
      });
}
