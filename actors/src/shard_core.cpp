#include "shard_core.hpp"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>

#include "kvactor/device_kernels.hpp"
#include "kvactor/device_ops.hpp"
#include "kvactor/kernels.hpp"
#include "kvactor/optimizer_state.hpp"

namespace kvactor::detail {

namespace {

enum stage : std::uint8_t { s_init, s_reduce, s_update, s_pull, s_finish };

std::uint8_t first_stage(op_kind k) {
  switch (k) {
    case op_kind::init:
    case op_kind::broadcast:
      return s_init;
    case op_kind::push:
    case op_kind::pushpull:
      return s_reduce;
    case op_kind::pull:
    case op_kind::row_pull:
      return s_pull;
  }
  return s_finish;
}

constexpr std::size_t min_chunk_bytes = 256 * 1024;
constexpr std::size_t help_limit_bytes = std::size_t{8} << 20;
// Fused reduce-and-copy works in blocks that stay in the L1/L2 cache between the two.
constexpr std::size_t fuse_block_bytes = 32 * 1024;

}  // namespace

shard_core::shard_core(hooks h, std::size_t threshold, std::size_t width)
    : hooks_(std::move(h)), threshold_(threshold), width_(std::max<std::size_t>(width, 1)) {}

shard_core::~shard_core() = default;

std::size_t shard_core::held_bytes() const noexcept {
  std::size_t n = 0;
  for (const auto& [id, e] : entries_)
    n += e.stored.nbytes() + e.merge.nbytes();
  return n;
}

shard_core::entry& shard_core::entry_for(const op& o) {
  auto [it, fresh] = entries_.try_emplace(o.info->id);
  if (fresh) it->second.info = o.info;
  return it->second;
}

void shard_core::receive(op_ptr o) {
  if (fence_active_) {
    held_.push_back(held_item{std::move(o), nullptr});
    return;
  }
  ++live_ops_;
  o->stage = first_stage(o->kind);
  entry& e = entry_for(*o);
  if (!e.current && e.queue.empty() && ready_keys_ == 0 && !process_pending_ &&
      hooks_.mailbox_empty()) {
    start(e, std::move(o));  // nothing competes with it: no need to queue
    return;
  }
  enqueue(e, std::move(o));
}

void shard_core::enqueue(entry& e, op_ptr o) {
  const int p = o->priority;
  if (e.queue.empty() || p > e.max_priority) {
    e.max_priority = p;
    e.at_max = 1;
  } else if (p == e.max_priority) {
    ++e.at_max;
  }
  e.queue.push_back(std::move(o));
  if (!e.current) mark_ready(e, e.max_priority);
}

op_ptr shard_core::dequeue(entry& e) {
  op_ptr o = std::move(e.queue.front());
  e.queue.pop_front();
  if (o->priority == e.max_priority && --e.at_max == 0 && !e.queue.empty()) {
    // The last op at the top priority left: find the next (rare, and linear only then).
    e.max_priority = e.queue.front()->priority;
    for (const auto& q : e.queue) {
      if (q->priority > e.max_priority) {
        e.max_priority = q->priority;
        e.at_max = 0;
      }
      if (q->priority == e.max_priority) ++e.at_max;
    }
  }
  return o;
}

void shard_core::mark_ready(entry& e, int priority) {
  if (e.in_ready && e.ready_priority >= priority) return;
  if (!e.in_ready) ++ready_keys_;
  e.in_ready = true;
  e.ready_priority = priority;
  ready_.push(ready_item{priority, seq_++, &e});
  ensure_process();
}

void shard_core::refresh_ready(entry& e) {
  if (e.queue.empty() || e.current) return;
  mark_ready(e, e.max_priority);
}

shard_core::entry* shard_core::pop_ready() {
  while (!ready_.empty()) {
    ready_item it = ready_.top();
    ready_.pop();
    entry& e = *it.e;
    if (!e.in_ready || it.priority != e.ready_priority) continue;  // superseded
    e.in_ready = false;
    --ready_keys_;
    return &e;
  }
  return nullptr;
}

void shard_core::ensure_process() {
  if (process_pending_ || in_process_) return;
  process_pending_ = true;
  hooks_.schedule_process();
}

void shard_core::process() {
  process_pending_ = false;
  in_process_ = true;
  // At least one op per call, so a steady stream of arrivals cannot starve the queue; after
  // that, new arrivals get to compete first.
  for (bool first = true; ready_keys_ > 0; first = false) {
    if (!first && !hooks_.mailbox_empty()) break;
    entry* e = pop_ready();
    if (!e) break;
    start(*e, dequeue(*e));
  }
  in_process_ = false;
  if (ready_keys_ > 0) ensure_process();
}

void shard_core::start(entry& e, op_ptr o) {
  e.current = std::move(o);
  advance(e, *e.current);
}

void shard_core::step_done(std::int64_t key_id) {
  auto it = entries_.find(key_id);
  if (it == entries_.end() || !it->second.current) return;
  entry& e = it->second;
  op& o = *e.current;
  if (o.chunk_failed.load(std::memory_order_acquire) && o.error.is_ok())
    o.error = status{o.chunk_code, o.chunk_error};
  advance(e, o);
}

bool shard_core::advance(entry& e, op& o) {
  if (o.mode == 0) {
    o.mode = 1;
    if (resident(e)) {
      if (needs_host(o)) {
        if (!migrate_to_host(e, o)) return false;
      } else {
        o.mode = 2;
      }
    } else if (o.stage == s_init && !e.stored.defined() && !o.info->home.is_cpu()) {
      o.mode = 2;
    }
  }
  const bool on_device = o.mode == 2;
  if (!on_device && !o.device_io && o.stage != s_finish && o.error.is_ok() && !stage_device_in(o))
    return false;
  for (;;) {
    if (!o.error.is_ok()) o.stage = s_finish;
    const bool needs_value = o.stage != s_init && o.stage != s_finish;
    if (needs_value && !e.stored.defined()) {
      o.error = status{errc::not_initialized, std::string{to_string(o.kind)} + ": key " +
                                                  o.info->name() + " is not initialized"};
      continue;
    }
    switch (o.stage) {
      case s_init:
        o.stage = o.kind == op_kind::broadcast ? s_pull : s_finish;
        if (!(on_device ? dstage_init(e, o) : stage_init(e, o))) return false;
        break;
      case s_reduce:
        o.stage = o.upd ? s_update : (o.kind == op_kind::pushpull ? s_pull : s_finish);
        if (!(on_device ? dstage_reduce(e, o) : stage_reduce(e, o))) return false;
        break;
      case s_update:
        o.stage = o.kind == op_kind::pushpull ? s_pull : s_finish;
        if (!(on_device ? dstage_update(e, o) : stage_update(e, o))) return false;
        break;
      case s_pull:
        o.stage = s_finish;
        if (!(on_device ? dstage_pull(e, o) : stage_pull(e, o))) return false;
        break;
      default:
        if (o.device_pending.valid()) {
          // Device mode: the stages are enqueued; wait once for all of them.
          const device_stream s = o.device_pending;
          o.device_pending = device_stream{};
          when_streams_done(o, {s}, std::move(o.device_keep));
          return false;
        }
        if (o.device_io && !o.device_out_done && o.error.is_ok()) {
          // Once: the host outputs go to the caller's device tensors, then the op finishes.
          if (!stage_device_out(o)) return false;
        }
        finish(e, o);
        return true;
    }
  }
}

void shard_core::finish(entry& e, op& o) {
  op_ptr keep = std::move(e.current);
  o.merged = tensor{};
  o.release_leases();
  auto call = std::move(o.call);
  if (call) call->part_done(o.error);
  refresh_ready(e);
  op_finished();
}

void shard_core::op_finished() {
  --live_ops_;
  if (fence_active_ && --fence_waits_for_ == 0) release_fence();
}

void shard_core::receive_fence(std::function<void(shard_core&)> action) {
  if (fence_active_) {
    held_.push_back(held_item{nullptr, std::move(action)});
    return;
  }
  if (live_ops_ == 0) {
    action(*this);
    return;
  }
  fence_active_ = true;
  fence_waits_for_ = live_ops_;
  fence_action_ = std::move(action);
}

void shard_core::release_fence() {
  auto action = std::move(fence_action_);
  fence_action_ = nullptr;
  fence_active_ = false;
  action(*this);
  // Replay what waited, in arrival order; a held fence may hold the rest again.
  auto held = std::move(held_);
  held_.clear();
  for (auto& h : held) {
    if (h.o)
      receive(std::move(h.o));
    else
      receive_fence(std::move(h.fence));
  }
}

std::vector<shard_core::state_record> shard_core::snapshot_states(
    const std::shared_ptr<const updater>& owner) const {
  std::vector<state_record> out;
  for (const auto& [id, e] : entries_) {
    if (!e.state || e.state_owner != owner) continue;
    const auto* st = dynamic_cast<const optimizer_state*>(e.state.get());
    if (!st) continue;
    state_record r;
    r.info = e.info;
    r.count = st->count;
    // Host copies (blocking for a device-resident key's state: fences are rare).
    for (const auto& t : st->slots)
      r.slots.push_back(t.copy_to(device::cpu()));
    if (st->master.defined()) r.master = st->master.copy_to(device::cpu());
    out.push_back(std::move(r));
  }
  return out;
}

void shard_core::restore_states(const std::vector<state_record>& records,
                                const std::shared_ptr<const updater>& owner) {
  for (const auto& r : records) {
    auto it = entries_.find(r.info->id);
    if (it == entries_.end()) continue;
    auto st = std::make_unique<optimizer_state>();
    st->count = r.count;
    const device home = it->second.stored.defined() ? it->second.stored.device() : device::cpu();
    for (const auto& t : r.slots)
      st->slots.push_back(t.copy_to(home));
    if (r.master.defined()) st->master = r.master.copy_to(home);
    it->second.state = std::move(st);
    it->second.state_owner = owner;
  }
}

bool shard_core::big(std::size_t bytes) const noexcept {
  return bytes >= threshold_;
}

std::size_t shard_core::chunks_for(std::size_t bytes) const noexcept {
  return std::clamp<std::size_t>(bytes / min_chunk_bytes, 1, width_ * 4);
}

void shard_core::record_chunk_error(op& o, const std::string& what) {
  if (!o.chunk_failed.exchange(true, std::memory_order_acq_rel)) o.chunk_error = what;
}

void shard_core::parallel(op& o, std::size_t bytes, std::size_t n,
                          std::function<void(std::size_t)> chunk) {
  op* po = &o;
  // Steps up to this size are mostly done by the shard's own thread before a pool thread has
  // woken up; bigger ones leave the shard free for other keys.
  const bool help = bytes <= help_limit_bytes;
  hooks_.run_parallel(
      n,
      [po, chunk = std::move(chunk)](std::size_t i) {
        try {
          chunk(i);
        } catch (const std::exception& ex) {
          record_chunk_error(*po, ex.what());
        } catch (...) {
          record_chunk_error(*po, "non-standard exception");
        }
      },
      o.priority, o.info->id, help);
}

bool shard_core::stage_init(entry& e, op& o) {
  const auto& info = *o.info;
  if (e.stored.defined()) {
    o.error = status{errc::already_initialized, std::string{to_string(o.kind)} + ": key " +
                                                    info.name() + " is already initialized"};
    return true;
  }
  try {
    e.stored = tensor::empty(info.shape, info.dtype);
  } catch (const std::bad_alloc&) {
    o.error = status{errc::internal, "init: no memory for key " + info.name() + " (" +
                                         std::to_string(info.nbytes()) + " bytes)"};
    return true;
  }
  const std::size_t n = info.numel();
  void* dst = e.stored.data_unchecked();
  const void* src = o.values.front().data_unchecked();
  const dtype t = info.dtype;
  if (!big(2 * info.nbytes())) {
    kernels::copy(t, dst, src, 0, n);
    return true;
  }
  const std::size_t parts = chunks_for(2 * info.nbytes());
  parallel(o, 2 * info.nbytes(), parts, [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, parts, i, b, end);
    kernels::copy(t, dst, src, b, end);
  });
  return false;
}

