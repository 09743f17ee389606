// A shard's row-sparse work: pushes of row-sparse values (rows merged, then a lazy update of
// those rows, the densified gradient through the updater, or the merged rows as the new
// value) and row_sparse_pull (the chosen rows, zero elsewhere), on host memory and, for keys
// that live on a device, as device work on the key's stream. Rows given on devices reach the
// host executor as host copies (shard_staging.cpp); the device path merges them where they are
// sent, without the host touching them.
// Thread-safety: as shard_core (one actor's).
#include <algorithm>
#include <cstring>

#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/kernels.hpp"
#include "shard_executors.hpp"

namespace kvactor::detail {

namespace {

std::size_t row_bytes_of(const key_info& info) {
  return info.shape.ndim() ? info.nbytes() / static_cast<std::size_t>(info.shape[0])
                           : info.nbytes();
}

// Calls fn(first, count) for each run of consecutive ids (ids sorted, unique): one copy or
// one kernel per run rather than per row.
template <class Fn>
void for_each_run(const std::int64_t* ids, std::size_t n, Fn fn) {
  for (std::size_t a = 0; a < n;) {
    std::size_t b = a + 1;
    while (b < n && ids[b] == ids[b - 1] + 1)
      ++b;
    fn(a, b - a);
    a = b;
  }
}

}  // namespace

// A row-sparse push: the values' rows merged (rows present in several summed), then a lazy
// update of just those rows, or the densified gradient through the updater, or — without an
// updater — the merged gradient (zero elsewhere) as the new value. Runs inline.
bool host_executor::sparse(shard_entry& e, op& o) {
  const auto& info = *o.info;
  const dtype t = info.dtype;
  const std::size_t row =
      info.shape.ndim() ? info.numel() / static_cast<std::size_t>(info.shape[0]) : 1;
  const std::size_t row_bytes = row * size_of(t);
  std::vector<std::int64_t> ids;
  for (const auto& v : o.sparse) {
    const auto* p = static_cast<const std::int64_t*>(v.host_indices().data_unchecked());
    ids.insert(ids.end(), p, p + v.num_rows());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<std::int64_t> dims = info.shape.dims();
  dims[0] = static_cast<std::int64_t>(ids.size());
  tensor merged = tensor::zeros(shape{dims}, t);
  for (std::size_t j = 0; j < o.sparse.size(); ++j) {
    const auto& v = o.sparse[j];
    const auto* p = static_cast<const std::int64_t*>(v.host_indices().data_unchecked());
    // Rows on a device were copied to the host first (host_executor::stage_in).
    const bool copied = j < o.dev.sparse_rows.size() && o.dev.sparse_rows[j].defined();
    const auto* src =
        static_cast<const char*>((copied ? o.dev.sparse_rows[j] : v.data()).data_unchecked());
    for (std::size_t i = 0; i < v.num_rows(); ++i) {
      const auto at =
          static_cast<std::size_t>(std::lower_bound(ids.begin(), ids.end(), p[i]) - ids.begin());
      kernels::accumulate(t, static_cast<char*>(merged.data_unchecked()) + at * row_bytes,
                          src + i * row_bytes, 0, row);
    }
  }
  auto scatter = [&](tensor& dst) {
    for (std::size_t i = 0; i < ids.size(); ++i)
      std::memcpy(
          static_cast<char*>(dst.data_unchecked()) + static_cast<std::size_t>(ids[i]) * row_bytes,
          static_cast<const char*>(merged.data_unchecked()) + i * row_bytes, row_bytes);
  };
  if (!o.upd) {
    std::memset(e.stored.data_unchecked(), 0, e.stored.nbytes());
    scatter(e.stored);
    return true;
  }
  const updater& u = *o.upd;
  try {
    if (e.state_owner != o.upd) {
      e.state = u.make_state(info.user_key, e.stored);
      e.state_owner = o.upd;
    }
    if (u.lazy_rows()) {
      u.update_rows(info.user_key, ids.data(), ids.size(), merged, e.stored, e.state.get());
    } else {
      tensor dense = tensor::zeros(info.shape, t);
      scatter(dense);
      u.update(info.user_key, dense, e.stored, e.state.get());
    }
  } catch (const std::exception& ex) {
    o.error = status{errc::updater_failed,
                     "push: the updater failed on key " + info.name() + ": " + ex.what()};
  }
  return true;
}

bool host_executor::row_pull(shard_entry& e, op& o) {
  // Exactly the requested rows; every other row of the output is zero.
  const auto& info = *o.info;
  const std::size_t row_bytes = row_bytes_of(info);
  for (std::size_t j = 0; j < o.outs.size(); ++j) {
    const auto& ids = o.rows.size() == 1 ? o.rows[0] : o.rows[j];
    char* dst = static_cast<char*>(o.outs[j].data_unchecked());
    if (o.compact_rows) {
      for (std::size_t i = 0; i < ids.size(); ++i)
        std::memcpy(dst + i * row_bytes,
                    static_cast<const char*>(e.stored.data_unchecked()) +
                        static_cast<std::size_t>(ids[i]) * row_bytes,
                    row_bytes);
      continue;
    }
    std::memset(dst, 0, info.nbytes());
    for (auto id : ids)
      std::memcpy(dst + static_cast<std::size_t>(id) * row_bytes,
                  static_cast<const char*>(e.stored.data_unchecked()) +
                      static_cast<std::size_t>(id) * row_bytes,
                  row_bytes);
  }
  return true;
}

// The rows merged on the key's device into a zeroed tensor there (the stored value without
// an updater; the merge buffer, the densified gradient, with one that updates on the device,
// as device_executor::update then does), value by value as the host sums them. Rows elsewhere are
// copied to the key's device first. Lazy row updates need the host (needs_host).
bool device_executor::sparse(shard_entry& e, op& o) {
  const auto& info = *o.info;
  const device home = e.stored.device();
  const dtype t = info.dtype;
  const std::size_t row_bytes = row_bytes_of(info);
  const std::size_t row = row_bytes / size_of(t);
  std::vector<tensor> keep;
  device_stream s;
  try {
    s = key_stream(home, o);
    tensor target = e.stored;
    if (o.upd) {
      if (!e.merge.defined() || e.merge.device() != home)
        e.merge = tensor::empty(info.shape, t, home);
      target = e.merge;
      o.merged = e.merge;
    }
    keep.push_back(target);
    char* dst = static_cast<char*>(target.data_unchecked());
    device_kernels::fill_async(s, dtype::uint8, dst, 0.0, info.nbytes());
    for (const auto& v : o.sparse) {
      if (v.num_rows() == 0) continue;
      tensor rows = v.data();
      keep.push_back(rows);
      if (rows.device() != home) {
        tensor local = tensor::empty(rows.shape(), t, home);
        device_kernels::copy_async(s, local.data_unchecked(), home, rows.data_unchecked(),
                                   rows.device(), rows.nbytes());
        rows = std::move(local);
        keep.push_back(rows);
      }
      const auto* ids = static_cast<const std::int64_t*>(v.host_indices().data_unchecked());
      const char* src = static_cast<const char*>(rows.data_unchecked());
      for_each_run(ids, v.num_rows(), [&](std::size_t first, std::size_t count) {
        device_kernels::accumulate_async(s, t,
                                         dst + static_cast<std::size_t>(ids[first]) * row_bytes,
                                         src + first * row_bytes, count * row);
      });
    }
  } catch (const std::exception& ex) {
    o.error = device_failure(o, "merging rows on the device", ex);
    return true;
  }
  defer(o, s, std::move(keep));
  return true;
}

// Each output zeroed, then each run of consecutive requested rows copied in one piece from
// the key's device: straight into host outputs and outputs on the key's device; through a
// zeroed tensor on the key's device for outputs on other devices (one peer copy of the whole).
bool device_executor::row_pull(shard_entry& e, op& o) {
  const auto& info = *o.info;
  const device home = e.stored.device();
  const std::size_t row_bytes = row_bytes_of(info);
  std::vector<tensor> keep{e.stored};
  device_stream s;
  try {
    s = key_stream(home, o);
    const char* src = static_cast<const char*>(e.stored.data_unchecked());
    for (std::size_t j = 0; j < o.outs.size(); ++j) {
      const auto& ids = o.rows.size() == 1 ? o.rows[0] : o.rows[j];
      const tensor& out = o.outs[j];
      keep.push_back(out);
      const bool direct = out.device().is_cpu() || out.device() == home;
      tensor dst_t = direct ? out : tensor::empty(out.shape(), info.dtype, home);
      const device dst_dev = dst_t.device();
      char* dst = static_cast<char*>(dst_t.data_unchecked());
      // Compact outputs hold only the requested rows, in id order: nothing to zero.
      if (!o.compact_rows) {
        if (dst_dev.is_cpu())
          std::memset(dst, 0, info.nbytes());
        else
          device_kernels::fill_async(s, dtype::uint8, dst, 0.0, info.nbytes());
      }
      for_each_run(ids.data(), ids.size(), [&](std::size_t first, std::size_t count) {
        const auto off = static_cast<std::size_t>(ids[first]) * row_bytes;
        const auto at = o.compact_rows ? first * row_bytes : off;
        device_kernels::copy_async(s, dst + at, dst_dev, src + off, home, count * row_bytes);
      });
      if (!direct) {
        device_kernels::copy_async(s, out.data_unchecked(), out.device(), dst, home, out.nbytes());
        keep.push_back(std::move(dst_t));
      }
    }
  } catch (const std::exception& ex) {
    o.error = device_failure(o, "copying rows to the outputs", ex);
    return true;
  }
  defer(o, s, std::move(keep));
  return true;
}

}  // namespace kvactor::detail
