// buffer_pool: size classes, reuse, the cache cap, trim, lifetime and alignment, threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "kvactor/buffer_pool.hpp"

namespace kvactor {
namespace {

constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;

bool aligned64(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

// Writes a pattern over the whole capacity and reads it back: under ASan this proves that the
// capacity the buffer reports is really allocated.
void touch_all(const buffer& b, std::uint8_t seed) {
  auto* p = static_cast<std::uint8_t*>(b.data());
  for (std::size_t i = 0; i < b.capacity(); ++i)
    p[i] = static_cast<std::uint8_t>(seed + i);
  for (std::size_t i = 0; i < b.capacity(); i += 4093)
    ASSERT_EQ(p[i], static_cast<std::uint8_t>(seed + i));
  ASSERT_EQ(p[b.capacity() - 1], static_cast<std::uint8_t>(seed + b.capacity() - 1));
}

// ---------------------------------------------------------------- size classes

void check_class(std::size_t bytes) {
  const std::size_t c = buffer_pool::size_class(bytes);
  ASSERT_GE(c, bytes) << bytes;
  ASSERT_GE(c, 64u) << bytes;
  if (bytes <= 64) {
    ASSERT_EQ(c, 64u) << bytes;
  } else {
    // Quarter steps between powers of two, at least the 64-byte alignment (aligned_alloc
    // wants sizes that are multiples of it): at most 25% slack, or less than 64 bytes.
    ASSERT_EQ(c % 64, 0u) << bytes;
    ASSERT_LE(c - bytes, std::max<std::size_t>(bytes / 4, 63)) << bytes;
    if (bytes >= 256) {
      ASSERT_LE(c - bytes, bytes / 4) << bytes;
    }
    // From 8 MiB up, classes are whole 2 MiB huge pages.
    if (bytes > 8 * MiB) {
      ASSERT_EQ(c % (2 * MiB), 0u) << bytes;
    }
  }
  // A class is its own class, so acquiring exactly a class's size wastes nothing.
  ASSERT_EQ(buffer_pool::size_class(c), c) << bytes;
}

TEST(BufferPoolSizeClass, EverySmallSize) {
  std::size_t prev = 0;
  for (std::size_t bytes = 0; bytes <= 70000; ++bytes) {
    check_class(bytes);
    const std::size_t c = buffer_pool::size_class(bytes);
    ASSERT_GE(c, prev) << "classes grow with the request, at " << bytes;
    prev = c;
  }
}

TEST(BufferPoolSizeClass, LargeAndBoundarySizes) {
  for (std::size_t bytes : {MiB - 1, MiB, MiB + 1, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 3 * MiB,
                            100 * MiB + 7, std::size_t{1} << 40})
    check_class(bytes);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i)
    check_class(rng() % (64 * MiB));
  EXPECT_EQ(buffer_pool::size_class(MiB), MiB);
  EXPECT_EQ(buffer_pool::size_class(2 * MiB + 1), 2 * MiB + MiB / 2);
  EXPECT_EQ(buffer_pool::size_class(64 * MiB), 64 * MiB);
  // Few distinct classes: no more than 4 per power of two.
  std::vector<std::size_t> classes;
  for (std::size_t b = 0; b < MiB; b += 61)
    classes.push_back(buffer_pool::size_class(b));
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  EXPECT_LE(classes.size(), 4u * 15);
}

// ---------------------------------------------------------------- reuse and statistics

TEST(BufferPool, ReleasedBufferIsReused) {
  buffer_pool pool(16 * MiB);
  const std::size_t cls = buffer_pool::size_class(1000);
  void* first = nullptr;
  {
    auto b = pool.acquire(1000);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->capacity(), cls);
    first = b->data();
    auto st = pool.get_stats();
    EXPECT_EQ(st.misses, 1u);
    EXPECT_EQ(st.hits, 0u);
    EXPECT_EQ(st.live_bytes, cls);
    EXPECT_EQ(st.cached_bytes, 0u);
  }
  auto st = pool.get_stats();
  EXPECT_EQ(st.live_bytes, 0u);
  EXPECT_EQ(st.cached_bytes, cls);
  // Any request of the same class is served from the cache, with the same memory.
  auto again = pool.acquire(cls - 1);
  EXPECT_EQ(again->data(), first);
  EXPECT_EQ(again->capacity(), cls);
  st = pool.get_stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.cached_bytes, 0u);
  EXPECT_EQ(st.live_bytes, cls);
  // Another class misses.
  auto other = pool.acquire(5000);
  EXPECT_EQ(pool.get_stats().misses, 2u);
  EXPECT_EQ(pool.get_stats().live_bytes, cls + buffer_pool::size_class(5000));
}

