// tensor: construction per dtype, views and copies, conversions, checked accessors and errors
// (the read/write leases that the checked accessors wait for: tensor_lease_test.cpp).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <limits>
#include <thread>
#include <vector>

#include "errc_assert.hpp"
#include "kvactor/buffer_pool.hpp"
#include "kvactor/tensor.hpp"
#include "reference.hpp"

namespace kvactor {
namespace {

using namespace std::chrono_literals;

using unit::stored_value;

// ---------------------------------------------------------------- construction

TEST(Tensor, DefaultIsUndefined) {
  tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_FALSE(static_cast<bool>(t));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.nbytes(), 0u);
  EXPECT_EQ(t.describe(), "undefined tensor");
  EXPECT_EQ(t.data_unchecked(), nullptr);
  EXPECT_EQ(t.storage_ptr(), nullptr);
  EXPECT_ERRC(t.data<float>(), errc::invalid_argument);
  EXPECT_ERRC(t.copy(), errc::invalid_argument);
  EXPECT_ERRC(t.astype(dtype::int32), errc::invalid_argument);
  EXPECT_ERRC(t.fill(1), errc::invalid_argument);
  EXPECT_ERRC(t.reshape(shape{}), errc::invalid_argument);
  EXPECT_ERRC(t.at(0), errc::out_of_range);
  EXPECT_TRUE(t.to_vector().empty());
}

TEST(Tensor, ZerosOnesFullForEveryDtype) {
  const shape s{3, 5};
  for (auto t : all_dtypes) {
    SCOPED_TRACE(to_string(t));
    auto z = tensor::zeros(s, t);
    auto o = tensor::ones(s, t);
    auto f = tensor::full(s, 2.75, t);
    for (const auto* x : {&z, &o, &f}) {
      EXPECT_TRUE(x->defined());
      EXPECT_EQ(x->shape(), s);
      EXPECT_EQ(x->dtype(), t);
      EXPECT_EQ(x->device(), device::cpu());
      EXPECT_EQ(x->size(), 15u);
      EXPECT_EQ(x->nbytes(), 15u * size_of(t));
    }
    EXPECT_EQ(z.to_vector(), std::vector<double>(15, 0.0));
    EXPECT_EQ(o.to_vector(), std::vector<double>(15, 1.0));
    EXPECT_EQ(f.to_vector(), std::vector<double>(15, stored_value(t, 2.75)));
  }
}

TEST(Tensor, FullConvertsLikeTheDocumentedRules) {
  // Integers truncate toward zero and saturate; NaN becomes 0.
  EXPECT_EQ(tensor::full({1}, 3.9, dtype::int32).at(0), 3);
  EXPECT_EQ(tensor::full({1}, -3.9, dtype::int32).at(0), -3);
  EXPECT_EQ(tensor::full({1}, 1e12, dtype::int32).at(0), 2147483647.0);
  EXPECT_EQ(tensor::full({1}, -1e12, dtype::int32).at(0), -2147483648.0);
  EXPECT_EQ(tensor::full({1}, 300, dtype::uint8).at(0), 255);
  EXPECT_EQ(tensor::full({1}, -5, dtype::uint8).at(0), 0);
  EXPECT_EQ(tensor::full({1}, std::nan(""), dtype::int64).at(0), 0);
  EXPECT_EQ(tensor::full({1}, 1e30, dtype::int64).data<std::int64_t>()[0],
            std::numeric_limits<std::int64_t>::max());
  // 16-bit floats round to nearest.
  EXPECT_EQ(tensor::full({1}, 0.1, dtype::float16).at(0),
            unit::half_value(unit::nearest_half(0.1)));
  EXPECT_EQ(tensor::full({1}, 1e6, dtype::float16).at(0), std::numeric_limits<double>::infinity());
  EXPECT_EQ(tensor::full({1}, 0.1, dtype::bfloat16).at(0),
            unit::bf16_value(unit::nearest_bf16(0.1)));
}

TEST(Tensor, EmptyAndZeroSizedShapes) {
  auto a = tensor::zeros({0, 3});
  EXPECT_TRUE(a.defined());
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.nbytes(), 0u);
  EXPECT_TRUE(a.to_vector().empty());
  EXPECT_ERRC(a.at(0), errc::out_of_range);
  auto scalar_shape = tensor::zeros(shape{});
  EXPECT_EQ(scalar_shape.size(), 0u) << "ndim 0 has no elements (shape::numel)";
  auto c = a.copy();
  EXPECT_EQ(c.shape(), (shape{0, 3}));
}

