// The CUDA runtime layer: devices, stream pools and priorities, completion callbacks (after the
// work, in order, with errors), cross-stream waits, the pinned and device pools, argument errors.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "errc_assert.hpp"
#include "gpu_test_util.hpp"

namespace kvactor {
namespace {

using namespace std::chrono_literals;
using namespace gputest;

TEST(GpuRuntime, DevicesAreCountedAndChecked) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  EXPECT_TRUE(cuda_compiled() || cuda_emulated());
  EXPECT_TRUE(cuda_available());
  const int n = cuda_device_count();
  EXPECT_NO_THROW(check_cuda_device(device::cuda(0)));
  EXPECT_ERRC(check_cuda_device(device::cuda(n)), errc::invalid_argument);
  EXPECT_ERRC(check_cuda_device(device::cuda(-1)), errc::invalid_argument);
  EXPECT_ERRC(check_cuda_device(device::cpu()), errc::invalid_argument);
  EXPECT_ERRC(tensor::zeros({4}, dtype::float32, device::cuda(n)), errc::invalid_argument);
  EXPECT_ERRC(get_stream(device::cuda(n)), errc::invalid_argument);
}

TEST(GpuRuntime, StreamPoolsHaveTwoPriorities) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const device d : logical_devices()) {
    const std::size_t n = streams_per_priority();
    ASSERT_GE(n, 1u);
    std::set<void*> normal, high;
    for (std::size_t h = 0; h < n; ++h) {
      const auto s = get_stream(d, stream_priority::normal, h);
      const auto t = get_stream(d, stream_priority::high, h);
      ASSERT_TRUE(s.valid());
      ASSERT_TRUE(t.valid());
      EXPECT_EQ(s.device(), d);
      EXPECT_EQ(t.priority(), stream_priority::high);
      EXPECT_EQ(s, get_stream(d, stream_priority::normal, h + n));  // the hint picks the stream
      normal.insert(s.native_handle());
      high.insert(t.native_handle());
      // Lower numbers are more urgent; an H100 has several levels.
      EXPECT_LE(native_priority(t), native_priority(s));
    }
    EXPECT_EQ(normal.size(), n);
    EXPECT_EQ(high.size(), n);
    for (void* h : high)
      EXPECT_EQ(normal.count(h), 0u);
    EXPECT_LT(native_priority(get_stream(d, stream_priority::high)),
              native_priority(get_stream(d, stream_priority::normal)))
        << "the device reports a single stream priority";
  }
}

// The callback sees the work's result in host memory: it ran after the work, without any
// blocking wait on the enqueuing side.
void callback_after_work(bool pinned_host) {
  const device d = logical_device(0);
  const auto s = get_stream(d, stream_priority::normal, 1);
  const std::size_t n = std::size_t{16} << 20;  // 64 MiB of floats
  dev_buffer x(d, n * sizeof(float));
  std::shared_ptr<buffer> pinned;
  std::vector<float> pageable;
  float* host = nullptr;
  if (pinned_host) {
    pinned = pinned_pool::global().acquire(n * sizeof(float));
    host = static_cast<float*>(pinned->data());
  } else {
    pageable.assign(n, 0.0f);
    host = pageable.data();
  }
  for (int round = 0; round < 3; ++round) {
    const float value = 3.0f + static_cast<float>(round);
    host[0] = host[n / 2] = host[n - 1] = -1.0f;
    device_kernels::fill_async(s, dtype::float32, x.ptr(), value, n);
    device_kernels::to_host_async(s, host, x.ptr(), n * sizeof(float));
    // Shared with the callback, so that a late callback after a failed wait touches nothing
    // freed (the host buffer then stays alive through the pinned buffer / the leaked copy).
    auto seen = std::make_shared<std::promise<std::vector<float>>>();
    auto fut = seen->get_future();
    enqueue_callback(s, [seen, host, n](const status& st) {
      EXPECT_TRUE(st.is_ok()) << st.to_string();
      seen->set_value({host[0], host[n / 2], host[n - 1]});
    });
    if (fut.wait_for(30s) != std::future_status::ready) {
      if (!pinned_host) new std::vector<float>(std::move(pageable));  // keep it: leaked
      FAIL() << "the completion callback did not run within 30 s";
    }
    for (float v : fut.get())
      EXPECT_EQ(v, value);
  }
}

TEST(GpuRuntime, CallbackRunsAfterTheWorkPinnedHost) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  callback_after_work(true);
}

TEST(GpuRuntime, CallbackRunsAfterTheWorkPageableHost) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  callback_after_work(false);
}

TEST(GpuRuntime, CallbacksRunInStreamOrderAndMayEnqueueMore) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const auto s = get_stream(d, stream_priority::high, 0);
  // Shared with the callbacks: nothing they touch dies with a failed test.
  struct shared_state {
    dev_buffer x;
    std::mutex mu;
    std::vector<int> order;
    std::promise<void> done;
  };
  auto st = std::make_shared<shared_state>();
  st->x = dev_buffer(d, 1 << 20);
  for (int i = 0; i < 200; ++i) {
    device_kernels::fill_async(s, dtype::uint8, st->x.ptr(), i % 256, 1 << 20);
    enqueue_callback(s, [st, i](const status& result) {
      EXPECT_TRUE(result.is_ok());
      std::lock_guard<std::mutex> g(st->mu);
      st->order.push_back(i);
    });
  }
  // A callback may enqueue more work and another callback (no deadlock, runs later).
  enqueue_callback(s, [st, s](const status&) {
    device_kernels::fill_async(s, dtype::uint8, st->x.ptr(), 7, 1 << 20);
    enqueue_callback(s, [st](const status& result) {
      EXPECT_TRUE(result.is_ok());
      st->done.set_value();
    });
  });
  ASSERT_EQ(st->done.get_future().wait_for(30s), std::future_status::ready);
  std::lock_guard<std::mutex> g(st->mu);
  ASSERT_EQ(st->order.size(), 200u);
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(st->order[static_cast<std::size_t>(i)], i);
}

