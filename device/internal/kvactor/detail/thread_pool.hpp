// A fixed set of threads for data-parallel kernels on big arrays (the CPU reducer's engine).
// Work is a job of n independent chunks; idle threads claim chunks, higher-priority jobs
// first, and the thread that finishes the last chunk runs the job's completion — so an actor
// can hand off a reduction and get a message back, never waiting inside the actor.
// Thread-safety: every member function may be called from any thread, including from inside
// a chunk or a completion (submit only; parallel_for from a pool thread runs inline).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

namespace kvactor {

class thread_pool {
 public:
  /// threads == 0 means std::thread::hardware_concurrency().
  explicit thread_pool(std::size_t threads = 0);
  /// Finishes every submitted job, then joins the threads.
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  std::size_t size() const noexcept;

  /// A submitted job, for help().
  class job_handle {
   public:
    job_handle() = default;

   private:
    friend class thread_pool;
    explicit job_handle(std::shared_ptr<void> j) : job_(std::move(j)) {}
    std::shared_ptr<void> job_;
  };

  /// Runs chunk(i) for every i in [0, n) on the pool threads, then done() once, on the
  /// thread that finished the last chunk. Among queued jobs, higher priority starts first,
  /// then earlier submission. chunk must not throw. n == 0 calls done() at once.
  job_handle submit(std::size_t n, std::function<void(std::size_t)> chunk,
                    std::function<void()> done, int priority = 0);

  /// The calling thread runs chunks of job j that no pool thread has claimed yet, and
  /// returns when none are left unclaimed (others may still be running; done() is called by
  /// whoever finishes last — possibly this thread, inside help()).
  void help(const job_handle& j);

  /// Runs chunk(i) for every i in [0, n) on the pool and the calling thread and returns when
  /// all are done.
  void parallel_for(std::size_t n, const std::function<void(std::size_t)>& chunk);

  /// True when the calling thread is one of this pool's threads.
  bool on_pool_thread() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Splits [0, n) into `parts` nearly equal ranges; returns range i as [begin, end).
inline void split_range(std::size_t n, std::size_t parts, std::size_t i, std::size_t& begin,
                        std::size_t& end) noexcept {
  const std::size_t q = n / parts, r = n % parts;
  begin = i * q + (i < r ? i : r);
  end = begin + q + (i < r ? 1 : 0);
}

}  // namespace kvactor
