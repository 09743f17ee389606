#include "key_scheduler.hpp"

namespace kvactor::detail {

key_scheduler_base::key_scheduler_base(hooks h) : hooks_(std::move(h)) {}

bool key_scheduler_base::uncontended(const key_base& k, bool queue_empty) {
  return !k.busy_ && queue_empty && ready_keys_ == 0 && !pass_pending_ && hooks_.quiet();
}

void key_scheduler_base::note_queued(key_base& k, int p, bool queue_empty) {
  if (queue_empty || p > k.max_priority_) {
    k.max_priority_ = p;
    k.at_max_ = 1;
  } else if (p == k.max_priority_) {
    ++k.at_max_;
  }
}

void key_scheduler_base::mark_ready(key_base& k, int priority) {
  if (k.in_ready_ && k.ready_priority_ >= priority) return;
  if (!k.in_ready_) ++ready_keys_;
  k.in_ready_ = true;
  k.ready_priority_ = priority;
  // A key whose priority rose is pushed again; its older heap entry is skipped when popped.
  ready_.push(ready_item{priority, seq_++, &k});
  ensure_pass();
}

key_scheduler_base::key_base* key_scheduler_base::pop_ready() {
  while (!ready_.empty()) {
    ready_item it = ready_.top();
    ready_.pop();
    key_base& k = *it.k;
    if (!k.in_ready_ || it.priority != k.ready_priority_) continue;  // superseded
    k.in_ready_ = false;
    --ready_keys_;
    return &k;
  }
  return nullptr;
}

void key_scheduler_base::ensure_pass() {
  if (pass_pending_ || in_pass_) return;
  pass_pending_ = true;
  hooks_.request_pass();
}

void key_scheduler_base::begin_pass() noexcept {
  pass_pending_ = false;
  in_pass_ = true;
}

void key_scheduler_base::end_pass() {
  in_pass_ = false;
  if (ready_keys_ > 0) ensure_pass();
}

bool key_scheduler_base::item_finished(key_base& k, bool queue_empty) {
  k.busy_ = false;
  if (!queue_empty) mark_ready(k, k.max_priority_);
  --live_;
  return fence_active_ && --fence_waits_for_ == 0;
}

bool key_scheduler_base::arm_fence(std::function<void()>& action) {
  if (live_ == 0) return false;
  fence_active_ = true;
  fence_waits_for_ = live_;
  fence_action_ = std::move(action);
  return true;
}

std::function<void()> key_scheduler_base::disarm_fence() {
  auto action = std::move(fence_action_);
  fence_action_ = nullptr;
  fence_active_ = false;
  return action;
}

}  // namespace kvactor::detail
