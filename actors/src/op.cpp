#include "op.hpp"

namespace kvactor::detail {

const char* to_string(op_kind k) noexcept {
  switch (k) {
    case op_kind::init:
      return "init";
    case op_kind::push:
      return "push";
    case op_kind::pull:
      return "pull";
    case op_kind::pushpull:
      return "pushpull";
    case op_kind::broadcast:
      return "broadcast";
    case op_kind::row_pull:
      return "row_sparse_pull";
  }
  return "op";
}

void op_counter::completed() {
  // The last call to finish wakes the waiters; one still outstanding will, when it does.
  if (finishing_.fetch_sub(1) == 1 && n_.load() == 0) {
    std::lock_guard<std::mutex> g(mu_);
    cv_.notify_all();
  }
}

void op_counter::wait_zero() {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [this] { return n_.load() == 0 && finishing_.load() == 0; });
}

void call_state::part_done(const status& s) {
  if (!parts_.done_one(s)) return;
  if (counter_) counter_->completing();
  finish(parts_.first_error());
  if (counter_) counter_->completed();
}

void op::acquire_leases() noexcept {
  if (leased_) return;
  for (const auto& v : values)
    v.storage_ptr()->begin_read();
  for (const auto& o : outs)
    o.storage_ptr()->begin_write();
  for (const auto& r : sparse) {
    r.indices().storage_ptr()->begin_read();
    r.data().storage_ptr()->begin_read();
  }
  leased_ = true;
}

void op::release_leases() noexcept {
  if (!leased_) return;
  leased_ = false;
  for (const auto& v : dev.io ? dev.values : values)
    v.storage_ptr()->end_read();
  for (const auto& o : dev.io ? dev.outs : outs)
    o.storage_ptr()->end_write();
  for (const auto& r : sparse) {
    r.indices().storage_ptr()->end_read();
    r.data().storage_ptr()->end_read();
  }
}

op::~op() {
  release_leases();
  if (call)
    call->part_done(status{errc::shut_down, std::string{to_string(kind)} + " of key " +
                                                (info ? info->name() : std::string{"?"}) +
                                                " was dropped: the store shut down"});
}

}  // namespace kvactor::detail
