#include "callback_thread.hpp"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace kvactor::detail {
namespace {

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

 private:
  dispatcher() {
    std::thread([this] { run(); }).detach();
  }

  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [this] { return !queue_.empty(); });
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "kvactor: a device completion callback threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "kvactor: a device completion callback threw\n");
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

}  // namespace

void post_callback(std::function<void()> fn) {
  dispatcher::get().post(std::move(fn));
}

}  // namespace kvactor::detail