TEST(GpuRuntime, StreamWaitOrdersWorkAcrossStreams) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const auto devs = logical_devices();
  const auto a = get_stream(devs[0], stream_priority::normal, 2);
  const auto b = get_stream(devs[1], stream_priority::normal, 3);
  const std::size_t n = std::size_t{32} << 20;
  dev_buffer x(devs[0], n * sizeof(float)), y(devs[1], n * sizeof(float));
  for (int round = 1; round <= 3; ++round) {
    // Several passes on a, so that b would overtake them without the wait.
    for (int k = 0; k < 8; ++k)
      device_kernels::fill_async(a, dtype::float32, x.ptr(), round * 10 + k, n);
    stream_wait(b, a);
    device_kernels::copy_async(b, y.ptr(), devs[1], x.ptr(), devs[0], n * sizeof(float));
    synchronize(b);
    const auto host = download<float>(b, y, n);
    EXPECT_EQ(host.front(), static_cast<float>(round * 10 + 7));
    EXPECT_EQ(host.back(), static_cast<float>(round * 10 + 7));
  }
}

TEST(GpuRuntime, DevicePoolReusesBuffers) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto& pool = device_pool::of(logical_device(0));
  EXPECT_EQ(pool.where(), logical_device(0));
  EXPECT_EQ(&pool, &device_pool::of(logical_device(0)));
  void* first = nullptr;
  {
    auto b = pool.acquire(3 << 20);
    ASSERT_NE(b, nullptr);
    EXPECT_GE(b->capacity(), std::size_t{3} << 20);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->data()) % 256, 0u);
    first = b->data();
  }
  const auto before = pool.get_stats();
  {
    auto b = pool.acquire(3 << 20);
    EXPECT_EQ(b->data(), first);
  }
  const auto after = pool.get_stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses);
  pool.trim();
  EXPECT_EQ(pool.get_stats().cached_bytes, 0u);
}

TEST(GpuRuntime, PinnedBuffersMakeCpuTensorsThatCopyDirectly) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  auto& pool = pinned_pool::global();
  auto b = pool.acquire(1000 * sizeof(float));
  auto host = tensor::from_buffer(b, {1000}, dtype::float32);
  EXPECT_TRUE(host.device().is_cpu());
  for (std::size_t i = 0; i < 1000; ++i)
    host.set(i, static_cast<double>(i) * 0.5);
  const auto dev = host.copy_to(logical_device(0));
  auto back = tensor::from_buffer(pool.acquire(1000 * sizeof(float)), {1000}, dtype::float32);
  dev.copy_to(back);
  EXPECT_EQ(back.to_vector(), host.to_vector());
  const auto stats = pool.get_stats();
  EXPECT_GE(stats.live_bytes, 2000 * sizeof(float));
}

TEST(GpuRuntime, InvalidArgumentsThrowAndEnqueueNothing) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const auto s = get_stream(d);
  dev_buffer x(d, 4096);
  const void* srcs[1] = {x.ptr()};
  EXPECT_ERRC(device_kernels::sum_async(device_stream{}, dtype::float32, x.ptr(), srcs, 1, 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::sum_async(s, dtype::float32, x.ptr(), srcs, 0, 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::sum_async(s, dtype::float32, x.ptr(), srcs,
                                        device_kernels::max_sum_inputs + 1, 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::sum_async(s, dtype::float32, nullptr, srcs, 1, 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::fill_async(s, dtype::float32, nullptr, 1.0, 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::copy_async(s, x.ptr(), device::cpu(), x.ptr(), device::cpu(), 4),
              errc::invalid_argument);
  EXPECT_ERRC(device_kernels::to_device_async(s, x.ptr(), nullptr, 4), errc::invalid_argument);
  float master[4] = {};
  EXPECT_ERRC(device_kernels::sgd_update_async(s, dtype::float32, x.ptr(), x.ptr(), nullptr,
                                               kernels::sgd_params{}, 4, master),
              errc::invalid_argument);
  EXPECT_ERRC(enqueue_callback(s, nullptr), errc::invalid_argument);
  EXPECT_ERRC(synchronize(device_stream{}), errc::invalid_argument);
  // Nothing of the above reached the stream, and the stream still works.
  EXPECT_NO_THROW(synchronize(s));
  // n == 0 enqueues nothing, even with null pointers.
  EXPECT_NO_THROW(device_kernels::fill_async(s, dtype::float32, nullptr, 1.0, 0));
  EXPECT_NO_THROW(device_kernels::to_host_async(s, nullptr, nullptr, 0));
}

}  // namespace
}  // namespace kvactor

namespace kvactor {
namespace {

// Emulated device memory is as off-limits to the host as GPU memory: touching it faults, so
// that host code that would crash on a GPU crashes in the emulated runs too.
TEST(GpuRuntimeDeathTest, EmulatedDeviceMemoryFaultsOnHostAccess) {
  if (!cuda_emulated()) GTEST_SKIP() << "only for emulated devices";
  auto buf = device_pool::of(device::cuda(0)).acquire(64);
  EXPECT_DEATH(
      {
        volatile float* p = static_cast<float*>(buf->data());
        *p = 1.0f;
      },
      "");
  // Pinned host memory stays host memory.
  auto pinned = pinned_pool::global().acquire(64);
  static_cast<float*>(pinned->data())[0] = 2.0f;
  EXPECT_EQ(static_cast<float*>(pinned->data())[0], 2.0f);
}

}  // namespace
}  // namespace kvactor
