#include "request.hpp"

#include <mutex>
#include <shared_mutex>

#include "key_registry.hpp"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <cmath>
#include <cstdio>

#include <unordered_map>
#include "kvactor/detail/kernels.hpp"

namespace kvactor::detail {

namespace {

std::string op_name(op_kind kind) {
  return to_string(kind);
}

status bad(op_kind kind, const std::string& what) {
  return status{errc::invalid_argument, op_name(kind) + ": " + what};
}

// The counts of `v` must fit the keys, following MXNet's _ctype_key_value rules.
status check_form(op_kind kind, const key_list& keys, const value_list& v, const char* role) {
  const std::size_t n = keys.size();
  switch (v.shape()) {
    case value_list::form::none:
      return bad(kind, std::string{"no "} + role + " given");
    case value_list::form::single:
      if (n != 1) return bad(kind, std::to_string(n) + " keys but one " + role + " tensor");
      return {};
    case value_list::form::list:
      if (keys.is_list() && v.flat().size() != n)
        return bad(kind, std::to_string(n) + " keys but " + std::to_string(v.flat().size()) + " " +
                             role + " tensors");
      return {};
    case value_list::form::nested:
      if (!keys.is_list())
        return bad(kind, std::string{"a list of lists of "} + role +
                             " tensors needs a list of keys; key " + keys[0].to_string() +
                             " is a single key");
      if (v.nested().size() != n)
        return bad(kind, std::to_string(n) + " keys but " + std::to_string(v.nested().size()) +
                             " lists of " + role + " tensors");
      return {};
  }
  return {};
}

// A tensor on a CUDA device given to a store that takes host tensors only.
status device_refused(op_kind kind, const key& k, const char* role, device d) {
  return status{errc::unsupported, op_name(kind) + ": " + role + " for key " + k.to_string() +
                                       " is on " + d.to_string() +
                                       "; this store takes cpu tensors (the local, device "
                                       "and dist_*_device stores take device tensors)"};
}

status check_one(op_kind kind, const key& k, const tensor& t, std::size_t j, const char* role,
                 bool device_tensors) {
  if (!t.defined())
    return bad(kind, std::string{"null "} + role + " tensor #" + std::to_string(j) + " for key " +
                         k.to_string());
  if (!t.device().is_cpu() && !device_tensors) return device_refused(kind, k, role, t.device());
  return {};
}

// Appends the tensors the call gives for its i-th key to dst.
status collect(op_kind kind, const key_list& keys, const value_list& v, std::size_t i,
               const char* role, tensor_list& dst, bool device_tensors) {
  const key& k = keys[i];
  const std::size_t first = dst.size();
  switch (v.shape()) {
    case value_list::form::single:
      dst.push_back(v.single());
      break;
    case value_list::form::list:
      if (keys.is_list())
        dst.push_back(v.flat()[i]);
      else
        dst.insert(dst.end(), v.flat().begin(), v.flat().end());  // one per device
      break;
    case value_list::form::nested:
      dst.insert(dst.end(), v.nested()[i].begin(), v.nested()[i].end());
      break;
    case value_list::form::none:
      break;
  }
  if (dst.size() == first)
    return bad(kind, std::string{"empty list of "} + role + " tensors for key " + k.to_string());
  for (std::size_t j = first; j < dst.size(); ++j)
    if (auto s = check_one(kind, k, dst[j], j - first, role, device_tensors); !s) return s;
  return {};
}

}  // namespace

result<group_list> group_arguments(op_kind kind, const key_list& keys, const value_list& values,
                                   const value_list& outs, bool device_tensors) {
  const std::size_t n = keys.size();
  if (n == 0) return bad(kind, "no keys given");
  const bool has_values = kind != op_kind::pull;
  const bool has_outs = kind != op_kind::push && kind != op_kind::init;
  if (has_values)
    if (auto s = check_form(kind, keys, values, "value"); !s) return s;
  if (has_outs)
    if (auto s = check_form(kind, keys, outs, "output"); !s) return s;

  group_list groups;
  groups.reserve(n);
  // A repeated key joins its first group; small calls search linearly, large ones hash.
  std::unordered_map<key, std::size_t> index;
  if (n > 16) index.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const key& k = keys[i];
    std::size_t g = groups.size();
    if (n <= 16) {
      for (std::size_t j = 0; j < groups.size(); ++j)
        if (groups[j].k == k) g = j;
    } else {
      auto [it, fresh] = index.emplace(k, groups.size());
      g = it->second;
    }
    if (g == groups.size()) groups.push_back(key_group{k, {}, {}, nullptr});
    if (has_values)
      if (auto s = collect(kind, keys, values, i, "value", groups[g].values, device_tensors); !s)
        return s;
    if (has_outs)
      if (auto s = collect(kind, keys, outs, i, "output", groups[g].outs, device_tensors); !s)
        return s;
  }
  if (kind == op_kind::init || kind == op_kind::broadcast) {
    for (const auto& g : groups)
      if (g.values.size() != 1)
        return status{errc::already_initialized,
                      op_name(kind) + ": key " + g.k.to_string() + " is given " +
                          std::to_string(g.values.size()) +
                          " values; a key is initialised once, from one value"};
  }
  return groups;
}

