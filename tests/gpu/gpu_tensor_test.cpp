// cuda tensors through the blocking tensor API: creation, element access, fill, copies between
// host and devices (pinned, pageable, peer or staged), astype — each against the CPU tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "errc_assert.hpp"
#include "gpu_test_util.hpp"

namespace kvactor {
namespace {

using namespace gputest;

std::vector<unsigned char> bytes_of(const tensor& t) {
  const auto host = t.device().is_cpu() ? t : t.copy_to(device::cpu());
  std::vector<unsigned char> v(host.nbytes());
  if (!v.empty()) std::memcpy(v.data(), host.data_unchecked(), v.size());
  return v;
}

TEST(GpuTensor, CreationMatchesTheCpu) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (const device d : logical_devices()) {
    for (dtype t : all_dtypes) {
      const shape s{3, 7};
      auto z = tensor::zeros(s, t, d);
      EXPECT_EQ(z.device(), d);
      EXPECT_EQ(z.describe(), std::string{to_string(t)} + "(3, 7) @" + d.to_string());
      EXPECT_EQ(bytes_of(z), bytes_of(tensor::zeros(s, t)));
      for (double v : {1.0, -2.5, 300.0, 1e10, -0.0}) {
        auto f = tensor::full(s, v, t, d);
        EXPECT_TRUE(
            same_elements(t, bytes_of(f).data(), bytes_of(tensor::full(s, v, t)).data(), 21))
            << to_string(t) << " " << v;
      }
      EXPECT_EQ(tensor::ones(s, t, d).to_vector(), tensor::ones(s, t).to_vector());
      auto e = tensor::empty({0}, t, d);  // an empty tensor
      EXPECT_EQ(e.size(), 0u);
      EXPECT_TRUE(e.to_vector().empty());
    }
  }
}

// A view of device memory another library owns (what the Python binding makes of a CUDA
// DLPack tensor): the same bytes, on that device, not owned.
TEST(GpuTensor, ViewOfDeviceMemoryIsThatMemory) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  auto owner = tensor::zeros({2, 3}, dtype::float32, d);
  auto v = tensor::view_bytes(owner.data_unchecked(), {2, 3}, dtype::float32, d);
  EXPECT_EQ(v.device(), d);
  EXPECT_EQ(v.data_unchecked(), owner.data_unchecked());
  EXPECT_FALSE(v.storage_ptr()->owns_memory());
  v.fill(3.0);
  EXPECT_EQ(owner.to_vector(), std::vector<double>(6, 3.0));
}

TEST(GpuTensor, ElementAccessFillAndToVector) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  for (dtype t : all_dtypes) {
    auto x = tensor::zeros({17}, t, d);
    auto ref = tensor::zeros({17}, t);
    for (std::size_t i = 0; i < 17; i += 3) {
      x.set(i, static_cast<double>(i) + 0.25);
      ref.set(i, static_cast<double>(i) + 0.25);
    }
    for (std::size_t i = 0; i < 17; ++i)
      EXPECT_EQ(x.at(i), ref.at(i)) << to_string(t) << i;
    EXPECT_EQ(x.to_vector(), ref.to_vector());
    x.fill(5.5);
    ref.fill(5.5);
    EXPECT_EQ(x.to_vector(), ref.to_vector());
    EXPECT_ERRC(x.at(17), errc::out_of_range);
  }
  auto f = tensor::zeros({4}, dtype::float32, d);
  EXPECT_NE(f.data<float>(), nullptr);  // a device pointer
  EXPECT_ERRC(f.data<double>(), errc::dtype_mismatch);
}

// Host -> device -> other device -> host for sizes around the staging chunk, with pageable and
// pinned host memory, and with the staged device-to-device path forced.
void round_trips(bool staged_between_devices) {
  const auto devs = logical_devices();
  device_kernels::detail::set_staging_chunk_bytes(64 << 10);  // several chunks from 64 KiB
  device_kernels::detail::force_staged_device_copies(staged_between_devices);
  for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{16383}, std::size_t{16384},
                        std::size_t{16385}, std::size_t{100003}, std::size_t{1} << 20}) {
    const auto bytes = random_elements(dtype::float32, n, static_cast<std::uint32_t>(n), false);
    auto host = tensor::from_bytes(bytes.data(), {static_cast<std::int64_t>(n)}, dtype::float32);
    auto a = host.copy_to(devs[0]);
    auto b = a.copy_to(devs[1]);
    auto c = b.copy();  // same device
    EXPECT_EQ(c.device(), devs[1]);
    auto back = c.copy_to(device::cpu());
    EXPECT_EQ(bytes_of(back), bytes) << n;
    // Into existing tensors, across devices and into pinned host memory.
    auto d = tensor::zeros({static_cast<std::int64_t>(n)}, dtype::float32, devs[0]);
    b.copy_to(d);
    auto pinned = tensor::from_buffer(pinned_pool::global().acquire(n * 4),
                                      {static_cast<std::int64_t>(n)}, dtype::float32);
    d.copy_to(pinned);
    EXPECT_EQ(bytes_of(pinned), bytes) << n;
  }
  device_kernels::detail::force_staged_device_copies(false);
  device_kernels::detail::set_staging_chunk_bytes(0);
}

TEST(GpuTensor, CopiesBetweenHostAndDevices) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  round_trips(false);
}

TEST(GpuTensor, CopiesBetweenDevicesStagedThroughPinnedMemory) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  round_trips(true);
}

TEST(GpuTensor, CopyChecksShapesAndTypes) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  auto a = tensor::zeros({4}, dtype::float32, d);
  auto b = tensor::zeros({5}, dtype::float32, d);
  auto c = tensor::zeros({4}, dtype::int32, d);
  EXPECT_ERRC(a.copy_to(b), errc::shape_mismatch);
  EXPECT_ERRC(a.copy_to(c), errc::dtype_mismatch);
  auto r = a.reshape({2, 2});
  EXPECT_EQ(r.device(), d);
  EXPECT_TRUE(r.overlaps(a));
}

TEST(GpuTensor, AstypeMatchesTheCpuForEveryPair) {
  if (kvactor::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const device d = logical_device(0);
  const std::size_t n = 4099;
  for (dtype from : all_dtypes) {
    const auto bytes = random_elements(from, n, 11u + static_cast<unsigned>(from));
    auto host = tensor::from_bytes(bytes.data(), {static_cast<std::int64_t>(n)}, from);
    auto dev = host.copy_to(d);
    for (dtype to : all_dtypes) {
      const auto want = bytes_of(host.astype(to));
      const auto got = dev.astype(to);
      EXPECT_EQ(got.device(), d);
      EXPECT_TRUE(same_elements(to, bytes_of(got).data(), want.data(), n))
          << to_string(from) << " -> " << to_string(to);
    }
  }
}

}  // namespace
}  // namespace kvactor
