// The host executor: a key's ops on host memory. Steps that move many bytes (reduce, copy,
// element-wise update) are chunked over the reducer threads, or go through the store's
// reducer graph; small ones run inline on the shard's thread.
// Thread-safety: as shard_core (one actor's); chunks touch only their op's and key's memory.
#include <algorithm>
#include <new>

#include "kvactor/detail/kernels.hpp"
#include "kvactor/detail/thread_pool.hpp"
#include "shard_executors.hpp"

namespace kvactor::detail {

namespace {

// Fused reduce-and-copy works in blocks that stay in the L1/L2 cache between the two.
constexpr std::size_t fuse_block_bytes = 32 * 1024;

// dst = sum of srcs over [b, end), and with fused outputs, each out = dst block by block
// while the block is still in cache.
// One value is copied (memmove, the fastest copy the C library has) rather than summed.
void reduce_range(dtype t, void* dst, const void* const* srcs, std::size_t k, void* const* outs,
                  std::size_t num_outs, std::size_t b, std::size_t end) {
  auto sum = [&](std::size_t lo, std::size_t hi) {
    if (k == 1)
      kernels::copy(t, dst, srcs[0], lo, hi);
    else
      kernels::sum(t, dst, srcs, k, lo, hi);
  };
  if (num_outs == 0) {
    sum(b, end);
    return;
  }
  const std::size_t block = std::max<std::size_t>(fuse_block_bytes / size_of(t), 1);
  for (std::size_t lo = b; lo < end; lo += block) {
    const std::size_t hi = std::min(end, lo + block);
    sum(lo, hi);
    for (std::size_t j = 0; j < num_outs; ++j)
      kernels::copy(t, outs[j], dst, lo, hi);
  }
}

}  // namespace

bool host_executor::init(shard_entry& e, op& o) {
  const auto& info = *o.info;
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
  if (!cx_.big(2 * info.nbytes())) {
    kernels::copy(t, dst, src, 0, n);
    return true;
  }
  const std::size_t parts = cx_.chunks_for(2 * info.nbytes());
  return cx_.parallel(o, 2 * info.nbytes(), parts, [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, parts, i, b, end);
    kernels::copy(t, dst, src, b, end);
  });
}

// Each device's value is quantized with that device's residual, then decoded into the merge
// in device order: what a device-to-merge link would carry and what the merge would rebuild.
void host_executor::compressed_merge(shard_entry& e, op& o, tensor& target) {
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

bool host_executor::reduce(shard_entry& e, op& o) {
  const auto& info = *o.info;
  if (!o.sparse.empty()) {
    o.stage = op_stage::finish;
    return sparse(e, o);
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
  if (cx_.hooks().reduce && k > 1 && o.gc.type == compression::kind::none) {
    // Through the store's reducer graph; a fused pushpull then pulls as its own stage.
    if (fuse) o.stage = op_stage::pull;
    std::vector<tensor> values(o.values.begin(), o.values.end());
    cx_.hooks().reduce(std::move(values), target, info.id, &o);
    return false;
  }
  if (o.gc.type != compression::kind::none && k > 1) {
    compressed_merge(e, o, target);
    if (fuse) {
      for (const auto& out : o.outs)
        kernels::copy(info.dtype, out.data_unchecked(), target.data_unchecked(), 0, info.numel());
      o.stage = op_stage::finish;
    }
    return true;
  }
  if (fuse) o.stage = op_stage::finish;
  void* dst = target.data_unchecked();
  const dtype t = info.dtype;
  const std::size_t n = info.numel();
  const std::size_t num_outs = fuse ? o.outs.size() : 0;
  const std::size_t bytes = (k + 1 + num_outs) * info.nbytes();
  if (!cx_.big(bytes)) {
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
  const std::size_t parts = cx_.chunks_for(bytes);
  return cx_.parallel(o, bytes, parts, [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, parts, i, b, end);
    reduce_range(t, dst, srcs->data(), srcs->size(), outs->data(), outs->size(), b, end);
  });
}

bool host_executor::update(shard_entry& e, op& o) {
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
    if (u.element_wise() && cx_.big(bytes)) {
      u.begin_update(info.user_key, e.state.get());
      const std::size_t parts = cx_.chunks_for(bytes);
      const std::size_t n = info.numel();
      shard_entry* pe = &e;
      op* po = &o;
      return cx_.parallel(o, bytes, parts, [pe, po, parts, n](std::size_t i) {
        std::size_t b, end;
        split_range(n, parts, i, b, end);
        po->upd->update_range(pe->info->user_key, po->merged, pe->stored, pe->state.get(), b, end);
      });
    }
    u.update(info.user_key, o.merged, e.stored, e.state.get());
  } catch (const std::exception& ex) {
    fail(ex.what());
  } catch (...) {
    fail("non-standard exception");
  }
  return true;
}

bool host_executor::pull(shard_entry& e, op& o) {
  const auto& info = *o.info;
  if (o.kind == op_kind::row_pull) return row_pull(e, o);
  const std::size_t n = info.numel();
  const dtype t = info.dtype;
  const void* src = e.stored.data_unchecked();
  const std::size_t bytes = 2 * info.nbytes() * o.outs.size();
  if (!cx_.big(bytes)) {
    for (const auto& out : o.outs)
      kernels::copy(t, out.data_unchecked(), src, 0, n);
    return true;
  }
  auto dsts = std::make_shared<std::vector<void*>>();
  for (const auto& out : o.outs)
    dsts->push_back(out.data_unchecked());
  const std::size_t per = cx_.chunks_for(2 * info.nbytes());
  return cx_.parallel(o, bytes, per * dsts->size(), [=](std::size_t i) {
    std::size_t b, end;
    split_range(n, per, i % per, b, end);
    kernels::copy(t, (*dsts)[i / per], src, b, end);
  });
}

}  // namespace kvactor::detail