namespace {

// dst = sum of srcs over [b, end), and with fused outputs, each out = dst block by block
// while the block is still in cache.
void reduce_range(dtype t, void* dst, const void* const* srcs, std::size_t k, void* const* outs,
                  std::size_t num_outs, std::size_t b, std::size_t end) {
  if (num_outs == 0) {
    kernels::sum(t, dst, srcs, k, b, end);
    return;
  }
  const std::size_t block = std::max<std::size_t>(fuse_block_bytes / size_of(t), 1);
  for (std::size_t lo = b; lo < end; lo += block) {
    const std::size_t hi = std::min(end, lo + block);
    kernels::sum(t, dst, srcs, k, lo, hi);
    for (std::size_t j = 0; j < num_outs; ++j)
      kernels::copy(t, outs[j], dst, lo, hi);
  }
}

}  // namespace

// Each device's value is quantized with that device's residual, then decoded into the merge
// in device order: what a device-to-merge link would carry and what the merge would rebuild.
void shard_core::compressed_merge(entry& e, op& o, tensor& target) {
  const std::size_t n = o.info->numel(), k = o.values.size();
  if (e.gc_version != o.gc_version || e.residuals.size() < k) {
    if (e.gc_version != o.gc_version) e.residuals.clear();
    e.gc_version = o.gc_version;
    while (e.residuals.size() < k)
      e.residuals.push_back(tensor::zeros(o.info->shape, dtype::float32));
  }
  const std::size_t w = compression::words(o.gc.type, n);
  auto words = buffer_pool::global().acquire(w * sizeof(std::uint32_t));
  auto* code = static_cast<std::uint32_t*>(words->data());
  auto* acc = static_cast<float*>(target.data_unchecked());
  std::fill(acc, acc + n, 0.0f);
  for (std::size_t i = 0; i < k; ++i) {
    compression::quantize(o.gc, static_cast<const float*>(o.values[i].data_unchecked()),
                          static_cast<float*>(e.residuals[i].data_unchecked()), code, n, 0, w);
    compression::dequantize_add(o.gc, code, acc, n, 0, w);
  }
}

