// Runs work items one key at a time, most urgent key first: the shard's scheduling without
// CAF or tensors, so that it can be tested with plain items.
//
// Each key has a FIFO queue, so items of one key run strictly in arrival order, and at most
// one item per key runs at a time (the key is busy until finished()). Keys with queued items
// wait in a ready heap ordered by priority, the highest priority among a key's queued items
// (so an urgent item lifts the items queued ahead of it on its key: priority inheritance, kept
// without rescanning the queue per item), then by arrival. An item that arrives when nothing
// competes with it (no key ready, no pass pending, the owner's mailbox quiet) runs at once.
// A pass (run_ready) starts at least one item, then stops when the owner has new messages, so
// that everything that has arrived competes on priority before the next pick.
//
// Fences: an action that runs once every item submitted before it has finished; items and
// fences submitted after it are held, then replayed in arrival order.
//
// Items are started through a callable `run(key&, Item&&)` that the caller passes to each call
// (a template argument: no std::function per item); it may call finished() before returning.
// Thread-safety: not thread-safe; one owner (a shard actor) calls it from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

namespace kvactor::detail {

/// The part of key_scheduler that does not depend on the item type: keys' priorities, the
/// ready heap, passes, and the count of live items that fences wait for.
class key_scheduler_base {
 public:
  struct hooks {
    /// Ask the owner to call run_ready() after the messages now in its mailbox.
    std::function<void()> request_pass;
    /// Whether no message waits in the owner's mailbox (nothing else is about to arrive).
    std::function<bool()> quiet;
  };

  /// A key's scheduling state; the owner's per-key record derives from key_scheduler::key.
  class key_base {
   public:
    bool busy() const noexcept { return busy_; }
    /// The highest priority among the key's queued items (meaningless when none is queued).
    int inherited_priority() const noexcept { return max_priority_; }

   private:
    friend class key_scheduler_base;
    template <class>
    friend class key_scheduler;
    int ready_priority_ = 0;
    bool in_ready_ = false;
    bool busy_ = false;
    int max_priority_ = 0;
    std::size_t at_max_ = 0;  // queued items at max_priority_
  };

  explicit key_scheduler_base(hooks h);

  /// Items submitted (not held by a fence) and not finished.
  std::size_t live() const noexcept { return live_; }
  /// Keys waiting in the ready heap.
  std::size_t ready_keys() const noexcept { return ready_keys_; }
  bool fence_waiting() const noexcept { return fence_active_; }
  /// Whether a pass has been asked for and has not run yet.
  bool pass_pending() const noexcept { return pass_pending_; }

 protected:
  /// Whether an item arriving for k may run at once.
  bool uncontended(const key_base& k, bool queue_empty);
  /// Counts an item of priority p into k's queue (before it is queued), and marks k ready.
  void note_queued(key_base& k, int p, bool queue_empty);
  void mark_ready(key_base& k, int priority);
  key_base* pop_ready();
  bool quiet() const { return hooks_.quiet(); }
  void begin_pass() noexcept;
  void end_pass();
  /// Counts a finished item; true when a fence has no more items to wait for.
  bool item_finished(key_base& k, bool queue_empty);
  /// Arms a fence behind the live items; false when there are none (run it now).
  bool arm_fence(std::function<void()>& action);
  std::function<void()> disarm_fence();

  std::size_t live_ = 0;
  bool fence_active_ = false;

 private:
  struct ready_item {
    int priority;
    std::uint64_t seq;
    key_base* k;
  };
  struct ready_order {
    bool operator()(const ready_item& a, const ready_item& b) const {
      if (a.priority != b.priority) return a.priority < b.priority;
      return a.seq > b.seq;
    }
  };
  void ensure_pass();

  hooks hooks_;
  std::priority_queue<ready_item, std::vector<ready_item>, ready_order> ready_;
  std::size_t ready_keys_ = 0;
  std::uint64_t seq_ = 0;
  bool pass_pending_ = false;
  bool in_pass_ = false;
  std::size_t fence_waits_for_ = 0;
  std::function<void()> fence_action_;
};

/// Item: movable and default-constructible (a held fence leaves it empty).
template <class Item>
class key_scheduler : public key_scheduler_base {
 public:
  class key : public key_base {
   public:
    std::size_t queued() const noexcept { return queue_.size(); }

   private:
    friend class key_scheduler;
    struct queued_item {
      Item item;
      int priority;
    };
    std::deque<queued_item> queue_;
  };

  using key_scheduler_base::key_scheduler_base;

  /// An item of priority p arrives for k: runs at once when nothing competes with it, else
  /// waits in k's queue (or, behind a fence, until the fence has run).
  template <class Run>
  void submit(key& k, Item item, int p, Run&& run) {
    if (fence_active_) {
      held_.push_back(held_item{&k, std::move(item), p, nullptr});
      return;
    }
    ++live_;
    if (uncontended(k, k.queue_.empty())) {
      start(k, std::move(item), run);
      return;
    }
    note_queued(k, p, k.queue_.empty());
    k.queue_.push_back(typename key::queued_item{std::move(item), p});
    if (!k.busy_) mark_ready(k, k.max_priority_);
  }

  /// One pass, when the owner got round to it (hooks::request_pass): starts the most urgent
  /// ready keys' next items until none is ready or, after the first, the mailbox has news.
  template <class Run>
  void run_ready(Run&& run) {
    begin_pass();
    for (bool first = true; ready_keys() > 0; first = false) {
      if (!first && !quiet()) break;
      key_base* kb = pop_ready();
      if (!kb) break;
      auto& k = static_cast<key&>(*kb);
      start(k, dequeue(k), run);
    }
    end_pass();
  }

  /// k's running item is done: k's next item may run; a fence with nothing left to wait for
  /// runs, and what it held is replayed.
  template <class Run>
  void finished(key& k, Run&& run) {
    if (item_finished(k, k.queue_.empty())) release_fence(run);
  }

  /// A store-wide action that runs once every item submitted before it has finished.
  void fence(std::function<void()> action) {
    if (fence_active_) {
      held_.push_back(held_item{nullptr, Item{}, 0, std::move(action)});
      return;
    }
    if (!arm_fence(action)) action();
  }

  /// Items and fences held behind a waiting fence.
  std::size_t held() const noexcept { return held_.size(); }

 private:
  struct held_item {
    key* k;  // null: a fence
    Item item;
    int priority;
    std::function<void()> fence;
  };

  template <class Run>
  void start(key& k, Item item, Run& run) {
    k.busy_ = true;
    run(k, std::move(item));
  }

  Item dequeue(key& k) {
    auto& q = k.queue_;
    Item item = std::move(q.front().item);
    const int p = q.front().priority;
    q.pop_front();
    if (p == k.max_priority_ && --k.at_max_ == 0 && !q.empty()) {
      // The last item at the top priority left: find the next (rare, and linear only then).
      k.max_priority_ = q.front().priority;
      for (const auto& x : q) {
        if (x.priority > k.max_priority_) {
          k.max_priority_ = x.priority;
          k.at_max_ = 0;
        }
        if (x.priority == k.max_priority_) ++k.at_max_;
      }
    }
    return item;
  }

  template <class Run>
  void release_fence(Run& run) {
    disarm_fence()();
    // Replay what waited, in arrival order; a held fence may hold the rest again.
    auto held = std::move(held_);
    held_.clear();
    for (auto& h : held) {
      if (h.k)
        submit(*h.k, std::move(h.item), h.priority, run);
      else
        fence(std::move(h.fence));
    }
  }

  std::deque<held_item> held_;
};

}  // namespace kvactor::detail
