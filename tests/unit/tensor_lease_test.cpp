// tensor: the read/write leases that the checked accessors wait for, and the lease counters.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "kvactor/tensor.hpp"

namespace kvactor {
namespace {

using namespace std::chrono_literals;

// Runs op on its own thread. started() resolves right before op is called; finished()
// resolves when op has returned.
class async_op {
 public:
  template <class F>
  explicit async_op(F op) {
    auto started = std::make_shared<std::promise<void>>();
    started_ = started->get_future();
    std::packaged_task<void()> task([started, op]() mutable {
      started->set_value();
      op();
    });
    finished_ = task.get_future();
    thread_ = std::thread(std::move(task));
    started_.wait();
  }
  ~async_op() {
    if (thread_.joinable()) thread_.join();
  }
  /// Evidence that op is blocked: it has not finished within a short window. (The window is
  /// not what the test's outcome depends on when op does block; a non-blocking op finishes
  /// within microseconds and fails the check.)
  bool still_blocked() { return finished_.wait_for(30ms) == std::future_status::timeout; }
  /// Waits (bounded, to fail rather than hang) for op to return.
  /// Rethrows what op threw.
  bool finishes() {
    if (finished_.wait_for(10s) != std::future_status::ready) return false;
    finished_.get();
    return true;
  }

