// The device executor: the ops of a key that lives on a device (the device store's keys),
// every stage enqueued on the key's stream one after another without waiting, and one wait,
// before the op finishes, for all of them. An op it cannot run (an updater that works only on
// host memory) first moves the key to host memory, for good.
// Thread-safety: as shard_core (one actor's).
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_ops.hpp"
#include "kvactor/optimizer_state.hpp"
#include "shard_executors.hpp"

namespace kvactor::detail {

namespace {

stream_priority stream_for(const op& o) {
  return o.priority > 0 ? stream_priority::high : stream_priority::normal;
}

bool resident(const shard_entry& e) noexcept {
  return e.stored.defined() && !e.stored.device().is_cpu();
}

}  // namespace

device_stream key_stream(device home, const op& o) {
  return get_stream(home, stream_for(o), static_cast<std::size_t>(o.info->id));
}

status device_failure(const op& o, const std::string& what, const std::exception& ex) {
  return status{errc::internal, std::string{to_string(o.kind)} + ": key " + o.info->name() + ": " +
                                    what + ": " + ex.what()};
}

bool device_executor::begin(shard_entry& e, op& o) {
  if (!resident(e) || !o.error.is_ok() || o.stage == op_stage::finish || !needs_host(o))
    return true;
  return migrate_to_host(e, o);
}

bool device_executor::end(shard_entry&, op& o) {
  if (!o.dev.pending.valid()) return true;
  // The stages are enqueued; wait once for all of them.
  const device_stream s = o.dev.pending;
  o.dev.pending = device_stream{};
  cx_.when_streams_done(o, {s}, std::move(o.dev.keep));
  return false;
}

bool device_executor::needs_host(const op& o) noexcept {
  // Lazy row updates run on the host (updater::update_rows); a row-sparse push without an
  // updater, or with one that updates the densified gradient, stays on the device.
  if (!o.sparse.empty()) return o.upd && (o.upd->lazy_rows() || !o.upd->device_capable());
  const bool pushes = o.kind == op_kind::push || o.kind == op_kind::pushpull;
  return pushes && o.upd && !o.upd->device_capable();
}

bool device_executor::migrate_to_host(shard_entry& e, op& o) {
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
    // Whatever moved stays moved; the key stays a device key only while its value does.
    if (!resident(e)) e.exec = executor_kind::host;
    o.error = device_failure(o, "moving the key to host memory", ex);
    return true;
  }
  e.exec = executor_kind::host;  // for good: the op continues on the host once copied
  cx_.when_streams_done(o, {s}, std::move(keep));
  return false;
}

void device_executor::defer(op& o, const device_stream& s, std::vector<tensor> keep) {
  o.dev.pending = s;
  for (auto& t : keep)
    o.dev.keep.push_back(std::move(t));
}

bool device_executor::init(shard_entry& e, op& o) {
  const auto& info = *o.info;
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

bool device_executor::reduce(shard_entry& e, op& o) {
  if (!o.sparse.empty()) return sparse(e, o);
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
    const auto& h = cx_.hooks();
    if (!compressed && o.values.size() > 1 && h.reduce && h.reduce_on_device && !h.reduce_is_flat) {
      // The store's reducer graph (tree, custom), its root summing into the key's device.
      h.reduce(std::vector<tensor>(o.values.begin(), o.values.end()), target, info.id, &o);
      return false;
    }
    s = key_stream(home, o);
    keep.push_back(target);
    if (compressed) {
      compressed_merge(e, o, target, s, keep);
    } else if (o.values.size() == 1) {
      const tensor& v = o.values.front();
      device_kernels::copy_async(s, target.data_unchecked(), home, v.data_unchecked(), v.device(),
                                 info.nbytes());
    } else {
      // The flat graph's sum, or no graph that sums on devices (the ring runs on host
      // memory): one fused sum, here on the key's stream (the flat root's stream too).
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
void device_executor::compressed_merge(shard_entry& e, op& o, tensor& target,
                                       const device_stream& s, std::vector<tensor>& keep) {
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

bool device_executor::update(shard_entry& e, op& o) {
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

bool device_executor::pull(shard_entry& e, op& o) {
  if (o.kind == op_kind::row_pull) return row_pull(e, o);
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
