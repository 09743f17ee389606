// Gradient compression kernels against the per-element reference (compression_reference.hpp):
// random pushes on every CPU path, padding bits, each element's documented bits, and splits
// of the array into ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "compression_reference.hpp"
#include "kvactor/detail/compression.hpp"

namespace kvactor {
namespace {

using namespace compression_reference;

// ---------------------------------------------------------------- against the reference

TEST(Compression, MatchesReferenceOverSeveralPushes) {
  for_each_cpu_path([&] {
    std::mt19937_64 rng(7);
    const gc::params configs[] = {
        {gc::kind::two_bit, 0.5f}, {gc::kind::two_bit, 0.1f}, {gc::kind::two_bit, 3.0f},
        {gc::kind::one_bit, 0.0f}, {gc::kind::one_bit, 0.5f}, {gc::kind::one_bit, -0.25f},
    };
    for (const auto& p : configs) {
      for (std::size_t n : {1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 1000, 4099}) {
        SCOPED_TRACE(std::string(gc::to_string(p.type)) + " t=" + std::to_string(p.threshold) +
                     " n=" + std::to_string(n));
        std::vector<float> res(n, 0.0f), ref_res(n, 0.0f);
        for (int push = 0; push < 6; ++push) {
          SCOPED_TRACE("push " + std::to_string(push));
          const float scale = push % 2 ? std::abs(p.threshold) * 0.5f + 0.05f : 1.0f;
          const auto grad = random_grad(n, scale, rng);
          const auto want = ref_quantize(p, grad, ref_res);
          const auto w = quantize_all(p, grad, res);
          ASSERT_EQ(w.size(), ref_words(p.type, n));
          ASSERT_TRUE(same_bytes(bytes_of(w), want));
          ASSERT_TRUE(same_floats(res, ref_res));
          std::vector<float> dec_want(n);
          for (std::size_t i = 0; i < n; ++i)
            dec_want[i] = ref_decoded(p, want, i);
          ASSERT_TRUE(same_floats(dequantize_all(p, w, n), dec_want));
        }
      }
    }
  });
}

// Bits of the last word past element n-1 are 0 even when every element sets its bits and the
// words held garbage before.
TEST(Compression, PaddingBitsAreZero) {
  for_each_cpu_path([&] {
    for (std::size_t n : {1, 15, 17, 31, 33, 1000}) {
      SCOPED_TRACE("n=" + std::to_string(n));
      {
        const gc::params p{gc::kind::two_bit, 0.5f};
        std::vector<float> grad(n, 2.0f), res(n, 0.0f);
        const auto b = bytes_of(quantize_all(p, grad, res));  // all codes 11
        for (std::size_t bit = 0; bit < b.size() * 8; ++bit) {
          const std::size_t byte = bit / 8, pos = 7 - bit % 8;  // MSB first within a byte
          const std::size_t element = bit / 2;
          const bool set = (b[byte] >> pos) & 1u;
          ASSERT_EQ(set, element < n) << "2bit bit " << bit;
        }
      }
      {
        const gc::params p{gc::kind::one_bit, 0.0f};
        std::vector<float> grad(n, 2.0f), res(n, 0.0f);
        const auto b = bytes_of(quantize_all(p, grad, res));  // all bits 1
        for (std::size_t bit = 0; bit < b.size() * 8; ++bit) {
          const bool set = (b[bit / 8] >> (7 - bit % 8)) & 1u;
          ASSERT_EQ(set, bit < n) << "1bit bit " << bit;
        }
      }
    }
  });
}

// Element positions one at a time: a single +t (or 1) moves through the bytes in the
// documented order.
TEST(Compression, EachElementHasItsDocumentedBits) {
  for_each_cpu_path([&] {
    for (std::size_t n : {16, 17, 32, 33}) {
      for (std::size_t e = 0; e < n; ++e) {
        SCOPED_TRACE("n=" + std::to_string(n) + " element " + std::to_string(e));
        std::vector<float> grad(n, 0.0f), res(n, 0.0f);
        grad[e] = 1.0f;
        auto b2 = bytes_of(quantize_all({gc::kind::two_bit, 0.5f}, grad, res));
        std::vector<std::uint8_t> want2(b2.size(), 0);
        want2[e / 4] = static_cast<std::uint8_t>(0xC0u >> (2 * (e % 4)));
        ASSERT_TRUE(same_bytes(b2, want2));
        grad[e] = -1.0f;
        b2 = bytes_of(quantize_all({gc::kind::two_bit, 0.5f}, grad, res));
        want2[e / 4] = static_cast<std::uint8_t>(0x80u >> (2 * (e % 4)));
        ASSERT_TRUE(same_bytes(b2, want2));

        std::vector<float> g1(n, -1.0f), r1(n, 0.0f);
        g1[e] = 1.0f;
        auto b1 = bytes_of(quantize_all({gc::kind::one_bit, 0.0f}, g1, r1));
        std::vector<std::uint8_t> want1(b1.size(), 0);
        want1[e / 8] = static_cast<std::uint8_t>(0x80u >> (e % 8));
        ASSERT_TRUE(same_bytes(b1, want1));
      }
    }
  });
}

// The AVX2 and generic paths give the same words and residuals on a long array, where whole
// words run through the vector loops (the reference test above covers the rest).
TEST(Compression, CpuPathsAgree) {
  std::mt19937_64 rng(3);
  const std::size_t n = 100003;
  for (const gc::params& p :
       {gc::params{gc::kind::two_bit, 0.5f}, gc::params{gc::kind::one_bit, 0.0f}}) {
    SCOPED_TRACE(gc::to_string(p.type));
    std::vector<float> res_best(n, 0.0f), res_generic(n, 0.0f);
    for (int push = 0; push < 3; ++push) {
      auto grad = random_grad(n, 1.0f, rng);
      grad[5] = nan_f;
      grad[6] = inf;
      grad[7] = -inf;
      gc::detail::force_generic(false);
      const auto w_best = quantize_all(p, grad, res_best);
      const auto d_best = dequantize_all(p, w_best, n);
      gc::detail::force_generic(true);
      const auto w_generic = quantize_all(p, grad, res_generic);
      const auto d_generic = dequantize_all(p, w_generic, n);
      gc::detail::force_generic(false);
      ASSERT_EQ(w_best, w_generic);
      ASSERT_TRUE(same_floats(res_best, res_generic));
      ASSERT_TRUE(same_floats(d_best, d_generic));
    }
  }
  const std::string path = gc::detail::cpu_path();
  EXPECT_TRUE(path == "avx2" || path == "generic") << path;
  gc::detail::force_generic(true);
  EXPECT_STREQ(gc::detail::cpu_path(), "generic");
  gc::detail::force_generic(false);
}

// ---------------------------------------------------------------- ranges

TEST(Compression, RangeSplitsGiveTheWholeArrayResult) {
  for_each_cpu_path([&] {
    std::mt19937_64 rng(11);
    const gc::params configs[] = {
        {gc::kind::two_bit, 0.5f}, {gc::kind::one_bit, 0.0f}, {gc::kind::none, 0.5f}};
    for (const auto& p : configs) {
      for (std::size_t n : {1, 17, 33, 1000, 1001}) {
        SCOPED_TRACE(std::string(gc::to_string(p.type)) + " n=" + std::to_string(n));
        const std::size_t nw = gc::words(p.type, n);
        const auto grad = random_grad(n, 1.0f, rng);
        const auto res0 = random_grad(n, 0.3f, rng);
        std::vector<float> res_whole = res0;
        const auto w_whole = quantize_all(p, grad, res_whole);
        const auto d_whole = dequantize_all(p, w_whole, n);

        // Every two-way split point, the second half first.
        for (std::size_t cut = 0; cut <= nw; cut += (nw > 80 ? 7 : 1)) {
          std::vector<float> res = res0;
          std::vector<std::uint32_t> w(nw, 0x5A5A5A5Au);
          gc::quantize(p, grad.data(), res.data(), w.data(), n, cut, nw);
          gc::quantize(p, grad.data(), res.data(), w.data(), n, 0, cut);
          ASSERT_EQ(w, w_whole) << "cut " << cut;
          ASSERT_TRUE(same_floats(res, res_whole)) << "cut " << cut;
          std::vector<float> d(n, 7.0f);
          gc::dequantize(p, w.data(), d.data(), n, cut, nw);
          gc::dequantize(p, w.data(), d.data(), n, 0, cut);
          ASSERT_TRUE(same_floats(d, d_whole)) << "cut " << cut;
        }

        // Uneven ranges on threads at once.
        const std::size_t parts = std::min<std::size_t>(nw, 5);
        std::vector<std::size_t> bounds{0};
        for (std::size_t i = 1; i < parts; ++i)
          bounds.push_back(nw * i * i / (parts * parts));
        bounds.push_back(nw);
        std::vector<float> res = res0, d(n, 7.0f), acc(n, 0.0f);
        std::vector<std::uint32_t> w(nw, 0x5A5A5A5Au);
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i + 1 < bounds.size(); ++i)
          threads.emplace_back([&, i] {
            gc::quantize(p, grad.data(), res.data(), w.data(), n, bounds[i], bounds[i + 1]);
            gc::dequantize(p, w.data(), d.data(), n, bounds[i], bounds[i + 1]);
            gc::dequantize_add(p, w.data(), acc.data(), n, bounds[i], bounds[i + 1]);
          });
        for (auto& t : threads)
          t.join();
        ASSERT_EQ(w, w_whole);
        ASSERT_TRUE(same_floats(res, res_whole));
        ASSERT_TRUE(same_floats(d, d_whole));
        ASSERT_TRUE(same_floats(acc, d_whole));  // 0 + x == x for every decoded value
      }
    }
  });
}

TEST(Compression, EmptyRangesTouchNothing) {
  const gc::params p{gc::kind::two_bit, 0.5f};
  std::vector<float> grad(40, 1.0f), res(40, 0.25f), out(40, 9.0f);
  std::vector<std::uint32_t> w(3, 0xDEADBEEFu);
  for (std::size_t at : {0, 1, 2, 3}) {
    gc::quantize(p, grad.data(), res.data(), w.data(), 40, at, at);
    gc::dequantize(p, w.data(), out.data(), 40, at, at);
    gc::dequantize_add(p, w.data(), out.data(), 40, at, at);
  }
  EXPECT_EQ(w, std::vector<std::uint32_t>(3, 0xDEADBEEFu));
  EXPECT_TRUE(same_floats(res, std::vector<float>(40, 0.25f)));
  EXPECT_TRUE(same_floats(out, std::vector<float>(40, 9.0f)));
  gc::quantize(p, nullptr, nullptr, nullptr, 0, 0, 0);  // n = 0: no words, nothing read
}

// A range of whole words touches only its own elements.
TEST(Compression, RangeTouchesOnlyItsElements) {
  for_each_cpu_path([&] {
    const gc::params p{gc::kind::two_bit, 0.5f};
    std::vector<float> grad(50, 1.0f), res(50, 0.0f), out(50, 9.0f);
    std::vector<std::uint32_t> w(4, 0xDEADBEEFu);
    gc::quantize(p, grad.data(), res.data(), w.data(), 50, 1, 2);  // elements 16..31
    gc::dequantize(p, w.data(), out.data(), 50, 1, 2);
    for (std::size_t i = 0; i < 50; ++i) {
      const bool inside = i >= 16 && i < 32;
      EXPECT_EQ(res[i], inside ? 0.5f : 0.0f) << i;
      EXPECT_EQ(out[i], inside ? 0.5f : 9.0f) << i;
    }
    EXPECT_EQ(w[0], 0xDEADBEEFu);
    EXPECT_EQ(w[1], 0xFFFFFFFFu);
    EXPECT_EQ(w[2], 0xDEADBEEFu);
  });
}

}  // namespace
}  // namespace kvactor