TEST(BufferPool, CopiesOfTheHandleKeepTheBufferLive) {
  buffer_pool pool(MiB);
  auto a = pool.acquire(100);
  auto b = a;
  a.reset();
  EXPECT_EQ(pool.get_stats().cached_bytes, 0u) << "still referenced";
  b.reset();
  EXPECT_EQ(pool.get_stats().cached_bytes, buffer_pool::size_class(100));
}

TEST(BufferPool, CachedBytesNeverExceedTheCap) {
  // Three 128-byte buffers, room for two in the cache.
  buffer_pool pool(256);
  {
    std::vector<std::shared_ptr<buffer>> held;
    for (int i = 0; i < 3; ++i)
      held.push_back(pool.acquire(128));
    EXPECT_EQ(pool.get_stats().live_bytes, 384u);
  }
  auto st = pool.get_stats();
  EXPECT_EQ(st.cached_bytes, 256u);
  EXPECT_EQ(st.live_bytes, 0u);
  std::vector<std::shared_ptr<buffer>> held;
  for (int i = 0; i < 3; ++i)
    held.push_back(pool.acquire(128));
  st = pool.get_stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 4u);
  // A buffer larger than the whole cap is never cached.
  held.clear();
  { auto big = pool.acquire(4096); }
  EXPECT_LE(pool.get_stats().cached_bytes, 256u);
}

TEST(BufferPool, ZeroCapCachesNothing) {
  buffer_pool pool(0);
  { auto b = pool.acquire(10); }
  { auto b = pool.acquire(10); }
  auto st = pool.get_stats();
  EXPECT_EQ(st.cached_bytes, 0u);
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.misses, 2u);
}

TEST(BufferPool, TrimFreesTheCache) {
  buffer_pool pool(64 * MiB);
  {
    auto a = pool.acquire(100);
    auto b = pool.acquire(3 * MiB);
  }
  EXPECT_EQ(pool.get_stats().cached_bytes,
            buffer_pool::size_class(100) + buffer_pool::size_class(3 * MiB));
  auto live = pool.acquire(200);
  pool.trim();
  auto st = pool.get_stats();
  EXPECT_EQ(st.cached_bytes, 0u);
  EXPECT_EQ(st.live_bytes, buffer_pool::size_class(200)) << "trim leaves live buffers alone";
  { auto c = pool.acquire(100); }
  EXPECT_EQ(pool.get_stats().hits, 0u) << "nothing left to reuse after trim";
  // Live buffers still come back to the cache after a trim.
  live.reset();
  EXPECT_EQ(pool.get_stats().cached_bytes,
            buffer_pool::size_class(100) + buffer_pool::size_class(200));
}

TEST(BufferPool, BuffersOutliveTheirPoolObject) {
  std::shared_ptr<buffer> small, large;
  {
    buffer_pool pool(64 * MiB);
    small = pool.acquire(300);
    large = pool.acquire(MiB + 5);
    { auto cached = pool.acquire(300); }  // one buffer in the cache when the pool goes
  }
  touch_all(*small, 1);
  touch_all(*large, 2);
  small.reset();  // returns to the pool's state, which the deleter kept alive
  large.reset();
}

