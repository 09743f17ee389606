// bench_device_staging: host <-> device copies of pageable host memory, staged through the
// pinned pool (device_kernels::to_device_async / to_host_async), against copies from and to
// pinned memory (cudaMemcpyAsync, no staging), measured in the same run, interleaved.
//
//   bench_device_staging [--quick]
//
// Figures (one JSON line each, see bench_common.hpp), S = 1, 16, 64, 256 MiB (--quick: 16 MiB):
//   "h2d staged size=S"   value = S / median time of to_device_async from pageable memory
//                         (GB/s); limit = S / median time of copy_async from a pinned_pool
//                         buffer. Target: ratio >= 0.9.
//   "d2h staged size=S"   the same from device to pageable host memory against pinned.
// The pageable buffers come from kvactor's buffer_pool (touched before timing, as the store's
// buffers are). Extra keys: call_us, limit_us, samples, gpu.
// Where the staged rate goes (full mode, S = 64 and 256 MiB; no target):
//   "host memcpy size=S"        the host side alone: S bytes pageable -> pinned, split over as
//                               many threads as the staging copies use; limit = the pinned DMA.
//   "h2d staged size=S chunk=C" the staged copy with C-byte ring chunks instead of the default.
// Without a CUDA device: a note on stderr, no figures, exit 0.
#include <kvactor/buffer_pool.hpp>

#include <kvactor/detail/thread_pool.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "device_common.hpp"

namespace {

using namespace kvbench;

namespace dk = kvactor::device_kernels;

/// S bytes of pageable and of pinned host memory (both touched) and of device memory, and the
/// limit of the host -> device figures: copy_async from the pinned bytes.
struct buffers {
  const kvactor::device_stream& s;
  std::size_t bytes;
  std::shared_ptr<kvactor::buffer> pageable = kvactor::buffer_pool::global().acquire(bytes);
  std::shared_ptr<kvactor::buffer> pinned = kvactor::pinned_pool::global().acquire(bytes);
  dev_mem dev{s.device(), bytes};
  timed_path h2d_pinned{"copy_async from pinned", double(bytes), [this] {
                          dk::copy_async(s, dev.ptr(), s.device(), pinned->data(),
                                         kvactor::device::cpu(), this->bytes);
                        }};

  buffers(const kvactor::device_stream& st, std::size_t n) : s(st), bytes(n) {
    std::memset(pageable->data(), 1, bytes);
    std::memset(pinned->data(), 1, bytes);
  }
  buffers(const buffers&) = delete;
  buffers& operator=(const buffers&) = delete;
};

void run_size(const kvactor::device_stream& s, std::size_t bytes, const timing_config& tc,
              const std::string& gpu) {
  const kvactor::device d = s.device();
  buffers b(s, bytes);
  auto &pageable = b.pageable, &pinned = b.pinned;
  auto& dev = b.dev;
  auto& h2d_pinned = b.h2d_pinned;

  timed_path h2d_staged("to_device_async from pageable", double(bytes),
                        [&] { dk::to_device_async(s, dev.ptr(), pageable->data(), bytes); });
  run_interleaved(s, {&h2d_pinned, &h2d_staged}, tc);
  emit(rate_figure("device_staging", "h2d staged size=" + size_name(bytes), h2d_staged, h2d_pinned,
                   0.9, gpu));

  timed_path d2h_pinned("copy_async to pinned", double(bytes), [&] {
    dk::copy_async(s, pinned->data(), kvactor::device::cpu(), dev.ptr(), d, bytes);
  });
  timed_path d2h_staged("to_host_async to pageable", double(bytes),
                        [&] { dk::to_host_async(s, pageable->data(), dev.ptr(), bytes); });
  run_interleaved(s, {&d2h_pinned, &d2h_staged}, tc);
  emit(rate_figure("device_staging", "d2h staged size=" + size_name(bytes), d2h_staged, d2h_pinned,
                   0.9, gpu));
}

/// The host side of a staged copy alone, and the staged copy with other ring chunk sizes.
void explain_size(const kvactor::device_stream& s, std::size_t bytes, const timing_config& tc,
                  const std::string& gpu) {
  buffers b(s, bytes);
  auto &pageable = b.pageable, &pinned = b.pinned;
  auto& dev = b.dev;
  auto& h2d_pinned = b.h2d_pinned;
  // As many threads as copy.cpp's staging copies use (its pool plus the calling thread).
  static kvactor::thread_pool pool(
      std::clamp<std::size_t>(std::thread::hardware_concurrency() / 2, 1, 8));
  const std::size_t parts = pool.size() + 1;
  timed_path host("memcpy pageable -> pinned", double(bytes), [&] {
    pool.parallel_for(parts, [&](std::size_t i) {
      std::size_t b = 0, e = 0;
      kvactor::split_range(bytes, parts, i, b, e);
      std::memcpy(static_cast<char*>(pinned->data()) + b,
                  static_cast<const char*>(pageable->data()) + b, e - b);
    });
  });
  run_interleaved(s, {&h2d_pinned, &host}, tc);
  emit(rate_figure("device_staging", "host memcpy size=" + size_name(bytes), host, h2d_pinned,
                   std::nullopt, gpu));
  for (std::size_t chunk : {2 * MiB, 4 * MiB, 16 * MiB, 32 * MiB}) {
    dk::detail::set_staging_chunk_bytes(chunk);
    timed_path staged("to_device_async from pageable", double(bytes),
                      [&] { dk::to_device_async(s, dev.ptr(), pageable->data(), bytes); });
    run_interleaved(s, {&h2d_pinned, &staged}, tc);
    emit(rate_figure("device_staging",
                     "h2d staged size=" + size_name(bytes) + " chunk=" + size_name(chunk), staged,
                     h2d_pinned, std::nullopt, gpu));
  }
  dk::detail::set_staging_chunk_bytes(0);
}

}  // namespace

int main(int argc, char** argv) {
  return kvbench::device_bench_main(
      argc, argv, "bench_device_staging", [](const kvbench::device_bench& b) {
        using kvbench::MiB;
        const std::vector<std::size_t> sizes =
            b.quick ? std::vector<std::size_t>{16 * MiB}
                    : std::vector<std::size_t>{1 * MiB, 16 * MiB, 64 * MiB, 256 * MiB};
        for (std::size_t size : sizes)
          run_size(b.stream, size, b.timing, b.gpu);
        if (!b.quick)
          for (std::size_t size : {64 * MiB, 256 * MiB})
            explain_size(b.stream, size, b.timing, b.gpu);
      });
}