TEST(Tensor, InvalidShapesAreRejected) {
  EXPECT_ERRC(tensor::zeros({-1}), errc::invalid_argument);
  EXPECT_ERRC(tensor::zeros({2, -3}), errc::invalid_argument);
  EXPECT_ERRC(tensor::empty({std::int64_t{1} << 32, std::int64_t{1} << 32}),
              errc::invalid_argument);
  float x = 0;
  EXPECT_ERRC(tensor::view(&x, {-1}), errc::invalid_argument);
}

TEST(Tensor, ByteCountOverflowIsRejectedNotWrapped) {
  // 2^62 elements is a valid int64 count, but 2^62 * 8 bytes does not fit in size_t: the
  // tensor must not be created over a tiny buffer.
  const std::int64_t n = std::int64_t{1} << 62;
  EXPECT_ERRC(tensor::empty({n}, dtype::float64), errc::invalid_argument);
  EXPECT_ERRC(tensor::full({n}, 1.0, dtype::int64), errc::invalid_argument);
  EXPECT_ERRC(tensor::zeros({n / 2, 2}, dtype::float32), errc::invalid_argument);
  static double d = 0;
  EXPECT_ERRC(tensor::view(&d, {n}), errc::invalid_argument);
  EXPECT_ERRC(tensor::view_bytes(&d, {n}, dtype::float32), errc::invalid_argument);
}

// ---------------------------------------------------------------- from / view

TEST(Tensor, FromCopiesTheSource) {
  std::vector<float> src{1, 2, 3, 4, 5, 6};
  auto t = tensor::from(src, {2, 3});
  EXPECT_EQ(t.dtype(), dtype::float32);
  EXPECT_TRUE(t.storage_ptr()->owns_memory());
  src[0] = 100;
  EXPECT_EQ(t.to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  std::vector<std::int64_t> ints{-1, 1LL << 40};
  auto ti = tensor::from(ints.data(), {2});
  EXPECT_EQ(ti.dtype(), dtype::int64);
  EXPECT_EQ(ti.data<std::int64_t>()[1], 1LL << 40);
  std::vector<float16> halves{to_float16(0.5f), to_float16(-2.0f)};
  auto th = tensor::from(halves, {2});
  EXPECT_EQ(th.dtype(), dtype::float16);
  EXPECT_EQ(th.to_vector(), (std::vector<double>{0.5, -2.0}));
}

TEST(Tensor, FromChecksCountAndPointer) {
  std::vector<double> src(5, 1.0);
  EXPECT_ERRC(tensor::from(src, {2, 3}), errc::shape_mismatch);
  EXPECT_ERRC(tensor::from(src, {4}), errc::shape_mismatch);
  EXPECT_ERRC(tensor::from(static_cast<const float*>(nullptr), {3}), errc::invalid_argument);
  auto empty = tensor::from(static_cast<const float*>(nullptr), {0});
  EXPECT_EQ(empty.size(), 0u);
}

TEST(Tensor, ViewSharesUserMemory) {
  std::vector<std::int32_t> mem{1, 2, 3, 4};
  auto v = tensor::view(mem.data(), {2, 2});
  EXPECT_FALSE(v.storage_ptr()->owns_memory());
  EXPECT_EQ(v.data_unchecked(), mem.data());
  mem[3] = 40;
  EXPECT_EQ(v.at(3), 40);
  v.set(0, -7);
  EXPECT_EQ(mem[0], -7);
  v.fill(9);
  EXPECT_EQ(mem, (std::vector<std::int32_t>(4, 9)));
  auto copy_of_handle = v;  // copies the handle, not the data
  copy_of_handle.set(1, 5);
  EXPECT_EQ(v.at(1), 5);
  EXPECT_ERRC(tensor::view(static_cast<float*>(nullptr), {2}), errc::invalid_argument);
}

// A host tensor of at most 64 bytes keeps them in its storage block (no pooled buffer); it
// behaves as any other: owns its memory, 64-byte aligned, deep copies, every dtype.
TEST(Tensor, SmallHostTensorsTakeNothingFromThePool) {
  const auto before = buffer_pool::global().get_stats();
  for (const dtype t : {dtype::float32, dtype::float64, dtype::uint8, dtype::int64}) {
    for (std::int64_t n : {1, 3, 8}) {
      auto x = tensor::full({n}, 7, t);
      ASSERT_TRUE(x.storage_ptr()->owns_memory());
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x.data_unchecked()) % 64, 0u);
      auto y = x.copy();
      y.set(0, 1);
      EXPECT_EQ(x.at(0), 7);
      EXPECT_EQ(y.at(0), 1);
      EXPECT_EQ(y.to_vector().back(), n > 1 ? 7 : 1);
    }
  }
  auto edge = tensor::zeros({16});  // exactly 64 bytes
  EXPECT_EQ(edge.to_vector(), std::vector<double>(16, 0.0));
  const auto after = buffer_pool::global().get_stats();
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses);
  auto pooled = tensor::zeros({17});  // 68 bytes: a pooled buffer
  EXPECT_EQ(buffer_pool::global().get_stats().hits + buffer_pool::global().get_stats().misses,
            after.hits + after.misses + 1);
}

