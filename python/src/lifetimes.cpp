#include "lifetimes.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace kvactor::python {

namespace {

std::atomic<bool> alive{true};

// The objects live in a std::vector here (a keepalive's inline storage moves element by
// element, and parked entries move whenever the list grows or drain() takes one out).
struct parked {
  std::shared_ptr<kvactor::detail::state_base> done;
  std::vector<py::object> objects;
};

// Touched only with the GIL held. Never destroyed: at exit it may still hold references to
// objects of calls in flight, which must not be dropped after the interpreter is gone.
std::vector<parked>& parked_objects() {
  static auto* list = new std::vector<parked>();
  return *list;
}

// The notifier: jobs posted from any thread, run in order with the GIL held on one thread of
// its own, started on the first post. Never destroyed (see parked_objects()).
class notifier {
 public:
  void post(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;  // dropped: the interpreter is going away
    jobs_.push_back(std::move(job));
    if (!started_) {
      started_ = true;
      thread_ = std::thread([this] { run(); });
    }
    cv_.notify_one();
  }

  // Called with the GIL released: runs what was posted so far, then ends the thread.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // stopping, and nothing left
      std::deque<std::function<void()>> batch;
      batch.swap(jobs_);
      lock.unlock();
      {
        py::gil_scoped_acquire gil;
        for (auto& job : batch) {
          try {
            job();
          } catch (py::error_already_set& e) {
            e.discard_as_unraisable("kvactor: a future's done callback");
          } catch (const std::exception& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
            PyErr_WriteUnraisable(nullptr);
          }
        }
        batch.clear();  // under the GIL: the jobs' captures may hold Python objects
      }
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::thread thread_;
  bool started_ = false;
  bool stopping_ = false;
};

notifier& the_notifier() {
  static auto* n = new notifier();
  return *n;
}

}  // namespace

void park(std::shared_ptr<kvactor::detail::state_base> done, keepalive objects) {
  if (objects.empty()) return;
  parked_objects().push_back(
      parked{std::move(done), std::vector<py::object>(std::make_move_iterator(objects.begin()),
                                                      std::make_move_iterator(objects.end()))});
}

void drain() {
  auto& list = parked_objects();
  if (list.empty()) return;
  // Dropping objects may run Python code (a __del__) that parks or drains again: take the
  // finished entries out first, then let them go.
  std::vector<parked> finished;
  for (std::size_t i = 0; i < list.size();) {
    if (list[i].done->ready()) {
      finished.push_back(std::move(list[i]));
      list[i] = std::move(list.back());
      list.pop_back();
    } else {
      ++i;
    }
  }
}

bool interpreter_alive() noexcept {
  return alive.load(std::memory_order_acquire);
}

void post_to_python(std::function<void()> job) {
  if (!interpreter_alive()) return;
  the_notifier().post(std::move(job));
}

void stop_python_threads() {
  {
    py::gil_scoped_release nogil;
    the_notifier().stop();
  }
  alive.store(false, std::memory_order_release);
  drain();
}

}  // namespace kvactor::python