bool shard_core::stage_reduce(entry& e, op& o) {
  const auto& info = *o.info;
  if (!o.sparse.empty()) {
    o.stage = s_finish;
    return stage_sparse(e, o);
  }
  const std::size_t k = o.values.size();
  // pushpull without an updater writes the outputs in the same pass as the stored value.
  const bool fuse = !o.upd && o.kind == op_kind::pushpull;
  tensor target;
  if (o.upd) {
    if (k == 1) {
      // The updater reads the pushed tensor itself: a lease-free view, since this op holds
      // the tensor's lease and the updater's checked accessors must not wait on it.
      o.merged = tensor::view_bytes(o.values.front().data_unchecked(), info.shape, info.dtype);
      return true;
    }
    if (!e.merge.defined()) {
      try {
        e.merge = tensor::empty(info.shape, info.dtype);
      } catch (const std::bad_alloc&) {
        o.error =
            status{errc::internal, "push: no memory for the merge buffer of key " + info.name()};
        return true;
      }
    }
    target = e.merge;
    o.merged = e.merge;
  } else {
    target = e.stored;
  }
  if (hooks_.reduce && k > 1 && o.gc.type == compression::kind::none) {
    // Through the store's reducer graph; a fused pushpull then pulls as its own stage.
    if (fuse) o.stage = s_pull;
    std::vector<tensor> values(o.values.begin(), o.values.end());
    hooks_.reduce(std::move(values), target, info.id, &o);
    return false;
  }
  if (o.gc.type != compression::kind::none && k > 1) {
    compressed_merge(e, o, target);
    if (fuse) {
      for (const auto& out : o.outs)
        kernels::copy(info.dtype, out.data_unchecked(), target.data_unchecked(), 0, info.numel());
      o.stage = s_finish;
    }
    return true;
  }
  if (fuse) o.stage = s_finish;
  void* dst = target.data_unchecked();
  const dtype t = info.dtype;
  const std::size_t n = info.numel();
  const std::size_t num_outs = fuse ? o.outs.size() : 0;
  const std::size_t bytes = (k + 1 + num_outs) * info.nbytes();
  if (!big(bytes)) {
    constexpr std::size_t on_stack = 8;
    const void* ssrcs[on_stack];
    void* souts[on_stack];
    std::vector<const void*> hsrcs;
    std::vector<void*> houts;
    const void** srcs = ssrcs;
    void** outs = souts;
    if (k > on_stack) {
      hsrcs.resize(k);
      srcs = hsrcs.data();
    }
    if (num_outs > on_stack) {
      houts.resize(num_outs);
      outs = houts.data();
    }
    for (std::size_t j = 0; j < k; ++j)
      srcs[j] = o.values[j].data_unchecked();
    for (std::size_t j = 0; j < num_outs; ++j)
      outs[j] = o.outs[j].data_unchecked();
    reduce_range(t, dst, srcs, k, outs, num_outs, 0, n);
    return true;
  }
  auto srcs = std::make_shared<std::vector<const void*>>();
  auto outs = std::make_shared<std::vector<void*>>();
  for (const auto& v : o.values)
    srcs->push_back(v.data_unchecked());
  for (std::size_t j = 0; j < num_outs; ++j)
    outs->push_back(o.outs[j].data_unchecked());
  const std::size_t parts = chunks_for(bytes);
  parallel(o, bytes, parts, [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, parts, i, b, end);
    reduce_range(t, dst, srcs->data(), srcs->size(), outs->data(), outs->size(), b, end);
  });
  return false;
}

