#include "request.hpp"

#include <algorithm>
#include <unordered_map>

namespace kvactor::detail {

namespace {

std::string op_name(op_kind kind) { return to_string(kind); }

// One list of tensors per key of the call, following MXNet's _ctype_key_value rules.
result<std::vector<std::vector<tensor>>> per_key(op_kind kind, const key_list& keys,
                                                 const value_list& v, const char* role) {
  const std::size_t n = keys.items().size();
  std::vector<std::vector<tensor>> lists;
  auto fail = [&](const std::string& what) {
    return status{errc::invalid_argument, op_name(kind) + ": " + what};
  };
  switch (v.shape()) {
    case value_list::form::none:
      return fail(std::string{"no "} + role + " given");
    case value_list::form::single:
      if (n != 1)
        return fail(std::to_string(n) + " keys but one " + role + " tensor");
      lists.push_back({v.flat().front()});
      break;
    case value_list::form::list:
      if (!keys.is_list()) {
        lists.push_back(v.flat());  // one key, one tensor per device
      } else {
        if (v.flat().size() != n)
          return fail(std::to_string(n) + " keys but " + std::to_string(v.flat().size()) + " " +
                      role + " tensors");
        for (const auto& t : v.flat()) lists.push_back({t});
      }
      break;
    case value_list::form::nested:
      if (!keys.is_list())
        return fail(std::string{"a list of lists of "} + role +
                    " tensors needs a list of keys; key " + keys.items().front().to_string() +
                    " is a single key");
      if (v.nested().size() != n)
        return fail(std::to_string(n) + " keys but " + std::to_string(v.nested().size()) +
                    " lists of " + role + " tensors");
      lists = v.nested();
      break;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (lists[i].empty())
      return fail(std::string{"empty list of "} + role + " tensors for key " +
                  keys.items()[i].to_string());
    for (std::size_t j = 0; j < lists[i].size(); ++j) {
      const tensor& t = lists[i][j];
      if (!t.defined())
        return fail(std::string{"null "} + role + " tensor #" + std::to_string(j) + " for key " +
                    keys.items()[i].to_string());
      if (!t.device().is_cpu())
        return status{errc::unsupported, op_name(kind) + ": " + role + " for key " +
                                             keys.items()[i].to_string() + " is on " +
                                             t.device().to_string() +
                                             "; this store handles cpu tensors"};
    }
  }
  return lists;
}

}  // namespace

result<std::vector<key_group>> group_arguments(op_kind kind, const key_list& keys,
                                               const value_list& values, const value_list& outs) {
  const auto& ks = keys.items();
  if (ks.empty()) return status{errc::invalid_argument, op_name(kind) + ": no keys given"};
  const bool has_values = kind != op_kind::pull;
  const bool has_outs = kind != op_kind::push && kind != op_kind::init;

  std::vector<std::vector<tensor>> vals, outv;
  if (has_values) {
    auto r = per_key(kind, keys, values, "value");
    if (!r) return r.error();
    vals = std::move(*r);
  }
  if (has_outs) {
    auto r = per_key(kind, keys, outs, "output");
    if (!r) return r.error();
    outv = std::move(*r);
  }

  std::vector<key_group> groups;
  groups.reserve(ks.size());
  if (ks.size() == 1) {
    groups.push_back(key_group{ks[0], has_values ? std::move(vals[0]) : std::vector<tensor>{},
                               has_outs ? std::move(outv[0]) : std::vector<tensor>{}});
  } else {
    std::unordered_map<key, std::size_t> index;
    for (std::size_t i = 0; i < ks.size(); ++i) {
      auto [it, fresh] = index.emplace(ks[i], groups.size());
      if (fresh) groups.push_back(key_group{ks[i], {}, {}});
      auto& g = groups[it->second];
      if (has_values) g.values.insert(g.values.end(), vals[i].begin(), vals[i].end());
      if (has_outs) g.outs.insert(g.outs.end(), outv[i].begin(), outv[i].end());
    }
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

status check_overlaps(op_kind kind, const std::vector<key_group>& groups) {
  struct span {
    std::uintptr_t begin, end;
    std::size_t group;
    bool out;
  };
  std::vector<span> spans;
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
  std::sort(spans.begin(), spans.end(),
            [](const span& a, const span& b) { return a.begin < b.begin; });
  for (std::size_t i = 0; i < spans.size(); ++i) {
    for (std::size_t j = i + 1; j < spans.size() && spans[j].begin < spans[i].end; ++j) {
      const span& a = spans[i];
      const span& b = spans[j];
      if (!a.out && !b.out) continue;                   // values may share memory
      if (a.group == b.group && a.out != b.out) continue;  // in place: its own key's value
      if (a.begin == a.end || b.begin == b.end) continue;
      const auto& ka = groups[a.group].k;
      const auto& kb = groups[b.group].k;
      return status{errc::invalid_argument,
                    op_name(kind) + ": the output for key " + (a.out ? ka : kb).to_string() +
                        " overlaps " + ((a.out && b.out) ? "another output" : "a value") +
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

status check_init_value(const key& k, const tensor& t) {
  if (!t.shape().is_valid_nonempty())
    return status{errc::invalid_argument, "init: value for key " + k.to_string() +
                                              " has the empty shape " + t.shape().to_string()};
  return {};
}

}  // namespace kvactor::detail
