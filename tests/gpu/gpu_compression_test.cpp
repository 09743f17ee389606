// 1-bit and 2-bit gradient compression on the device against device/src/cpu/compression.cpp, bit
// for bit: the words, the residuals over several rounds (NaNs may differ only in sign and
// payload), dequantize and dequantize_add (merging several senders), for lengths around the
// word and warp sizes and gradients with specials (NaN, ±inf, subnormals, ±0, exactly ±t), on
// 16-byte aligned buffers (the kernels' vector path) and on buffers 4 bytes past that (the
// element-per-thread path).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errc_assert.hpp"
#include "gpu_test_util.hpp"
#include "kvactor/detail/compression.hpp"

namespace kvactor {
namespace {

using namespace gputest;

struct case_t {
  compression::kind kind;
  float threshold;
};

std::vector<float> gradient(std::size_t n, std::uint32_t seed, float t) {
  auto g = random_floats(n, seed, 0.25f, true);
  // Values on the decision points and just beside them.
  const float edges[] = {t,
                         -t,
                         std::nextafter(t, 0.0f),
                         std::nextafter(-t, 0.0f),
                         std::nextafter(t, 10.0f),
                         1e-45f,
                         -1e-45f,
                         0.0f,
                         -0.0f};
  for (std::size_t i = 0; i < n && i < 40; ++i)
    g[(i * 7919) % n] = edges[i % 9];
  return g;
}

void check_case(const case_t& c, std::size_t n, std::size_t off) {
  const device d = logical_device(0);
  const auto s = get_stream(d, stream_priority::high, 2);
  const compression::params p{c.kind, c.threshold};
  const std::size_t words = compression::words(c.kind, n);
  const std::string what = std::string{compression::to_string(c.kind)} +
                           " t=" + std::to_string(c.threshold) + " n=" + std::to_string(n) +
                           " offset=" + std::to_string(off);

  auto residual = random_floats(n, 5u + static_cast<std::uint32_t>(n), 0.1f, false);
  dev_buffer dg(d, n * 4, off), dr(d, n * 4, off), dw(d, words * 4, off), dout(d, n * 4, off),
      dacc(d, n * 4, off);
  upload(s, dr, residual);
  // The accumulator starts with -0.0 and other values (acc + (+0) turns -0 into +0).
  std::vector<float> acc(n);
  for (std::size_t i = 0; i < n; ++i)
    acc[i] = i % 3 == 0 ? -0.0f : static_cast<float>(i) * 0.5f;
  upload(s, dacc, acc);

  for (int round = 0; round < 3; ++round) {
    const auto g = gradient(n, static_cast<std::uint32_t>(round * 7 + n), c.threshold);
    upload(s, dg, g);
    // Garbage in the output words: quantize must write every word, padding included.
    std::vector<std::uint32_t> junk(words, 0xdeadbeefu);
    upload(s, dw, junk);
    device_kernels::quantize_async(s, p, dg.as<float>(), dr.as<float>(), dw.as<std::uint32_t>(), n);
    std::vector<std::uint32_t> want_words(words, 0xdeadbeefu);
    compression::quantize(p, g.data(), residual.data(), want_words.data(), n, 0, words);
    const auto got_words = download<std::uint32_t>(s, dw, words);
    EXPECT_EQ(got_words, want_words) << what << " round " << round;
    const auto got_res = download<float>(s, dr, n);
    EXPECT_TRUE(same_elements(dtype::float32, got_res.data(), residual.data(), n))
        << what << " residual, round " << round;

    device_kernels::dequantize_async(s, p, dw.as<std::uint32_t>(), dout.as<float>(), n);
    std::vector<float> want_out(n);
    compression::dequantize(p, want_words.data(), want_out.data(), n, 0, words);
    const auto got_out = download<float>(s, dout, n);
    EXPECT_TRUE(same_elements(dtype::float32, got_out.data(), want_out.data(), n))
        << what << " dequantize";

    device_kernels::dequantize_add_async(s, p, dw.as<std::uint32_t>(), dacc.as<float>(), n);
    compression::dequantize_add(p, want_words.data(), acc.data(), n, 0, words);
    const auto got_acc = download<float>(s, dacc, n);
    EXPECT_TRUE(same_elements(dtype::float32, got_acc.data(), acc.data(), n))
        << what << " dequantize_add";
  }
}

TEST(GpuCompression, TwoBitMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (float t : {0.5f, 0.3f, 1e-38f})
    for (std::size_t n : {1, 3, 4, 5, 15, 16, 17, 31, 32, 33, 127, 128, 129, 1000, 65537, 1 << 20})
      for (std::size_t off : {0, 4})
        check_case({compression::kind::two_bit, t}, n, off);
}

TEST(GpuCompression, OneBitMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (float t : {0.0f, 0.5f, -0.25f})
    for (std::size_t n : {1, 3, 4, 5, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 65537, 1 << 20})
      for (std::size_t off : {0, 4})
        check_case({compression::kind::one_bit, t}, n, off);
}

TEST(GpuCompression, NoneCopiesAndAdds) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (std::size_t n : {1, 17, 4099})
    check_case({compression::kind::none, 0.5f}, n, 0);
}

TEST(GpuCompression, MergingSendersMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const auto s = get_stream(d);
  const std::size_t n = 100003;
  const compression::params p{compression::kind::two_bit, 0.25f};
  const std::size_t words = compression::words(p.type, n);
  std::vector<float> acc(n, 0.0f);
  dev_buffer dacc(d, n * 4), dg(d, n * 4), dr(d, n * 4), dw(d, words * 4);
  upload(s, dacc, acc);
  for (int sender = 0; sender < 4; ++sender) {
    auto g = random_floats(n, 100u + static_cast<std::uint32_t>(sender), 0.5f, false);
    std::vector<float> r(n, 0.0f);
    std::vector<std::uint32_t> w(words);
    upload(s, dg, g);
    upload(s, dr, r);
    device_kernels::quantize_async(s, p, dg.as<float>(), dr.as<float>(), dw.as<std::uint32_t>(), n);
    device_kernels::dequantize_add_async(s, p, dw.as<std::uint32_t>(), dacc.as<float>(), n);
    compression::quantize(p, g.data(), r.data(), w.data(), n, 0, words);
    compression::dequantize_add(p, w.data(), acc.data(), n, 0, words);
  }
  const auto got = download<float>(s, dacc, n);
  EXPECT_TRUE(same_elements(dtype::float32, got.data(), acc.data(), n));
}

}  // namespace
}  // namespace kvactor