bool shard_core::stage_update(entry& e, op& o) {
  const auto& info = *o.info;
  const updater& u = *o.upd;
  auto fail = [&](const char* what) {
    o.error = status{errc::updater_failed, std::string{to_string(o.kind)} +
                                               ": the updater failed on key " + info.name() + ": " +
                                               what};
  };
  try {
    if (e.state_owner != o.upd) {
      e.state = u.make_state(info.user_key, e.stored);
      e.state_owner = o.upd;
    }
    const std::size_t bytes = 3 * info.nbytes();
    if (u.element_wise() && big(bytes)) {
      u.begin_update(info.user_key, e.state.get());
      const std::size_t parts = chunks_for(bytes);
      const std::size_t n = info.numel();
      entry* pe = &e;
      op* po = &o;
      parallel(o, bytes, parts, [pe, po, parts, n](std::size_t i) {
        std::size_t b, end;
        split_range(n, parts, i, b, end);
        po->upd->update_range(pe->info->user_key, po->merged, pe->stored, pe->state.get(), b, end);
      });
      return false;
    }
    u.update(info.user_key, o.merged, e.stored, e.state.get());
  } catch (const std::exception& ex) {
    fail(ex.what());
  } catch (...) {
    fail("non-standard exception");
  }
  return true;
}

