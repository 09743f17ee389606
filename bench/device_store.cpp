// bench_device_store: the `device` store on one GPU against the kernels it runs, measured in the
// same run, interleaved: what the store's actors, futures and bookkeeping cost on a GPU.
//
//   bench_device_store [--quick]
//
// Figures (one JSON line each, see bench_common.hpp), float32, k = 4 values of S = 16, 64,
// 256 MiB each on cuda(0) (--quick: 16 MiB):
//   "pushpull k=4 size=S"  kv.push(key, k values) then kv.pull(key, out).get(); value =
//                          (k+1)·S bytes (the sum's reads and write) / median time of one
//                          push+pull (GB/s); limit = the same bytes / median time of the fused
//                          k-way sum alone (device_kernels::sum_async). The ratio is thus the
//                          kernel's time over the store's; the store also copies the value
//                          into `out` (2·S more bytes), so 1.0 is out of reach. No target.
//   "push k=4 size=S"      kv.push(key, k values).get() alone against the fused sum.
//   "pull size=S"          kv.pull(key, out).get() alone; value = 2·S bytes (read + written) /
//                          median time; limit = a device-to-device copy of S bytes.
//   "2bit push k=4 size=S" kv.push(key, k values).get() with 2-bit gradient compression
//                          (threshold 0.5); value = k·S / median time; limit = the same push in
//                          a store without compression. No target.
//   "pull size=4KiB"       the same for a pull of 4 KiB: what a call costs beyond its copy.
//   "callback round trip"  us from enqueue_callback on an idle stream to the callback having
//                          run (a promise set in it, waited on); limit = synchronize() of the
//                          idle stream. Lower is better.
// Extra keys: call_us, limit_us, samples, gpu. Without a CUDA device: a note on stderr, no
// figures, exit 0.
#include <future>
#include <string>
#include <vector>

#include "device_common.hpp"
#include "kvactor/kvstore.hpp"

