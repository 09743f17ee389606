// The host executor's staging of tensors on CUDA devices: the host kernels work on host
// memory, so before the stages a host op's device values (and device rows of row-sparse
// values) are copied to pinned host memory and its device outputs swapped for pinned host
// tensors; after them, the host results are copied to the caller's device outputs. A reducer
// graph that sums on the devices takes a multi-device push's values as they are.
// Thread-safety: as shard_core (one actor's).
#include <algorithm>

#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_ops.hpp"
#include "shard_executors.hpp"

namespace kvactor::detail {

namespace {

bool on_device(const tensor& t) {
  return t.defined() && !t.device().is_cpu();
}

}  // namespace

bool host_executor::begin(shard_entry&, op& o) {
  if (o.dev.io || o.stage == op_stage::finish || !o.error.is_ok()) return true;
  return stage_in(o);
}

bool host_executor::end(shard_entry&, op& o) {
  // Once: the host outputs go to the caller's device tensors, then the op finishes.
  if (!o.dev.io || o.dev.out_done || !o.error.is_ok()) return true;
  return stage_out(o);
}

bool host_executor::stage_in(op& o) {
  o.dev.io = false;
  bool any = false;
  for (const auto& v : o.values)
    any = any || on_device(v);
  for (const auto& v : o.outs)
    any = any || on_device(v);
  for (const auto& v : o.sparse)
    any = any || on_device(v.data());
  if (!any) return true;
  o.dev.io = true;
  o.dev.values = o.values;
  o.dev.outs = o.outs;
  const auto& info = *o.info;
  // A reducer graph that sums on the devices takes a multi-device push as it is.
  bool graph = cx_.hooks().reduce && cx_.hooks().reduce_on_device && o.values.size() > 1 &&
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
      const auto s = key_stream(v.device(), o);
      device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), v.data_unchecked(),
                                 v.device(), info.nbytes());
      keep.push_back(v);
      keep.push_back(host);
      v = std::move(host);
      if (std::find(used.begin(), used.end(), s) == used.end()) used.push_back(s);
    }
    o.dev.sparse_rows.resize(o.sparse.size());
    for (std::size_t j = 0; j < o.sparse.size(); ++j) {
      const tensor& rows = o.sparse[j].data();
      if (!on_device(rows) || rows.nbytes() == 0) continue;
      tensor host = pinned_empty(rows.shape(), rows.dtype());
      const auto s = key_stream(rows.device(), o);
      device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), rows.data_unchecked(),
                                 rows.device(), rows.nbytes());
      keep.push_back(rows);
      keep.push_back(host);
      o.dev.sparse_rows[j] = std::move(host);
      if (std::find(used.begin(), used.end(), s) == used.end()) used.push_back(s);
    }
  } catch (const std::exception& ex) {
    o.error = status{errc::internal, std::string{to_string(o.kind)} + ": key " + info.name() +
                                         ": copying device values: " + ex.what()};
    return true;
  }
  if (used.empty()) return true;
  cx_.when_streams_done(o, used, std::move(keep));
  return false;
}

bool host_executor::stage_out(op& o) {
  const auto& info = *o.info;
  std::vector<device_stream> used;
  std::vector<tensor> keep;
  try {
    for (std::size_t j = 0; j < o.dev.outs.size(); ++j) {
      const tensor& dst = o.dev.outs[j];
      if (!on_device(dst)) continue;
      const auto s = key_stream(dst.device(), o);
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
  o.dev.out_done = true;  // the next advance finishes
  if (used.empty()) return true;
  cx_.when_streams_done(o, used, std::move(keep));
  return false;
}

}  // namespace kvactor::detail