bool shard_core::stage_pull(entry& e, op& o) {
  const auto& info = *o.info;
  if (o.kind == op_kind::row_pull) return stage_row_pull(e, o);
  const std::size_t n = info.numel();
  const dtype t = info.dtype;
  const void* src = e.stored.data_unchecked();
  const std::size_t bytes = 2 * info.nbytes() * o.outs.size();
  if (!big(bytes)) {
    for (const auto& out : o.outs)
      kernels::copy(t, out.data_unchecked(), src, 0, n);
    return true;
  }
  auto dsts = std::make_shared<std::vector<void*>>();
  for (const auto& out : o.outs)
    dsts->push_back(out.data_unchecked());
  const std::size_t per = chunks_for(2 * info.nbytes());
  parallel(o, bytes, per * dsts->size(), [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, per, i % per, b, end);
    kernels::copy(t, (*dsts)[i / per], src, b, end);
  });
  return false;
}

namespace {

stream_priority stream_for(const op& o) {
  return o.priority > 0 ? stream_priority::high : stream_priority::normal;
}

bool on_device(const tensor& t) {
  return t.defined() && !t.device().is_cpu();
}

}  // namespace

bool shard_core::stage_device_in(op& o) {
  o.device_io = false;
  bool any = false;
  for (const auto& v : o.values)
    any = any || on_device(v);
  for (const auto& v : o.outs)
    any = any || on_device(v);
  for (const auto& v : o.sparse)
    any = any || on_device(v.data());
  if (!any) return true;
  o.device_io = true;
  o.device_values = o.values;
  o.device_outs = o.outs;
  const auto& info = *o.info;
  // A reducer graph that sums on the devices takes a multi-device push as it is.
  bool graph = hooks_.reduce && hooks_.reduce_on_device && o.values.size() > 1 &&
               o.gc.type == compression::kind::none &&
               (o.kind == op_kind::push || o.kind == op_kind::pushpull);
  for (const auto& v : o.values)
    graph = graph && on_device(v);
  std::vector<device_stream> used;
  std::vector<tensor> keep;
  try {
    for (auto& out : o.outs)
      if (on_device(out)) out = pinned_empty(out.shape(), info.dtype);  // compact rows: not info's
    if (graph) return true;  // the values stay what they are
    for (auto& v : o.values) {
      if (!on_device(v)) continue;
      tensor host = pinned_empty(info.shape, info.dtype);
      const auto s = get_stream(v.device(), stream_for(o), static_cast<std::size_t>(info.id));
      device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), v.data_unchecked(),
                                 v.device(), info.nbytes());
      keep.push_back(v);
      keep.push_back(host);
      v = std::move(host);
      if (std::find(used.begin(), used.end(), s) == used.end()) used.push_back(s);
    }
    o.sparse_host_rows.resize(o.sparse.size());
    for (std::size_t j = 0; j < o.sparse.size(); ++j) {
      const tensor& rows = o.sparse[j].data();
      if (!on_device(rows) || rows.nbytes() == 0) continue;
      tensor host = pinned_empty(rows.shape(), rows.dtype());
      const auto s = get_stream(rows.device(), stream_for(o), static_cast<std::size_t>(info.id));
      device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), rows.data_unchecked(),
                                 rows.device(), rows.nbytes());
      keep.push_back(rows);
      keep.push_back(host);
      o.sparse_host_rows[j] = std::move(host);
      if (std::find(used.begin(), used.end(), s) == used.end()) used.push_back(s);
    }
  } catch (const std::exception& ex) {
    o.error = status{errc::internal, std::string{to_string(o.kind)} + ": key " + info.name() +
                                         ": copying device values: " + ex.what()};
    return true;
  }
  if (used.empty()) return true;
  when_streams_done(o, std::move(used), std::move(keep));
  return false;
}