result<std::vector<sparse_group>> group_sparse(op_kind kind, const key_list& keys,
                                               const sparse_list& values, bool device_tensors) {
  const std::size_t n = keys.size();
  if (n == 0) return bad(kind, "no keys given");
  std::vector<std::vector<row_sparse_tensor>> per_key(n);
  switch (values.shape()) {
    case sparse_list::form::none:
      return bad(kind, "no value given");
    case sparse_list::form::single:
      if (n != 1) return bad(kind, std::to_string(n) + " keys but one row-sparse value");
      per_key[0] = values.flat();
      break;
    case sparse_list::form::list:
      if (!keys.is_list()) {
        per_key[0] = values.flat();
      } else {
        if (values.flat().size() != n)
          return bad(kind, std::to_string(n) + " keys but " + std::to_string(values.flat().size()) +
                               " row-sparse values");
        for (std::size_t i = 0; i < n; ++i)
          per_key[i] = {values.flat()[i]};
      }
      break;
    case sparse_list::form::nested:
      if (!keys.is_list() || values.nested().size() != n)
        return bad(kind, "a list of lists of row-sparse values needs one list per key");
      for (std::size_t i = 0; i < n; ++i)
        per_key[i] = values.nested()[i];
      break;
  }
  std::vector<sparse_group> groups;
  for (std::size_t i = 0; i < n; ++i) {
    if (per_key[i].empty())
      return bad(kind, "empty list of row-sparse values for key " + keys[i].to_string());
    for (const auto& v : per_key[i]) {
      if (!v.defined()) return bad(kind, "null row-sparse value for key " + keys[i].to_string());
      if (!v.device().is_cpu() && !device_tensors)
        return device_refused(kind, keys[i], "the rows of a row-sparse value", v.device());
    }
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.k == keys[i]; });
    if (it == groups.end()) {
      groups.push_back(sparse_group{keys[i], per_key[i], nullptr});
    } else {
      it->values.insert(it->values.end(), per_key[i].begin(), per_key[i].end());
    }
  }
  return groups;
}

