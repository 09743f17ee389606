#include "kvactor/detail/thread_pool.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace kvactor {

namespace {

struct job {
  std::size_t n;
  std::function<void(std::size_t)> chunk;
  std::function<void()> done;
  int priority;
  std::uint64_t seq;
  std::size_t next = 0;  // next chunk to claim; guarded by the pool mutex
  std::atomic<std::size_t> finished{0};
};

struct job_order {
  bool operator()(const std::shared_ptr<job>& a, const std::shared_ptr<job>& b) const {
    if (a->priority != b->priority) return a->priority < b->priority;
    return a->seq > b->seq;
  }
};

thread_local const void* current_pool = nullptr;

}  // namespace

struct thread_pool::impl {
  std::mutex mu;
  std::condition_variable cv;
  std::priority_queue<std::shared_ptr<job>, std::vector<std::shared_ptr<job>>, job_order> queue;
  std::uint64_t seq = 0;
  bool stopping = false;
  std::vector<std::thread> threads;

  // Claims one chunk of the best job; false when nothing is queued.
  // Jobs whose chunks were all claimed by a parallel_for caller are dropped lazily here.
  bool claim(std::shared_ptr<job>& j, std::size_t& i) {
    while (!queue.empty()) {
      j = queue.top();
      if (j->next >= j->n) {
        queue.pop();
        continue;
      }
      i = j->next++;
      if (j->next == j->n) queue.pop();
      return true;
    }
    return false;
  }

  static void run(const std::shared_ptr<job>& j, std::size_t i) {
    j->chunk(i);
    if (j->finished.fetch_add(1, std::memory_order_acq_rel) + 1 == j->n) {
      auto done = std::move(j->done);
      if (done) done();
    }
  }

  void loop() {
    current_pool = this;
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      std::shared_ptr<job> j;
      std::size_t i = 0;
      if (claim(j, i)) {
        lk.unlock();
        run(j, i);
        lk.lock();
        continue;
      }
      if (stopping) return;
      cv.wait(lk);
    }
  }
};

thread_pool::thread_pool(std::size_t threads) : impl_(std::make_unique<impl>()) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  impl_->threads.reserve(threads);
  for (std::size_t t = 0; t < threads; ++t)
    impl_->threads.emplace_back([this] { impl_->loop(); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads)
    t.join();
}

std::size_t thread_pool::size() const noexcept {
  return impl_->threads.size();
}

bool thread_pool::on_pool_thread() const noexcept {
  return current_pool == impl_.get();
}

thread_pool::job_handle thread_pool::submit(std::size_t n, std::function<void(std::size_t)> chunk,
                                            std::function<void()> done, int priority) {
  if (n == 0) {
    if (done) done();
    return {};
  }
  auto j = std::make_shared<job>();
  j->n = n;
  j->chunk = std::move(chunk);
  j->done = std::move(done);
  j->priority = priority;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    j->seq = impl_->seq++;
    impl_->queue.push(j);
  }
  if (n == 1)
    impl_->cv.notify_one();
  else
    impl_->cv.notify_all();
  return job_handle{std::move(j)};
}

void thread_pool::help(const job_handle& h) {
  auto j = std::static_pointer_cast<job>(h.job_);
  if (!j) return;
  for (;;) {
    std::size_t i;
    {
      std::lock_guard<std::mutex> g(impl_->mu);
      if (j->next >= j->n) return;
      i = j->next++;
    }
    impl::run(j, i);
  }
}

void thread_pool::parallel_for(std::size_t n, const std::function<void(std::size_t)>& chunk) {
  if (n == 0) return;
  if (n == 1 || on_pool_thread() || impl_->threads.empty()) {
    for (std::size_t i = 0; i < n; ++i)
      chunk(i);
    return;
  }
  std::mutex m;
  std::condition_variable cv;
  bool all_done = false;
  auto j = std::make_shared<job>();
  j->n = n;
  j->chunk = chunk;
  j->done = [&] {
    std::lock_guard<std::mutex> g(m);
    all_done = true;
    cv.notify_one();
  };
  j->priority = 0;
  {
    std::lock_guard<std::mutex> g(impl_->mu);
    j->seq = impl_->seq++;
    impl_->queue.push(j);
  }
  impl_->cv.notify_all();
  // The caller works on its own job's chunks too, then waits for the stragglers.
  for (;;) {
    std::size_t i;
    {
      std::lock_guard<std::mutex> g(impl_->mu);
      if (j->next >= j->n) break;
      i = j->next++;
    }
    impl::run(j, i);
  }
  std::unique_lock<std::mutex> lk(m);
  cv.wait(lk, [&] { return all_done; });
}

}  // namespace kvactor