bool shard_core::stage_device_out(op& o) {
  const auto& info = *o.info;
  std::vector<device_stream> used;
  std::vector<tensor> keep;
  try {
    for (std::size_t j = 0; j < o.device_outs.size(); ++j) {
      const tensor& dst = o.device_outs[j];
      if (!on_device(dst)) continue;
      const auto s = get_stream(dst.device(), stream_for(o), static_cast<std::size_t>(info.id));
      device_kernels::copy_async(s, dst.data_unchecked(), dst.device(), o.outs[j].data_unchecked(),
                                 device::cpu(), dst.nbytes());
      keep.push_back(dst);
      keep.push_back(o.outs[j]);
      if (std::find(used.begin(), used.end(), s) == used.end()) used.push_back(s);
    }
  } catch (const std::exception& ex) {
    o.error = status{errc::internal, std::string{to_string(o.kind)} + ": key " + info.name() +
                                         ": copying to device outputs: " + ex.what()};
    return true;
  }
  o.device_out_done = true;  // the next advance finishes
  if (used.empty()) return true;
  when_streams_done(o, std::move(used), std::move(keep));
  return false;
}

void shard_core::when_streams_done(op& o, std::vector<device_stream> used,
                                   std::vector<tensor> keep) {
  // `keep` holds the tensors the copies read and write until the streams report back,
  // whatever happens to the op meanwhile.
  auto wake = hooks_.step_done_from;
  const std::int64_t key_id = o.info->id;
  op* po = &o;
  when_all_done(used, [keep = std::move(keep), wake, key_id, po](const status& st) mutable {
    keep.clear();
    wake(key_id, po, st);
  });
}

// ---- keys that live on a device ----

device_stream key_stream(device home, const op& o) {
  return get_stream(home, stream_for(o), static_cast<std::size_t>(o.info->id));
}

status device_failure(const op& o, const std::string& what, const std::exception& ex) {
  return status{errc::internal, std::string{to_string(o.kind)} + ": key " + o.info->name() + ": " +
                                    what + ": " + ex.what()};
}

