// Private to device/src: the host thread that runs device completion callbacks (the CUDA
// driver's callback thread and the emulated streams only hand work here, so that callbacks may
// call back into CUDA and kvactor). Callbacks run one at a time; an exception escaping one is
// reported on stderr.
//
// Two kinds of work. post_callback(fn): fn runs in post order. post_awaited(c): c->fn runs
// once c's device work is done, after the earlier awaited completions of the same order key
// (a stream), not after those of other keys. The thread learns it either way: by polling
// c->poll() while c is young (its first spin_window after posting, and once at least), which
// catches a completion within a few µs where a driver callback took 27-36 µs to reach a
// waiting thread on an H200 host; or from signal_awaited() (the driver's callback, which also
// says whether the work failed). So the thread spins while recently posted work is
// outstanding, and sleeps otherwise.
// Thread-safety: every function may be called from any thread; post_awaited() and
// signal_awaited() take one mutex and allocate nothing (the CUDA driver's callback thread calls
// the latter, and a completion must never be lost between them).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace kvactor::detail {

/// How long a posted awaited completion is polled before the thread waits for its signal.
constexpr std::chrono::microseconds spin_window{200};

struct awaited_completion {
  std::uintptr_t order = 0;     // completions with equal keys run in post order
  std::function<bool()> poll;   // true once the work is done without error
  std::function<void(int)> fn;  // runs with 0, or with the error signal_awaited() passed
  std::atomic<bool> signalled{false};
  int error = 0;        // written by signal_awaited() before `signalled`
  bool polled = false;  // the callback thread's
  std::chrono::steady_clock::time_point posted{};
  std::shared_ptr<awaited_completion> next;  // the dispatcher's list
};
using awaited_ptr = std::shared_ptr<awaited_completion>;

/// Never blocks for long; throws std::bad_alloc when the queue cannot grow.
void post_callback(std::function<void()> fn);
/// Sets c->posted and queues c (a linked list: nothing is allocated).
void post_awaited(awaited_ptr c) noexcept;
/// c's work is over (error 0: without error); call once per posted c, from any thread.
void signal_awaited(awaited_completion& c, int error) noexcept;

}  // namespace kvactor::detail
