// Device k-way sums, fills, casts and raw copies against the CPU kernels on the same inputs:
// every dtype, k from 1 past the unrolled cases, lengths that are odd and not multiples of the
// 16-byte vectors, aligned and unaligned pointers, dst aliasing a source.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errc_assert.hpp"
#include "gpu_test_util.hpp"

namespace kvactor {
namespace {

using namespace gputest;

constexpr std::size_t kmax = 33;

void check_sums(dtype t, std::size_t n, std::size_t misalign_elems) {
  const device d = logical_device(0);
  const auto s = get_stream(d, stream_priority::normal, 0);
  const std::size_t w = size_of(t), off = misalign_elems * w;
  std::vector<std::vector<unsigned char>> host;
  std::vector<dev_buffer> dev;
  for (std::size_t j = 0; j < kmax; ++j) {
    host.push_back(random_elements(t, n, static_cast<std::uint32_t>(1000 * j + n)));
    dev.emplace_back(d, n * w, off);
    upload(s, dev.back(), host.back());
  }
  dev_buffer out(d, n * w, off);
  std::vector<const void*> dsrc, hsrc;
  for (std::size_t j = 0; j < kmax; ++j) {
    dsrc.push_back(dev[j].ptr());
    hsrc.push_back(host[j].data());
  }
  for (std::size_t k : {1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 33}) {
    device_kernels::sum_async(s, t, out.ptr(), dsrc.data(), k, n);
    std::vector<unsigned char> want(n * w);
    kernels::sum(t, want.data(), hsrc.data(), k, 0, n);
    const auto got = download<unsigned char>(s, out, n * w);
    EXPECT_TRUE(same_elements(t, got.data(), want.data(), n))
        << to_string(t) << " k=" << k << " n=" << n << " misaligned by " << misalign_elems;
  }
  // dst is the first source: dst = dst + s1 + s2 (in place, as the reducers use it).
  device_kernels::sum_async(s, t, dev[0].ptr(), dsrc.data(), 3, n);
  std::vector<unsigned char> want(n * w);
  kernels::sum(t, want.data(), hsrc.data(), 3, 0, n);
  auto got = download<unsigned char>(s, dev[0], n * w);
  EXPECT_TRUE(same_elements(t, got.data(), want.data(), n)) << to_string(t) << " in place";
  // accumulate: dev[1] += dev[2]
  device_kernels::accumulate_async(s, t, dev[1].ptr(), dev[2].ptr(), n);
  kernels::accumulate(t, host[1].data(), host[2].data(), 0, n);
  got = download<unsigned char>(s, dev[1], n * w);
  EXPECT_TRUE(same_elements(t, got.data(), host[1].data(), n)) << to_string(t) << " accumulate";
}

class GpuSum : public ::testing::TestWithParam<dtype> {};

TEST_P(GpuSum, MatchesTheCpuBitForBit) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (std::size_t n :
       {std::size_t{1}, std::size_t{3}, std::size_t{15}, std::size_t{16}, std::size_t{17},
        std::size_t{31}, std::size_t{1000}, std::size_t{4099}, (std::size_t{1} << 18) + 5})
    check_sums(GetParam(), n, 0);
}

TEST_P(GpuSum, UnalignedPointersTakeTheElementPath) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (std::size_t n : {std::size_t{5}, std::size_t{4099}, std::size_t{65537}})
    check_sums(GetParam(), n, 1);
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, GpuSum, ::testing::ValuesIn(all_dtypes),
                         [](const auto& info) { return std::string{to_string(info.param)}; });

TEST(GpuKernels, BigSumAcrossLogicalDevices) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  // Values on two (logical) devices, reduced on the first: copy the second's in, then sum.
  const auto devs = logical_devices();
  const std::size_t n = (std::size_t{1} << 24) + 7;  // 64 MiB + 28 bytes of float32
  const auto s0 = get_stream(devs[0]);
  const auto s1 = get_stream(devs[1], stream_priority::high);
  dev_buffer a(devs[0], n * 4), b(devs[1], n * 4), tmp(devs[0], n * 4);
  device_kernels::fill_async(s0, dtype::float32, a.ptr(), 1.5, n);
  device_kernels::fill_async(s1, dtype::float32, b.ptr(), 2.25, n);
  stream_wait(s0, s1);
  device_kernels::copy_async(s0, tmp.ptr(), devs[0], b.ptr(), devs[1], n * 4);
  const void* srcs[2] = {a.ptr(), tmp.ptr()};
  device_kernels::sum_async(s0, dtype::float32, a.ptr(), srcs, 2, n);
  const auto got = download<float>(s0, a, n);
  for (std::size_t i : {std::size_t{0}, n / 3, n - 1})
    EXPECT_EQ(got[i], 3.75f) << i;
}