bool shard_core::resident(const entry& e) noexcept {
  return e.stored.defined() && !e.stored.device().is_cpu();
}

bool shard_core::needs_host(const op& o) noexcept {
  // Lazy row updates run on the host (updater::update_rows); a row-sparse push without an
  // updater, or with one that updates the densified gradient, stays on the device.
  if (!o.sparse.empty()) return o.upd && (o.upd->lazy_rows() || !o.upd->device_capable());
  const bool pushes = o.kind == op_kind::push || o.kind == op_kind::pushpull;
  return pushes && o.upd && !o.upd->device_capable();
}

bool shard_core::migrate_to_host(entry& e, op& o) {
  std::vector<tensor> keep;
  device_stream s;
  try {
    s = key_stream(e.stored.device(), o);
    auto move = [&](tensor& t) {
      if (!t.defined() || t.device().is_cpu()) return;
      tensor host = tensor::empty(t.shape(), t.dtype());
      device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), t.data_unchecked(),
                                 t.device(), t.nbytes());
      keep.push_back(t);
      keep.push_back(host);
      t = std::move(host);
    };
    // The key is busy until the copies are done, and fences wait for it: swapping the tensors
    // now is safe.
    move(e.stored);
    e.merge = tensor{};
    if (auto* st = dynamic_cast<optimizer_state*>(e.state.get())) {
      for (auto& slot : st->slots)
        move(slot);
      move(st->master);
    }
    for (auto& r : e.residuals)
      move(r);
  } catch (const std::exception& ex) {
    o.error = device_failure(o, "moving the key to host memory", ex);
    return true;
  }
  when_streams_done(o, {s}, std::move(keep));
  return false;
}

void shard_core::defer(op& o, const device_stream& s, std::vector<tensor> keep) {
  o.device_pending = s;
  for (auto& t : keep)
    o.device_keep.push_back(std::move(t));
}

bool shard_core::dstage_init(entry& e, op& o) {
  const auto& info = *o.info;
  if (e.stored.defined()) {
    o.error = status{errc::already_initialized, std::string{to_string(o.kind)} + ": key " +
                                                    info.name() + " is already initialized"};
    return true;
  }
  const tensor& v = o.values.front();
  device_stream s;
  try {
    e.stored = tensor::empty(info.shape, info.dtype, info.home);
    s = key_stream(info.home, o);
    device_kernels::copy_async(s, e.stored.data_unchecked(), info.home, v.data_unchecked(),
                               v.device(), info.nbytes());
  } catch (const std::exception& ex) {
    e.stored = tensor{};
    o.error = device_failure(o, "placing the value on " + info.home.to_string(), ex);
    return true;
  }
  defer(o, s, {v, e.stored});
  return true;
}

bool shard_core::dstage_reduce(entry& e, op& o) {
  if (!o.sparse.empty()) return dstage_sparse(e, o);
  const auto& info = *o.info;
  const device home = e.stored.device();
  std::vector<tensor> keep(o.values.begin(), o.values.end());
  device_stream s;
  try {
    tensor target = e.stored;
    if (o.upd) {
      if (!e.merge.defined() || e.merge.device() != home)
        e.merge = tensor::empty(info.shape, info.dtype, home);
      target = e.merge;
      o.merged = e.merge;
    }
    const bool compressed = o.gc.type != compression::kind::none && o.values.size() > 1;
    if (!compressed && o.values.size() > 1 && hooks_.reduce && hooks_.reduce_on_device) {
      // The store's reducer graph, its root summing into the key's device.
      hooks_.reduce(std::vector<tensor>(o.values.begin(), o.values.end()), target, info.id, &o);
      return false;
    }
    s = key_stream(home, o);
    keep.push_back(target);
    if (compressed) {
      device_compressed_merge(e, o, target, s, keep);
    } else if (o.values.size() == 1) {
      const tensor& v = o.values.front();
      device_kernels::copy_async(s, target.data_unchecked(), home, v.data_unchecked(), v.device(),
                                 info.nbytes());
    } else {
      // No reducer graph that sums on devices (the ring runs on host memory): one fused sum.
      for (auto& t : sum_on_device_async(s, {o.values.begin(), o.values.end()}, target))
        keep.push_back(std::move(t));
    }
  } catch (const std::exception& ex) {
    o.error = device_failure(o, "summing on the device", ex);
    return true;
  }
  defer(o, s, std::move(keep));
  return true;
}