result<std::vector<std::int64_t>> parse_row_ids(const key& k, const tensor& ids,
                                                std::int64_t rows) {
  // Ids of any shape are read flat, as MXNet reads them.
  const dtype t = ids.dtype();
  if (t == dtype::uint8)
    return status{errc::invalid_argument, "row_sparse_pull: row ids for key " + k.to_string() +
                                              " are uint8; use int32, int64 or float"};
  std::vector<std::int64_t> out;
  out.reserve(ids.size());
  ids.wait_to_read();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const double v = kernels::load(t, ids.data_unchecked(), i);
    if (!std::isfinite(v) || v != std::trunc(v))
      return status{errc::invalid_argument, "row_sparse_pull: row id " + std::to_string(v) +
                                                " for key " + k.to_string() +
                                                " is not a whole number"};
    // Compared as doubles: a float id beyond int64 would not convert.
    if (v < 0 || v >= static_cast<double>(rows)) {
      char id[32];
      std::snprintf(id, sizeof id, "%.0f", v);
      return status{errc::out_of_range, "row_sparse_pull: row id " + std::string{id} +
                                            " is out of range for key " + k.to_string() +
                                            ", which has " + std::to_string(rows) + " rows"};
    }
    out.push_back(static_cast<std::int64_t>(v));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

value_list spread_row_ids(const key_list& keys, const value_list& row_ids) {
  if (row_ids.shape() != value_list::form::single || !keys.is_list()) return row_ids;
  return value_list(std::vector<tensor>(keys.size(), row_ids.single()));
}

namespace {
// A compact output holds n rows of the key's row shape, of the key's type.
status check_rows_output(const key_info& info, const tensor& t, std::size_t n) {
  std::vector<std::int64_t> dims = info.shape.dims();
  dims[0] = static_cast<std::int64_t>(n);
  if (t.shape() != shape{dims} || t.dtype() != info.dtype)
    return status{errc::shape_mismatch, "row_sparse_pull: rows output for key " + info.name() +
                                            " is " + t.describe() + ", the " + std::to_string(n) +
                                            " requested rows are " + to_string(info.dtype) +
                                            shape{dims}.to_string()};
  return {};
}
}  // namespace

result<row_pull_request> prepare_row_pull(const key_list& keys, const value_list& outs,
                                          const value_list& row_ids, const key_registry& reg,
                                          bool device_tensors, bool compact) {
  auto out_groups = group_arguments(op_kind::pull, keys, {}, outs, device_tensors);
  if (!out_groups) return out_groups.error();
  auto id_groups =
      group_arguments(op_kind::pull, keys, {}, spread_row_ids(keys, row_ids), device_tensors);
  if (!id_groups) {
    const auto& e = id_groups.error();
    return status{e.code(), "row_sparse_pull: row ids: " + e.message()};
  }
  row_pull_request req{std::move(*out_groups), {}};
  auto& groups = req.groups;
  if (auto s = check_overlaps(op_kind::row_pull, groups); !s) return s;
  req.ids.resize(groups.size());
  std::shared_lock<std::shared_mutex> lk(reg.mutex());
  for (std::size_t i = 0; i < groups.size(); ++i) {
    auto& g = groups[i];
    if (auto s = reg.check_call_kind(g.k, groups.front().k); !s) return s;
    g.info = reg.find(g.k);
    if (!g.info)
      return status{errc::not_initialized,
                    "row_sparse_pull: key " + g.k.to_string() + " is not initialized"};
    if (!compact)
      for (const auto& o : g.outs)
        if (auto s = check_tensor(op_kind::row_pull, *g.info, o, "output"); !s) return s;
    const auto& idg = (*id_groups)[i].outs;
    if (idg.size() != 1 && idg.size() != g.outs.size())
      return status{errc::invalid_argument, "row_sparse_pull: key " + g.k.to_string() + " has " +
                                                std::to_string(g.outs.size()) + " outputs but " +
                                                std::to_string(idg.size()) + " row id tensors"};
    for (const auto& t : idg) {
      // Ids on a device are read from a host copy (a few bytes per row).
      tensor host = t;
      try {
        if (!t.device().is_cpu()) host = t.copy_to(device::cpu());
      } catch (const error& e) {
        return status{e.code(),
                      "row_sparse_pull: row ids for key " + g.k.to_string() + ": " + e.message()};
      }
      auto r = parse_row_ids(g.k, host, g.info->shape[0]);
      if (!r) return r.error();
      req.ids[i].push_back(std::move(*r));
    }
    if (compact)
      for (std::size_t j = 0; j < g.outs.size(); ++j) {
        const auto& want = req.ids[i].size() == 1 ? req.ids[i][0] : req.ids[i][j];
        if (auto s = check_rows_output(*g.info, g.outs[j], want.size()); !s) return s;
      }
  }
  return req;
}

status check_sparse_push(std::vector<sparse_group>& groups, const key_registry& reg) {
  std::shared_lock<std::shared_mutex> lk(reg.mutex());
  for (auto& g : groups) {
    if (auto s = reg.check_call_kind(g.k, groups.front().k); !s) return s;
    g.info = reg.find(g.k);
    if (!g.info)
      return status{errc::not_initialized, "push: key " + g.k.to_string() + " is not initialized"};
    for (const auto& v : g.values) {
      if (v.shape() != g.info->shape)
        return status{errc::shape_mismatch, "push: row-sparse value for key " + g.k.to_string() +
                                                " has shape " + v.shape().to_string() +
                                                ", the stored value has shape " +
                                                g.info->shape.to_string()};
      if (v.dtype() != g.info->dtype)
        return status{errc::dtype_mismatch, "push: row-sparse value for key " + g.k.to_string() +
                                                " is " + to_string(v.dtype()) +
                                                ", the stored value is " +
                                                to_string(g.info->dtype)};
    }
  }
  return {};
}

status check_overlaps(op_kind kind, const group_list& groups) {
  struct span {
    std::uintptr_t begin, end;
    std::size_t group;
    bool out;
  };
  // Most calls name a few tensors: their spans fit inside, with no allocation per call.
  boost::container::small_vector<span, 8> spans;
  std::size_t outs = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const auto& t : groups[g].values) {
      auto b = reinterpret_cast<std::uintptr_t>(t.data_unchecked());
      spans.push_back({b, b + t.nbytes(), g, false});
    }
    for (const auto& t : groups[g].outs) {
      auto b = reinterpret_cast<std::uintptr_t>(t.data_unchecked());
      spans.push_back({b, b + t.nbytes(), g, true});
      ++outs;
    }
  }
  if (outs == 0) return {};
  const auto by_begin = [](const span& a, const span& b) { return a.begin < b.begin; };
  // Arrays allocated one after another usually come in address order: then no sort.
  if (!std::is_sorted(spans.begin(), spans.end(), by_begin))
    std::sort(spans.begin(), spans.end(), by_begin);
  for (std::size_t i = 0; i < spans.size(); ++i) {
    for (std::size_t j = i + 1; j < spans.size() && spans[j].begin < spans[i].end; ++j) {
      const span& a = spans[i];
      const span& b = spans[j];
      if (!a.out && !b.out) continue;                      // values may share memory
      if (a.group == b.group && a.out != b.out) continue;  // in place: its own key's value
      if (a.begin == a.end || b.begin == b.end) continue;
      const auto& ka = groups[a.group].k;
      const auto& kb = groups[b.group].k;
      return status{errc::invalid_argument, op_name(kind) + ": the output for key " +
                                                (a.out ? ka : kb).to_string() + " overlaps " +
                                                ((a.out && b.out) ? "another output" : "a value") +
                                                " of key " + (a.out ? kb : ka).to_string() +
                                                "; outputs must be distinct memory"};
    }
  }
  return {};
}