// ---------------------------------------------------------------- copies and conversions

TEST(Tensor, CopyIsDeep) {
  auto a = tensor::from(std::vector<double>{1, 2, 3}, {3});
  auto b = a.copy();
  EXPECT_NE(b.data_unchecked(), a.data_unchecked());
  EXPECT_FALSE(a.overlaps(b));
  EXPECT_EQ(b.shape(), a.shape());
  EXPECT_EQ(b.dtype(), a.dtype());
  b.set(0, 10);
  EXPECT_EQ(a.at(0), 1);
  auto c = a.copy_to(device::cpu());
  a.set(2, 30);
  EXPECT_EQ(c.to_vector(), (std::vector<double>{1, 2, 3}));
}

TEST(Tensor, CopyToTensorChecksShapeAndDtype) {
  auto src = tensor::from(std::vector<float>{1, 2, 3, 4}, {2, 2});
  auto dst = tensor::zeros({2, 2});
  src.copy_to(dst);
  EXPECT_EQ(dst.to_vector(), (std::vector<double>{1, 2, 3, 4}));
  EXPECT_FALSE(dst.overlaps(src));

  auto wrong_shape = tensor::zeros({4});
  EXPECT_ERRC(src.copy_to(wrong_shape), errc::shape_mismatch);
  auto wrong_dtype = tensor::zeros({2, 2}, dtype::float64);
  EXPECT_ERRC(src.copy_to(wrong_dtype), errc::dtype_mismatch);
  EXPECT_EQ(wrong_dtype.to_vector(), std::vector<double>(4, 0.0)) << "untouched on error";
  tensor undefined;
  EXPECT_ERRC(src.copy_to(undefined), errc::invalid_argument);
  EXPECT_ERRC(undefined.copy_to(dst), errc::invalid_argument);

  // Onto itself (same storage) is a no-op that keeps the data.
  auto alias = src;
  src.copy_to(alias);
  EXPECT_EQ(src.to_vector(), (std::vector<double>{1, 2, 3, 4}));
}

TEST(Tensor, CopyToOverlappingViewsMovesCorrectly) {
  std::vector<float> mem{0, 1, 2, 3, 4, 5};
  auto head = tensor::view(mem.data(), {4});
  auto tail = tensor::view(mem.data() + 2, {4});
  EXPECT_TRUE(head.overlaps(tail));
  head.copy_to(tail);  // memmove semantics
  EXPECT_EQ(mem, (std::vector<float>{0, 1, 0, 1, 2, 3}));
}

TEST(Tensor, AstypeConvertsEveryPair) {
  const std::vector<double> values{0, 1, -1, 2.5, -2.5, 100.75, 300, -300, 65519, 1e9};
  for (auto from : all_dtypes) {
    auto src = tensor::zeros({static_cast<std::int64_t>(values.size())}, from);
    for (std::size_t i = 0; i < values.size(); ++i)
      src.set(i, values[i]);
    const auto held = src.to_vector();
    for (auto to : all_dtypes) {
      SCOPED_TRACE(std::string(to_string(from)) + " -> " + to_string(to));
      auto dst = src.astype(to);
      EXPECT_EQ(dst.dtype(), to);
      EXPECT_EQ(dst.shape(), src.shape());
      EXPECT_FALSE(dst.overlaps(src));
      const auto got = dst.to_vector();
      for (std::size_t i = 0; i < values.size(); ++i)
        EXPECT_EQ(got[i], stored_value(to, held[i])) << "value " << held[i];
    }
  }
}