// compressed_merge on the key's device: each value quantized with its slot's residual (kept
// on the device), decoded into the target in slot order, as the CPU path does.
void shard_core::device_compressed_merge(entry& e, op& o, tensor& target, const device_stream& s,
                                         std::vector<tensor>& keep) {
  const auto& info = *o.info;
  const device home = target.device();
  const std::size_t n = info.numel(), k = o.values.size();
  if (e.gc_version != o.gc_version || e.residuals.size() < k) {
    if (e.gc_version != o.gc_version) e.residuals.clear();
    e.gc_version = o.gc_version;
    while (e.residuals.size() < k) {
      tensor r = tensor::empty(info.shape, dtype::float32, home);
      device_kernels::fill_async(s, dtype::float32, r.data_unchecked(), 0.0, n);
      e.residuals.push_back(std::move(r));
    }
  }
  const auto w = static_cast<std::int64_t>(compression::words(o.gc.type, n));
  tensor words = tensor::empty({w}, dtype::int32, home);  // 32-bit code words
  auto* code = static_cast<std::uint32_t*>(words.data_unchecked());
  auto* acc = static_cast<float*>(target.data_unchecked());
  device_kernels::fill_async(s, dtype::float32, acc, 0.0, n);
  for (std::size_t i = 0; i < k; ++i) {
    tensor v = o.values[i];
    if (v.device() != home) {
      tensor local = tensor::empty(info.shape, info.dtype, home);
      device_kernels::copy_async(s, local.data_unchecked(), home, v.data_unchecked(), v.device(),
                                 info.nbytes());
      v = std::move(local);
      keep.push_back(v);
    }
    device_kernels::quantize_async(s, o.gc, static_cast<const float*>(v.data_unchecked()),
                                   static_cast<float*>(e.residuals[i].data_unchecked()), code, n);
    device_kernels::dequantize_add_async(s, o.gc, code, acc, n);
  }
  keep.push_back(std::move(words));
}

bool shard_core::dstage_update(entry& e, op& o) {
  const auto& info = *o.info;
  const updater& u = *o.upd;
  const device home = e.stored.device();
  device_stream s;
  try {
    s = key_stream(home, o);
    if (e.state_owner != o.upd) {
      e.state = u.make_state(info.user_key, e.stored);
      e.state_owner = o.upd;
      // The optimizer made its (zero) slots in host memory: they live on the device instead.
      if (auto* st = dynamic_cast<optimizer_state*>(e.state.get()))
        for (auto& slot : st->slots) {
          tensor d = tensor::empty(slot.shape(), slot.dtype(), home);
          device_kernels::fill_async(s, d.dtype(), d.data_unchecked(), 0.0, d.size());
          slot = std::move(d);
        }
    }
    u.update_async(info.user_key, o.merged, e.stored, e.state.get(), s);
  } catch (const std::exception& ex) {
    o.error = status{errc::updater_failed, std::string{to_string(o.kind)} +
                                               ": the updater failed on key " + info.name() + ": " +
                                               ex.what()};
    return true;
  }
  defer(o, s, {o.merged, e.stored});
  return true;
}

bool shard_core::dstage_pull(entry& e, op& o) {
  if (o.kind == op_kind::row_pull) return dstage_row_pull(e, o);
  const auto& info = *o.info;
  const device home = e.stored.device();
  std::vector<tensor> keep{e.stored};
  device_stream s;
  try {
    s = key_stream(home, o);
    // Peer-to-peer (or staged) to other devices, device-to-host to host outputs.
    for (const auto& out : o.outs) {
      device_kernels::copy_async(s, out.data_unchecked(), out.device(), e.stored.data_unchecked(),
                                 home, info.nbytes());
      keep.push_back(out);
    }
  } catch (const std::exception& ex) {
    o.error = device_failure(o, "copying to the outputs", ex);
    return true;
  }
  defer(o, s, std::move(keep));
  return true;
}

}  // namespace kvactor::detail
