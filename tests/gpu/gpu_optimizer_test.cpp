// SGD (with and without momentum, clipping, weight decay) and Adam on the device against the
// CPU kernels (device/src/cpu/opt_sgd.cpp, opt_adam.cpp) over several steps, for float32, float64
// and the 16-bit floats (float32 arithmetic and slots), and MXNet's multi-precision (float16 /
// bfloat16 weights with a float32 master) against the CPU's way: widen the gradient, update the
// master with the float32 kernel, round the master.
//
// Tolerance: the device does the CPU's operations in its order without fused multiply-adds,
// so results are expected to be identical; the tests allow 2 ulps (of the weight's type, and
// of float32 for the states) so that a compiler's freedom in rounding the hyper-parameters
// does not fail them. NaN matches NaN.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errc_assert.hpp"
#include "gpu_test_util.hpp"

namespace kvactor {
namespace {

using namespace gputest;

constexpr std::size_t n = 10007;
constexpr int steps = 4;
constexpr int ulps = 2;

struct sgd_case {
  float momentum, wd, clip;
};

struct state {
  std::vector<unsigned char> w, m, v, master;
};

std::vector<unsigned char> weights(dtype t, std::uint32_t seed) {
  return random_elements(t, n, seed, false);
}

std::vector<unsigned char> grads(dtype t, std::uint32_t seed) {
  auto g = random_elements(t, n, seed, false);
  // A few large values so that clipping bites.
  for (std::size_t i = 0; i < n; i += 97)
    kernels::store(t, g.data(), i, i % 2 ? 50.0 : -50.0);
  return g;
}

std::vector<unsigned char> slots(dtype t, std::uint32_t seed, bool positive) {
  const dtype st = kernels::slot_dtype(t);
  auto v = random_elements(st, n, seed, false);
  if (positive)
    for (std::size_t i = 0; i < n; ++i)
      kernels::store(st, v.data(), i, std::fabs(kernels::load(st, v.data(), i)) * 0.01);
  return v;
}

class GpuOptimizer : public ::testing::TestWithParam<dtype> {};

TEST_P(GpuOptimizer, SgdMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const dtype t = GetParam();
  const dtype st = kernels::slot_dtype(t);
  const device d = logical_device(0);
  const auto s = get_stream(d);
  for (const sgd_case c : {sgd_case{0.0f, 0.0f, -1.0f}, sgd_case{0.0f, 1e-3f, 0.5f},
                           sgd_case{0.9f, 1e-4f, -1.0f}, sgd_case{0.9f, 0.0f, 1.0f}}) {
    kernels::sgd_params p;
    p.lr = 0.05f;
    p.momentum = c.momentum;
    p.wd = c.wd;
    p.clip_gradient = c.clip;
    p.rescale_grad = 0.125f;
    auto w = weights(t, 1);
    auto m = slots(t, 2, false);
    dev_buffer dw(d, w.size()), dm(d, m.size()), dgr(d, n * size_of(t));
    upload(s, dw, w);
    upload(s, dm, m);
    void* mom_dev = c.momentum > 0 ? dm.ptr() : nullptr;
    void* mom_host = c.momentum > 0 ? m.data() : nullptr;
    for (int step = 0; step < steps; ++step) {
      const auto g = grads(t, 10u + static_cast<std::uint32_t>(step));
      upload(s, dgr, g);
      device_kernels::sgd_update_async(s, t, dw.ptr(), dgr.ptr(), mom_dev, p, n);
      kernels::sgd_update(t, w.data(), g.data(), mom_host, p, 0, n);
    }
    const auto gw = download<unsigned char>(s, dw, w.size());
    EXPECT_TRUE(close_elements(t, gw.data(), w.data(), n, ulps))
        << to_string(t) << " momentum " << c.momentum << " clip " << c.clip;
    if (c.momentum > 0) {
      const auto gm = download<unsigned char>(s, dm, m.size());
      EXPECT_TRUE(close_elements(st, gm.data(), m.data(), n, ulps)) << to_string(t) << " mom";
    }
  }
}

TEST_P(GpuOptimizer, AdamMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const dtype t = GetParam();
  const dtype st = kernels::slot_dtype(t);
  const device d = logical_device(0);
  const auto s = get_stream(d, stream_priority::high);
  for (float clip : {-1.0f, 0.3f}) {
    kernels::adam_params p;
    p.lr = 0.01f;
    p.wd = 1e-3f;
    p.clip_gradient = clip;
    p.rescale_grad = 0.5f;
    auto w = weights(t, 3);
    auto mean = slots(t, 4, false);
    auto var = slots(t, 5, true);
    dev_buffer dw(d, w.size()), dmean(d, mean.size()), dvar(d, var.size()), dgr(d, n * size_of(t));
    upload(s, dw, w);
    upload(s, dmean, mean);
    upload(s, dvar, var);
    for (int step = 0; step < steps; ++step) {
      const auto g = grads(t, 20u + static_cast<std::uint32_t>(step));
      upload(s, dgr, g);
      device_kernels::adam_update_async(s, t, dw.ptr(), dgr.ptr(), dmean.ptr(), dvar.ptr(), p, n);
      kernels::adam_update(t, w.data(), g.data(), mean.data(), var.data(), p, 0, n);
    }
    EXPECT_TRUE(
        close_elements(t, download<unsigned char>(s, dw, w.size()).data(), w.data(), n, ulps))
        << to_string(t) << " clip " << clip;
    EXPECT_TRUE(close_elements(st, download<unsigned char>(s, dmean, mean.size()).data(),
                               mean.data(), n, ulps));
    EXPECT_TRUE(close_elements(st, download<unsigned char>(s, dvar, var.size()).data(), var.data(),
                               n, ulps));
  }
}

INSTANTIATE_TEST_SUITE_P(FloatDtypes, GpuOptimizer,
                         ::testing::Values(dtype::float32, dtype::float64, dtype::float16,
                                           dtype::bfloat16),
                         [](const auto& info) { return std::string{to_string(info.param)}; });

// Multi-precision: the CPU reference is MXNet's (and actors/'s multi_precision updater's) way.
class GpuMultiPrecision : public ::testing::TestWithParam<dtype> {};

TEST_P(GpuMultiPrecision, SgdMomentumAndAdamWithAFloat32Master) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const dtype t = GetParam();
  const device d = logical_device(0);
  const auto s = get_stream(d);
  for (bool adam : {false, true}) {
    auto master = weights(dtype::float32, 7);
    std::vector<unsigned char> w(n * size_of(t));
    kernels::cast(dtype::float32, master.data(), t, w.data(), 0, n);
    auto m = slots(t, 8, false);
    auto v = slots(t, 9, true);
    dev_buffer dw(d, w.size()), dmaster(d, master.size()), dm(d, m.size()), dv(d, v.size()),
        dgr(d, n * size_of(t));
    upload(s, dw, w);
    upload(s, dmaster, master);
    upload(s, dm, m);
    upload(s, dv, v);
    kernels::sgd_params sp;
    sp.lr = 0.1f;
    sp.momentum = 0.9f;
    sp.wd = 1e-4f;
    kernels::adam_params ap;
    ap.lr = 0.003f;
    for (int step = 0; step < steps; ++step) {
      const auto g = grads(t, 30u + static_cast<std::uint32_t>(step));
      upload(s, dgr, g);
      std::vector<unsigned char> g32(n * 4);
      kernels::cast(t, g.data(), dtype::float32, g32.data(), 0, n);
      if (adam) {
        device_kernels::adam_update_async(s, t, dw.ptr(), dgr.ptr(), dm.ptr(), dv.ptr(), ap, n,
                                          dmaster.as<float>());
        kernels::adam_update(dtype::float32, master.data(), g32.data(), m.data(), v.data(), ap, 0,
                             n);
      } else {
        device_kernels::sgd_update_async(s, t, dw.ptr(), dgr.ptr(), dm.ptr(), sp, n,
                                         dmaster.as<float>());
        kernels::sgd_update(dtype::float32, master.data(), g32.data(), m.data(), sp, 0, n);
      }
      kernels::cast(dtype::float32, master.data(), t, w.data(), 0, n);
    }
    const char* which = adam ? "adam" : "sgd";
    EXPECT_TRUE(close_elements(dtype::float32,
                               download<unsigned char>(s, dmaster, master.size()).data(),
                               master.data(), n, ulps))
        << to_string(t) << " " << which << " master";
    EXPECT_TRUE(
        close_elements(t, download<unsigned char>(s, dw, w.size()).data(), w.data(), n, ulps))
        << to_string(t) << " " << which << " weight";
    EXPECT_TRUE(close_elements(dtype::float32, download<unsigned char>(s, dm, m.size()).data(),
                               m.data(), n, ulps))
        << to_string(t) << " " << which << " state";
  }
}

INSTANTIATE_TEST_SUITE_P(SixteenBit, GpuMultiPrecision,
                         ::testing::Values(dtype::float16, dtype::bfloat16),
                         [](const auto& info) { return std::string{to_string(info.param)}; });

TEST(GpuOptimizerMisc, IntegerWeightsAreLeftAlone) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  auto w = tensor::full({100}, 3.0, dtype::int32, d);
  auto g = tensor::full({100}, 1.0, dtype::int32, d);
  const auto s = get_stream(d);
  device_kernels::sgd_update_async(s, dtype::int32, w.data_unchecked(), g.data_unchecked(), nullptr,
                                   kernels::sgd_params{}, 100);
  synchronize(s);
  EXPECT_EQ(w.to_vector(), std::vector<double>(100, 3.0));
}

}  // namespace
}  // namespace kvactor
