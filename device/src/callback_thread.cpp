#include "callback_thread.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kvactor::detail {
namespace {

template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvactor: a device completion callback threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "kvactor: a device completion callback threw\n");
  }
}

// A list of awaited completions linked through their `next` (no allocation to add one).
struct chain {
  awaited_ptr head;
  awaited_completion* tail = nullptr;

  bool empty() const noexcept { return !head; }
  void push(awaited_ptr c) noexcept {
    awaited_completion* raw = c.get();
    raw->next.reset();
    if (tail)
      tail->next = std::move(c);
    else
      head = std::move(c);
    tail = raw;
  }
  void append(chain& other) noexcept {
    if (other.empty()) return;
    if (tail)
      tail->next = std::move(other.head);
    else
      head = std::move(other.head);
    tail = other.tail;
    other.tail = nullptr;
  }
};

class dispatcher {
 public:
  static dispatcher& get() {
    static dispatcher* d = new dispatcher;  // never destroyed: its thread may outlive main
    return *d;
  }

  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> g(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

  void post(awaited_ptr c) noexcept {
    c->posted = std::chrono::steady_clock::now();
    {
      std::lock_guard<std::mutex> g(mu_);
      incoming_.push(std::move(c));
    }
    cv_.notify_one();
  }

  void signal() noexcept {
    {
      std::lock_guard<std::mutex> g(mu_);
      ++signals_;
    }
    cv_.notify_one();
  }

 private:
  dispatcher() {
    std::thread([this] { run(); }).detach();
  }

  void run() {
    std::deque<std::function<void()>> now;
    chain pending;  // in post order
    std::vector<std::uintptr_t> blocked;
    bool young = false;  // some pending completion is still polled
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        // Sleep only when nothing is polled: a post or a signal wakes the thread.
        if (!young)
          cv_.wait(lk,
                   [this] { return !queue_.empty() || !incoming_.empty() || signals_ != seen_; });
        now.swap(queue_);
        pending.append(incoming_);
        seen_ = signals_;
      }
      for (auto& fn : now)
        guarded(fn);
      now.clear();
      young = sweep(pending, blocked);
      if (young) std::this_thread::yield();
    }
  }

  // Runs the completions that are done, each after the earlier ones of its order key; true
  // when some that are left are still young.
  static bool sweep(chain& pending, std::vector<std::uintptr_t>& blocked) {
    const auto now = std::chrono::steady_clock::now();
    blocked.clear();
    auto is_blocked = [&](std::uintptr_t k) {
      return std::find(blocked.begin(), blocked.end(), k) != blocked.end();
    };
    bool young = false;
    chain kept;
    while (awaited_ptr c = std::move(pending.head)) {
      pending.head = std::move(c->next);
      bool done = false;
      int error = 0;
      if (!is_blocked(c->order)) {
        if (c->signalled.load(std::memory_order_acquire)) {
          done = true;
          error = c->error;
        } else if (!c->polled || now - c->posted < spin_window) {
          c->polled = true;  // once at least, however late the thread got to it
          done = c->poll();
        }
      }
      if (done) {
        guarded([&] { c->fn(error); });
        // What fn holds goes here, not with the driver's last reference on its thread.
        c->fn = nullptr;
        c->poll = nullptr;
        continue;
      }
      if (!is_blocked(c->order)) blocked.push_back(c->order);  // at most one per stream
      young = young || now - c->posted < spin_window;
      kept.push(std::move(c));
    }
    pending.tail = nullptr;
    pending.append(kept);
    return young;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  chain incoming_;
  std::uint64_t signals_ = 0, seen_ = 0;
};

}  // namespace

void post_callback(std::function<void()> fn) {
  dispatcher::get().post(std::move(fn));
}

void post_awaited(awaited_ptr c) noexcept {
  dispatcher::get().post(std::move(c));
}

void signal_awaited(awaited_completion& c, int error) noexcept {
  c.error = error;
  c.signalled.store(true, std::memory_order_release);
  dispatcher::get().signal();
}

}  // namespace kvactor::detail