namespace {

using namespace kvbench;
namespace dk = kvactor::device_kernels;

constexpr std::size_t k = 4;

/// k values of `bytes` each on the stream's device, value j filled with (j+1)·0.25 so that a
/// 2-bit push at threshold 0.5 has codes of every kind.
std::vector<kvactor::tensor> values_on(const kvactor::device_stream& s, std::size_t bytes) {
  const auto n = static_cast<std::int64_t>(bytes / sizeof(float));
  std::vector<kvactor::tensor> v;
  for (std::size_t j = 0; j < k; ++j)
    v.push_back(
        kvactor::tensor::full({n}, 0.25 * double(j + 1), kvactor::dtype::float32, s.device()));
  kvactor::synchronize(s);
  return v;
}

void pushpull_case(const device_bench& b, std::size_t bytes) {
  const auto& s = b.stream;
  const kvactor::device d = s.device();
  const std::size_t n = bytes / sizeof(float);
  const auto values = values_on(s, bytes);
  std::vector<const void*> srcs;
  for (const auto& v : values)
    srcs.push_back(v.cdata<float>());
  dev_mem sum_out(d, bytes);

  auto kv = kvactor::create("device");
  const auto shape = kvactor::shape{static_cast<std::int64_t>(n)};
  kv.init(0, kvactor::tensor::zeros(shape, kvactor::dtype::float32, d)).get();
  kvactor::tensor out = kvactor::tensor::zeros(shape, kvactor::dtype::float32, d);

  const double moved = double((k + 1) * bytes);
  timed_path kernel("sum_async", moved, [&] {
    dk::sum_async(s, kvactor::dtype::float32, sum_out.ptr(), srcs.data(), k, n);
  });
  timed_path store("device store push+pull", moved, [&] {
    kv.push(0, values);
    kv.pull(0, out).get();
  });
  run_interleaved(s, {&kernel, &store}, b.timing);
  emit(rate_figure("device_store", "pushpull k=4 size=" + size_name(bytes), store, kernel,
                   std::nullopt, b.gpu));

  // The two halves: the push alone against the sum, the pull alone against a copy.
  timed_path push("device store push", moved, [&] { kv.push(0, values).get(); });
  run_interleaved(s, {&kernel, &push}, b.timing);
  emit(rate_figure("device_store", "push k=4 size=" + size_name(bytes), push, kernel, std::nullopt,
                   b.gpu));
  timed_path copy("copy_async device-to-device", double(2 * bytes),
                  [&] { dk::copy_async(s, sum_out.ptr(), d, values[0].cdata<float>(), d, bytes); });
  timed_path pull("device store pull", double(2 * bytes), [&] { kv.pull(0, out).get(); });
  run_interleaved(s, {&copy, &pull}, b.timing);
  emit(rate_figure("device_store", "pull size=" + size_name(bytes), pull, copy, std::nullopt,
                   b.gpu));
}

void compressed_case(const device_bench& b, std::size_t bytes) {
  const auto& s = b.stream;
  const kvactor::device d = s.device();
  const auto values = values_on(s, bytes);
  const auto shape = kvactor::shape{static_cast<std::int64_t>(bytes / sizeof(float))};
  auto plain = kvactor::create("device");
  auto packed = kvactor::create("device");
  plain.init(0, kvactor::tensor::zeros(shape, kvactor::dtype::float32, d)).get();
  packed.init(0, kvactor::tensor::zeros(shape, kvactor::dtype::float32, d)).get();
  packed.set_gradient_compression("2bit", 0.5).get();

  const double pushed = double(k * bytes);
  timed_path uncompressed("device store push", pushed, [&] { plain.push(0, values).get(); });
  timed_path compressed("device store 2bit push", pushed, [&] { packed.push(0, values).get(); });
  run_interleaved(s, {&uncompressed, &compressed}, b.timing);
  emit(rate_figure("device_store", "2bit push k=4 size=" + size_name(bytes), compressed,
                   uncompressed, std::nullopt, b.gpu));
}

/// What one store call costs beyond its kernels: a pull of 4 KiB (the copy takes a few us), and
/// a completion callback's round trip against a stream synchronization.
void latency_case(const device_bench& b) {
  const auto& s = b.stream;
  const kvactor::device d = s.device();
  auto kv = kvactor::create("device");
  const kvactor::shape shape{1024};
  kv.init(0, kvactor::tensor::zeros(shape, kvactor::dtype::float32, d)).get();
  kvactor::tensor out = kvactor::tensor::zeros(shape, kvactor::dtype::float32, d);
  dev_mem a(d, 4096), c(d, 4096);
  timed_path copy("copy_async device-to-device", 8192.0,
                  [&] { dk::copy_async(s, c.ptr(), d, a.ptr(), d, 4096); });
  timed_path pull("device store pull", 8192.0, [&] { kv.pull(0, out).get(); });
  run_interleaved(s, {&copy, &pull}, b.timing);
  auto f = rate_figure("device_store", "pull size=4KiB", pull, copy, std::nullopt, b.gpu);
  emit(f);

  // Both paths wait on the host for an empty stream; bytes = 1 so that the rate is calls/s.
  timed_path sync("synchronize", 1.0, [&] { kvactor::synchronize(s); });
  timed_path callback("enqueue_callback round trip", 1.0, [&] {
    std::promise<void> p;
    kvactor::enqueue_callback(s, [&p](const kvactor::status&) { p.set_value(); });
    p.get_future().wait();
  });
  run_interleaved(s, {&sync, &callback}, b.timing);
  figure g;
  g.bench = "device_store";
  g.case_name = "callback round trip";
  g.value = callback.median_s() * 1e6;
  g.unit = "us";
  g.limit = sync.median_s() * 1e6;
  g.lower_is_better = true;
  g.extra = {{"gpu", json_string(b.gpu)}};
  emit(g);
}

}  // namespace

int main(int argc, char** argv) {
  return kvbench::device_bench_main(
      argc, argv, "bench_device_store", [](const kvbench::device_bench& b) {
        using kvbench::MiB;
        const std::vector<std::size_t> sizes =
            b.quick ? std::vector<std::size_t>{16 * MiB}
                    : std::vector<std::size_t>{16 * MiB, 64 * MiB, 256 * MiB};
        for (std::size_t size : sizes)
          pushpull_case(b, size);
        for (std::size_t size : sizes)
          compressed_case(b, size);
        latency_case(b);
      });
}
