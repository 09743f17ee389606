// Without a CUDA device (no GPU here, or a build with KVACTOR_ENABLE_CUDA=OFF) every way into
// the device layer is refused cleanly: errc::unsupported naming the device and the reason,
// nothing half-made. Where a GPU is present the refusals do not apply and the test skips (the
// gpu-labelled tests cover that case).
#include <gtest/gtest.h>

#include <string>

#include "errc_assert.hpp"
#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_memory.hpp"
#include "kvactor/tensor.hpp"

namespace kvactor {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

TEST(CudaRefusal, NoDeviceIsReported) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_FALSE(cuda_available());
  EXPECT_ERRC(check_cuda_device(device::cuda(0)), errc::unsupported);
  EXPECT_ERRC(check_cuda_device(device::cpu()), errc::invalid_argument);
}

TEST(CudaRefusal, CudaTensorsAreRefusedWithAClearMessage) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  for (int i : {0, 1, 7}) {
    const device d = device::cuda(i);
    EXPECT_ERRC(tensor::empty({2}, dtype::float32, d), errc::unsupported);
    EXPECT_ERRC(tensor::zeros({2, 3}, dtype::float16, d), errc::unsupported);
    EXPECT_ERRC(tensor::ones({2}, dtype::bfloat16, d), errc::unsupported);
    EXPECT_ERRC(tensor::full({2}, 3.0, dtype::int64, d), errc::unsupported);
    EXPECT_ERRC(tensor::ones({2}).copy_to(d), errc::unsupported);
    float mem[2] = {0, 0};
    EXPECT_ERRC(tensor::view_bytes(mem, {2}, dtype::float32, d), errc::unsupported);
    const auto msg = message_of([&] { (void)tensor::zeros({2}, dtype::float32, d); });
    EXPECT_NE(msg.find("unsupported"), std::string::npos) << msg;
    EXPECT_NE(msg.find(d.to_string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("CUDA"), std::string::npos) << msg;
  }
  // CPU tensors are untouched by it.
  auto x = tensor::full({3}, 2.0);
  EXPECT_EQ(x.copy_to(device::cpu()).to_vector(), (std::vector<double>{2, 2, 2}));
}

TEST(CudaRefusal, StreamsPoolsAndKernelsAreRefused) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_ERRC(get_stream(device::cuda(0)), errc::unsupported);
  EXPECT_ERRC(get_stream(device::cuda(0), stream_priority::high, 3), errc::unsupported);
  EXPECT_ERRC(device_pool::of(device::cuda(0)), errc::unsupported);
  EXPECT_ERRC(pinned_pool::global().acquire(64), errc::unsupported);
  EXPECT_EQ(pinned_pool::global().get_stats().live_bytes, 0u);
  const device_stream none;
  EXPECT_FALSE(none.valid());
  EXPECT_ERRC(enqueue_callback(none, [](const status&) {}), errc::unsupported);
  EXPECT_ERRC(synchronize(none), errc::unsupported);
  EXPECT_ERRC(stream_wait(none, none), errc::unsupported);
  float a[4] = {}, b[4] = {};
  const void* srcs[1] = {b};
  EXPECT_ERRC(device_kernels::sum_async(none, dtype::float32, a, srcs, 1, 4), errc::unsupported);
  EXPECT_ERRC(device_kernels::fill_async(none, dtype::float32, a, 1.0, 4), errc::unsupported);
  EXPECT_ERRC(device_kernels::copy_async(none, a, device::cuda(0), b, device::cpu(), 16),
              errc::unsupported);
  EXPECT_ERRC(device_kernels::quantize_async(none, compression::params{}, a, b, nullptr, 4),
              errc::unsupported);
  EXPECT_ERRC(device_kernels::sgd_update_async(none, dtype::float32, a, b, nullptr,
                                               kernels::sgd_params{}, 4),
              errc::unsupported);
  EXPECT_ERRC(device_kernels::adam_update_async(none, dtype::float32, a, b, a, b,
                                                kernels::adam_params{}, 4),
              errc::unsupported);
}

}  // namespace
}  // namespace kvactor