status check_tensor(op_kind kind, const key_info& info, const tensor& t, const char* role) {
  if (t.shape() != info.shape)
    return status{errc::shape_mismatch, op_name(kind) + ": " + role + " for key " + info.name() +
                                            " has shape " + t.shape().to_string() +
                                            ", the stored value has shape " +
                                            info.shape.to_string()};
  if (t.dtype() != info.dtype)
    return status{errc::dtype_mismatch, op_name(kind) + ": " + role + " for key " + info.name() +
                                            " is " + to_string(t.dtype()) +
                                            ", the stored value is " + to_string(info.dtype)};
  return {};
}

status resolve_group(op_kind kind, key_group& g, const key& first, const key_registry& reg) {
  if (auto s = reg.check_call_kind(g.k, first); !s) return s;
  auto info = reg.find(g.k);
  if (!info)
    return status{errc::not_initialized, std::string{to_string(kind)} + ": key " + g.k.to_string() +
                                             " is not initialized"};
  for (const auto& v : g.values)
    if (auto s = check_tensor(kind, *info, v, "value"); !s) return s;
  for (const auto& o : g.outs)
    if (auto s = check_tensor(kind, *info, o, "output"); !s) return s;
  g.info = std::move(info);
  return {};
}

result<key_info> check_new_group(op_kind kind, const key_group& g, const key& first,
                                 const key_registry& reg) {
  if (auto s = reg.check_call_kind(g.k, first); !s) return s;
  if (reg.find(g.k))
    return status{errc::already_initialized, std::string{to_string(kind)} + ": key " +
                                                 g.k.to_string() + " is already initialized"};
  const tensor& v = g.values.front();
  if (auto s = check_init_value(g.k, v); !s) return s;
  key_info probe;
  probe.user_key = g.k;
  probe.shape = v.shape();
  probe.dtype = v.dtype();
  for (const auto& o : g.outs)
    if (auto s = check_tensor(kind, probe, o, "output"); !s) return s;
  return probe;
}

status check_compressible(op_kind kind, const compression::params& gc, const key_group& g) {
  if (gc.type == compression::kind::none || g.info->dtype == dtype::float32) return {};
  return status{errc::unsupported, std::string{to_string(kind)} +
                                       ": gradient compression is on and compresses float32 "
                                       "values; key " +
                                       g.k.to_string() + " is " + to_string(g.info->dtype)};
}

status check_init_value(const key& k, const tensor& t) {
  if (!t.shape().is_valid_nonempty())
    return status{errc::invalid_argument, "init: value for key " + k.to_string() +
                                              " has the empty shape " + t.shape().to_string()};
  return {};
}

}  // namespace kvactor::detail