 private:
  std::future<void> started_;
  std::future<void> finished_;
  std::thread thread_;
};

TEST(TensorLease, LeaseCountersTrackBeginAndEnd) {
  auto t = tensor::zeros({4});
  const auto& st = *t.storage_ptr();
  EXPECT_EQ(st.pending_reads(), 0);
  EXPECT_EQ(st.pending_writes(), 0);
  st.begin_read();
  st.begin_read();
  st.begin_write();
  EXPECT_EQ(st.pending_reads(), 2);
  EXPECT_EQ(st.pending_writes(), 1);
  st.end_read();
  st.end_read();
  st.end_write();
  EXPECT_EQ(st.pending_reads(), 0);
  EXPECT_EQ(st.pending_writes(), 0);
}

TEST(TensorLease, ReadsProceedUnderAReadLease) {
  auto t = tensor::full({4}, 2.0);
  const auto& st = *t.storage_ptr();
  st.begin_read();
  async_op reader([t] {
    const tensor& c = t;
    EXPECT_EQ(c.at(1), 2.0);
    EXPECT_EQ(c.to_vector(), std::vector<double>(4, 2.0));
    EXPECT_EQ(c.data<float>()[3], 2.0f);
    EXPECT_EQ(c.copy().at(0), 2.0);
    EXPECT_EQ(c.astype(dtype::int32).at(0), 2.0);
    c.wait_to_read();
  });
  const bool done = reader.finishes();
  EXPECT_TRUE(done) << "readers must not wait for a read lease";
  st.end_read();  // releases the reader if it was wrongly blocked
}

TEST(TensorLease, SetBlocksUnderAReadLeaseUntilReleased) {
  auto t = tensor::zeros({4});
  const auto& st = *t.storage_ptr();
  st.begin_read();
  async_op writer([t]() mutable { t.set(0, 5.0); });
  EXPECT_TRUE(writer.still_blocked());
  EXPECT_EQ(static_cast<const float*>(t.data_unchecked())[0], 0.0f) << "written under a lease";
  st.end_read();
  ASSERT_TRUE(writer.finishes());
  EXPECT_EQ(t.at(0), 5.0);
}

TEST(TensorLease, WriteAccessorsWaitForEveryReadLease) {
  auto t = tensor::zeros({4});
  const auto& st = *t.storage_ptr();
  st.begin_read();
  st.begin_read();
  async_op writer([t]() mutable {
    float* p = t.data<float>();
    p[1] = 7.0f;
  });
  EXPECT_TRUE(writer.still_blocked());
  st.end_read();
  EXPECT_TRUE(writer.still_blocked()) << "one read lease is still held";
  st.end_read();
  ASSERT_TRUE(writer.finishes());
  EXPECT_EQ(t.at(1), 7.0);
}

TEST(TensorLease, WriteAccessorsBlockUnderAWriteLease) {
  auto t = tensor::zeros({4});
  const auto& st = *t.storage_ptr();
  st.begin_write();
  {
    async_op setter([t]() mutable { t.set(2, 3.0); });
    EXPECT_TRUE(setter.still_blocked());
    // The lease holder (the store) writes meanwhile; set() must come after that write.
    static_cast<float*>(t.data_unchecked())[2] = 9.0f;
    st.end_write();
    ASSERT_TRUE(setter.finishes());
    EXPECT_EQ(t.at(2), 3.0);
  }
  st.begin_write();
  {
    async_op filler([t]() mutable { t.fill(1.0); });
    EXPECT_TRUE(filler.still_blocked());
    static_cast<float*>(t.data_unchecked())[0] = 9.0f;
    st.end_write();
    ASSERT_TRUE(filler.finishes());
    EXPECT_EQ(t.to_vector(), std::vector<double>(4, 1.0));
  }
}

TEST(TensorLease, ReadAccessorsBlockOnlyUnderAWriteLease) {
  auto t = tensor::zeros({3});
  const auto& st = *t.storage_ptr();
  st.begin_write();
  double seen_at = -1;
  std::vector<double> seen_vec;
  float seen_ptr = -1;
  async_op at_reader([t, &seen_at] { seen_at = t.at(0); });
  async_op vec_reader([t, &seen_vec] { seen_vec = t.to_vector(); });
  async_op ptr_reader([t, &seen_ptr] {
    const tensor& c = t;
    seen_ptr = c.data<float>()[2];
  });
  EXPECT_TRUE(at_reader.still_blocked());
  EXPECT_TRUE(vec_reader.still_blocked());
  EXPECT_TRUE(ptr_reader.still_blocked());
  // The lease holder produces the value (a pull's output), then releases.
  auto* p = static_cast<float*>(t.data_unchecked());
  p[0] = 4.0f;
  p[1] = 5.0f;
  p[2] = 6.0f;
  st.end_write();
  ASSERT_TRUE(at_reader.finishes());
  ASSERT_TRUE(vec_reader.finishes());
  ASSERT_TRUE(ptr_reader.finishes());
  EXPECT_EQ(seen_at, 4.0) << "the reader sees the value written under the lease";
  EXPECT_EQ(seen_vec, (std::vector<double>{4, 5, 6}));
  EXPECT_EQ(seen_ptr, 6.0f);
}

TEST(TensorLease, CopyToWaitsForTheDestinationsLeases) {
  auto src = tensor::full({2}, 8.0);
  auto dst = tensor::zeros({2});
  dst.storage_ptr()->begin_read();
  async_op copier([src, dst]() mutable { src.copy_to(dst); });
  EXPECT_TRUE(copier.still_blocked());
  EXPECT_EQ(static_cast<const float*>(dst.data_unchecked())[0], 0.0f);
  dst.storage_ptr()->end_read();
  ASSERT_TRUE(copier.finishes());
  EXPECT_EQ(dst.to_vector(), (std::vector<double>{8, 8}));
}

TEST(TensorLease, CopiesWaitForTheSourcesWriteLease) {
  auto src = tensor::zeros({2});
  src.storage_ptr()->begin_write();
  tensor out;
  async_op copier([src, &out] { out = src.copy(); });
  EXPECT_TRUE(copier.still_blocked());
  static_cast<float*>(src.data_unchecked())[1] = 3.0f;
  src.storage_ptr()->end_write();
  ASSERT_TRUE(copier.finishes());
  EXPECT_EQ(out.to_vector(), (std::vector<double>{0, 3}));
}

TEST(TensorLease, UncheckedAccessDoesNotWait) {
  auto t = tensor::zeros({2});
  t.storage_ptr()->begin_write();
  t.storage_ptr()->begin_read();
  EXPECT_NE(t.data_unchecked(), nullptr);
  t.storage_ptr()->end_read();
  t.storage_ptr()->end_write();
}

TEST(TensorLease, ManyWaitersAllWake) {
  auto t = tensor::zeros({8});
  const auto& st = *t.storage_ptr();
  st.begin_write();
  std::vector<std::unique_ptr<async_op>> readers;
  for (int i = 0; i < 8; ++i)
    readers.push_back(
        std::make_unique<async_op>([t, i] { (void)t.at(static_cast<std::size_t>(i)); }));
  // Unrelated tensors share the waiters' condition variables; their leases must not matter.
  auto other = tensor::zeros({1});
  other.storage_ptr()->begin_write();
  other.storage_ptr()->end_write();
  EXPECT_TRUE(readers[0]->still_blocked());
  st.end_write();
  for (auto& r : readers)
    EXPECT_TRUE(r->finishes());
}

}  // namespace
}  // namespace kvactor