TEST(GpuKernels, FillMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const auto s = get_stream(d);
  const std::size_t n = 1027;
  for (dtype t : all_dtypes) {
    dev_buffer x(d, n * size_of(t));
    for (double v : {0.0, -0.0, 1.0, -7.75, 1e-40, 65519.0, 65520.0, 1e300, -1e300,
                     static_cast<double>(INFINITY), static_cast<double>(NAN), 3000000000.0}) {
      device_kernels::fill_async(s, t, x.ptr(), v, n);
      std::vector<unsigned char> want(n * size_of(t));
      kernels::fill(t, want.data(), v, 0, n);
      const auto got = download<unsigned char>(s, x, n * size_of(t));
      EXPECT_TRUE(same_elements(t, got.data(), want.data(), n)) << to_string(t) << " " << v;
    }
  }
}

TEST(GpuKernels, CastMatchesTheCpuForEveryPair) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const auto s = get_stream(d);
  const std::size_t n = 70001;
  for (dtype from : all_dtypes) {
    auto in = random_elements(from, n, 77u + static_cast<unsigned>(from));
    // Values at the edges of every target type.
    const double edges[] = {2147483647.0, 2147483648.0, -2147483649.0, 9.3e18,
                            -9.3e18,      255.5,        256.0,         -1.0,
                            65504.0,      65520.0,      65519.99,      3.4028235e38,
                            3.5e38,       1.0000001,    16777217.0,    9007199254740993.0};
    for (std::size_t i = 0; i < sizeof edges / sizeof edges[0]; ++i)
      kernels::store(from, in.data(), i, edges[i]);
    dev_buffer src(d, n * size_of(from));
    upload(s, src, in);
    for (dtype to : all_dtypes) {
      dev_buffer dst(d, n * size_of(to));
      device_kernels::cast_async(s, from, src.ptr(), to, dst.ptr(), n);
      std::vector<unsigned char> want(n * size_of(to));
      kernels::cast(from, in.data(), to, want.data(), 0, n);
      const auto got = download<unsigned char>(s, dst, n * size_of(to));
      EXPECT_TRUE(same_elements(to, got.data(), want.data(), n))
          << to_string(from) << " -> " << to_string(to);
    }
  }
}

// Raw copies in every direction, pinned and pageable host memory, chunk boundaries.
TEST(GpuKernels, CopiesInEveryDirection) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const auto devs = logical_devices();
  const auto s0 = get_stream(devs[0], stream_priority::normal, 1);
  const auto s1 = get_stream(devs[1], stream_priority::high, 1);
  device_kernels::detail::set_staging_chunk_bytes(4096);
  for (bool forced : {false, true}) {
    device_kernels::detail::force_staged_device_copies(forced);
    for (std::size_t bytes : {std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                              std::size_t{4097}, std::size_t{12289}, std::size_t{3} << 20}) {
      std::vector<unsigned char> src(bytes), back(bytes, 0);
      for (std::size_t i = 0; i < bytes; ++i)
        src[i] = static_cast<unsigned char>(i * 131 + 7);
      auto pin_in = pinned_pool::global().acquire(bytes);
      auto pin_out = pinned_pool::global().acquire(bytes);
      std::memcpy(pin_in->data(), src.data(), bytes);
      dev_buffer a(devs[0], bytes), b(devs[1], bytes, 3), c(devs[0], bytes, 1);
      // pageable -> a (on s0); a -> b (on s1, the destination's stream); b -> c (on s0, the
      // destination's stream once more); c -> pageable and pinned.
      device_kernels::to_device_async(s0, a.ptr(), src.data(), bytes);
      stream_wait(s1, s0);
      device_kernels::copy_async(s1, b.ptr(), devs[1], a.ptr(), devs[0], bytes);
      stream_wait(s0, s1);
      device_kernels::copy_async(s0, c.ptr(), devs[0], b.ptr(), devs[1], bytes);
      device_kernels::to_host_async(s0, back.data(), c.ptr(), bytes);
      device_kernels::copy_async(s0, pin_out->data(), device::cpu(), c.ptr(), devs[0], bytes);
      synchronize(s0);
      EXPECT_EQ(back, src) << bytes << (forced ? " staged" : "");
      EXPECT_EQ(std::memcmp(pin_out->data(), src.data(), bytes), 0) << bytes;
      // pinned -> device directly.
      device_kernels::copy_async(s0, a.ptr(), devs[0], pin_in->data(), device::cpu(), bytes);
      device_kernels::to_host_async(s0, back.data(), a.ptr(), bytes);
      synchronize(s0);
      EXPECT_EQ(back, src) << bytes;
    }
  }
  device_kernels::detail::force_staged_device_copies(false);
  device_kernels::detail::set_staging_chunk_bytes(0);
  // A host copy runs on a stream of its cuda side.
  if (cuda_device_count() > 1) {
    dev_buffer x(device::cuda(0), 64);
    std::vector<unsigned char> h(64);
    EXPECT_ERRC(device_kernels::copy_async(get_stream(device::cuda(1)), h.data(), device::cpu(),
                                           x.ptr(), device::cuda(0), 64),
                errc::invalid_argument);
  }
}

}  // namespace
}  // namespace kvactor