TEST(BufferPool, BuffersAre64ByteAlignedAndFullyUsable) {
  buffer_pool pool(64 * MiB);
  std::vector<std::shared_ptr<buffer>> held;
  for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{63}, std::size_t{64},
                            std::size_t{65}, std::size_t{80}, std::size_t{100}, std::size_t{130},
                            std::size_t{4097}, std::size_t{100000}, MiB - 1, MiB + 1, 5 * MiB}) {
    auto b = pool.acquire(bytes);
    ASSERT_NE(b->data(), nullptr);
    EXPECT_TRUE(aligned64(b->data())) << bytes;
    EXPECT_GE(b->capacity(), std::max<std::size_t>(bytes, 64));
    EXPECT_EQ(b->capacity(), buffer_pool::size_class(bytes));
    touch_all(*b, static_cast<std::uint8_t>(bytes));
    held.push_back(std::move(b));
  }
  // Distinct live buffers never overlap.
  for (std::size_t i = 0; i < held.size(); ++i)
    for (std::size_t j = i + 1; j < held.size(); ++j) {
      auto a = reinterpret_cast<std::uintptr_t>(held[i]->data());
      auto b = reinterpret_cast<std::uintptr_t>(held[j]->data());
      EXPECT_TRUE(a + held[i]->capacity() <= b || b + held[j]->capacity() <= a) << i << " " << j;
    }
}

TEST(BufferPool, ImpossibleSizesThrowBadAlloc) {
  buffer_pool pool(MiB);
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  // Rounding these up to a size class must not wrap around to a tiny buffer.
  for (std::size_t bytes : {max, max - 1, max - 2 * MiB + 2, max / 2 + 1}) {
    EXPECT_GE(buffer_pool::size_class(bytes), bytes) << bytes;
    EXPECT_THROW(pool.acquire(bytes), std::bad_alloc) << bytes;
  }
  auto st = pool.get_stats();
  EXPECT_EQ(st.live_bytes, 0u) << "a failed acquisition holds nothing";
  EXPECT_EQ(st.cached_bytes, 0u);
  auto ok = pool.acquire(100);  // the pool still works
  EXPECT_GE(ok->capacity(), 100u);
}

TEST(BufferPool, GlobalPoolIsOneInstance) {
  auto& g = buffer_pool::global();
  EXPECT_EQ(&g, &buffer_pool::global());
  auto b = g.acquire(777);
  EXPECT_GE(b->capacity(), 777u);
  EXPECT_TRUE(aligned64(b->data()));
}

// ---------------------------------------------------------------- threads

TEST(BufferPool, ConcurrentAcquireRelease) {
  constexpr int threads = 4, iterations = 1500;
  constexpr std::size_t cap = 256 * KiB;
  buffer_pool pool(cap);
  std::atomic<int> corrupt{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::shared_ptr<buffer>> mine;
      for (int i = 0; i < iterations; ++i) {
        const std::size_t bytes = rng() % 4096;
        auto b = pool.acquire(bytes);
        // Each live buffer belongs to this thread alone: fill it with the thread's byte and
        // check nobody else wrote into it.
        std::memset(b->data(), t + 1, b->capacity());
        mine.push_back(std::move(b));
        if (mine.size() > 8 || (rng() & 1)) {
          const auto& victim = mine.front();
          const auto* p = static_cast<const std::uint8_t*>(victim->data());
          for (std::size_t k = 0; k < victim->capacity(); ++k)
            if (p[k] != t + 1) {
              ++corrupt;
              break;
            }
          mine.erase(mine.begin());
        }
      }
    });
  }
  for (auto& th : ts)
    th.join();
  EXPECT_EQ(corrupt.load(), 0);
  auto st = pool.get_stats();
  EXPECT_EQ(st.live_bytes, 0u);
  EXPECT_LE(st.cached_bytes, cap);
  EXPECT_EQ(st.hits + st.misses, static_cast<std::size_t>(threads) * iterations);
  EXPECT_GT(st.hits, 0u);
}

}  // namespace
}  // namespace kvactor