TEST(Tensor, FillSetAtAndToVector) {
  auto t = tensor::zeros({2, 3}, dtype::int32);
  t.fill(-4.9);
  EXPECT_EQ(t.to_vector(), std::vector<double>(6, -4.0));
  t.set(5, 17);
  EXPECT_EQ(t.at(5), 17);
  EXPECT_EQ(t.data<std::int32_t>()[5], 17);
  const tensor& ct = t;
  EXPECT_EQ(ct.data<std::int32_t>()[0], -4);
  EXPECT_ERRC(t.at(6), errc::out_of_range);
  EXPECT_ERRC(t.set(6, 1), errc::out_of_range);
  EXPECT_ERRC(t.set(static_cast<std::size_t>(-1), 1), errc::out_of_range);
}

TEST(Tensor, DataChecksTheElementType) {
  auto t = tensor::zeros({2}, dtype::float16);
  EXPECT_NO_THROW(t.data<float16>());
  EXPECT_ERRC(t.data<float>(), errc::dtype_mismatch);
  EXPECT_ERRC(t.data<bfloat16>(), errc::dtype_mismatch);
  const tensor& ct = t;
  EXPECT_ERRC(ct.data<std::uint8_t>(), errc::dtype_mismatch);
  try {
    t.data<double>();
    ADD_FAILURE() << "no exception";
  } catch (const error& e) {
    EXPECT_NE(e.message().find("float64"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("float16"), std::string::npos) << e.message();
  }
}

TEST(Tensor, ReshapeSharesStorage) {
  auto a = tensor::from(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  auto b = a.reshape({3, 2});
  EXPECT_EQ(b.shape(), (shape{3, 2}));
  EXPECT_EQ(b.storage_ptr(), a.storage_ptr());
  EXPECT_TRUE(a.overlaps(b));
  b.set(5, 60);
  EXPECT_EQ(a.at(5), 60);
  EXPECT_EQ(a.reshape({6}).to_vector(), (std::vector<double>{1, 2, 3, 4, 5, 60}));
  EXPECT_ERRC(a.reshape({4}), errc::shape_mismatch);
  EXPECT_ERRC(a.reshape({7}), errc::shape_mismatch);
  EXPECT_ERRC(a.reshape({-6}), errc::invalid_argument);
  EXPECT_ERRC(a.reshape({-2, -3}), errc::invalid_argument);
}

TEST(Tensor, ReshapeOfAnEmptyTensorRejectsNegativeDims) {
  auto e = tensor::zeros({0});
  EXPECT_EQ(e.reshape({3, 0}).shape(), (shape{3, 0}));
  EXPECT_ERRC(e.reshape({-1}), errc::invalid_argument);
}

TEST(Tensor, Overlaps) {
  std::vector<double> mem(10);
  auto a = tensor::view(mem.data(), {5});
  auto b = tensor::view(mem.data() + 5, {5});
  auto c = tensor::view(mem.data() + 4, {2});
  EXPECT_FALSE(a.overlaps(b));
  EXPECT_FALSE(b.overlaps(a));
  EXPECT_TRUE(a.overlaps(c));
  EXPECT_TRUE(c.overlaps(b));
  EXPECT_TRUE(a.overlaps(a));
  auto empty_view = tensor::view(mem.data() + 2, {0});
  EXPECT_FALSE(a.overlaps(empty_view));
  EXPECT_FALSE(a.overlaps(tensor{}));
  EXPECT_FALSE(tensor{}.overlaps(a));
  EXPECT_FALSE(tensor::zeros({3}).overlaps(tensor::zeros({3})));
}

TEST(Tensor, Describe) {
  EXPECT_EQ(tensor::zeros({2, 3}).describe(), "float32(2, 3) @cpu(0)");
  EXPECT_EQ(tensor::zeros({5}, dtype::bfloat16).describe(), "bfloat16(5,) @cpu(0)");
  EXPECT_EQ(device::cuda(1).to_string(), "cuda(1)");
  EXPECT_EQ(device::cpu().to_string(), "cpu(0)");
  EXPECT_EQ(device(), device::cpu());
  EXPECT_NE(device::cuda(0), device::cuda(1));
  EXPECT_NE(device::cuda(0), device::cpu());
  try {
    tensor::zeros({2}).at(2);
    ADD_FAILURE() << "no exception";
  } catch (const error& e) {
    EXPECT_NE(e.message().find("float32(2,) @cpu(0)"), std::string::npos) << e.message();
  }
}

}  // namespace
}  // namespace kvactor
