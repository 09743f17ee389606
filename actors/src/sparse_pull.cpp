#include "sparse_pull.hpp"

#include <string>
#include <utility>
#include <vector>

#include "output_cast.hpp"
#include "request.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {

namespace {

status bad(const char* op, const std::string& what) {
  return status{errc::invalid_argument, std::string{op} + ": " + what};
}

// The items of a list paired with the call's keys by the facade's rules (kvstore.hpp): per
// index of `keys`, its items. An error when the list's form does not fit the keys.
template <class List, class Item>
result<std::vector<std::vector<Item>>> per_key(const char* op, const char* what,
                                               const key_list& keys, const List& l) {
  const std::size_t n = keys.size();
  std::vector<std::vector<Item>> out(n);
  using form = typename List::form;
  switch (l.shape()) {
    case form::none:
      return bad(op, std::string{"no "} + what + " given");
    case form::single:
      if (n != 1) return bad(op, std::to_string(n) + " keys but one " + what);
      out[0].push_back(l.flat().front());
      return out;
    case form::list:
      if (l.flat().empty()) return bad(op, std::string{"an empty list of "} + what);
      if (keys.is_list() && l.flat().size() != n)
        return bad(op,
                   std::to_string(n) + " keys but " + std::to_string(l.flat().size()) + " " + what);
      for (std::size_t i = 0; i < l.flat().size(); ++i)
        out[keys.is_list() ? i : 0].push_back(l.flat()[i]);
      return out;
    case form::nested:
      if (!keys.is_list() || l.nested().size() != n)
        return bad(op, std::string{"a list of lists of "} + what + " needs one list per key");
      for (std::size_t i = 0; i < n; ++i) {
        if (l.nested()[i].empty())
          return bad(op,
                     std::string{"an empty list of "} + what + " for key " + keys[i].to_string());
        out[i] = l.nested()[i];
      }
      return out;
  }
  return out;
}

// value_list's single tensor lives apart from its list; this view reads both alike.
struct id_view {
  using form = value_list::form;
  value_list v;
  std::vector<tensor> single;
  explicit id_view(value_list l) : v(std::move(l)) {
    if (v.shape() == form::single) single.push_back(v.single());
  }
  form shape() const { return v.shape(); }
  const std::vector<tensor>& flat() const { return v.shape() == form::single ? single : v.flat(); }
  const std::vector<std::vector<tensor>>& nested() const { return v.nested(); }
};

// One output of the call: what the store fills and what the output receives on success.
struct planned {
  std::shared_ptr<row_sparse_output_state> out;
  row_sparse_tensor value;
  std::uint64_t ticket = 0;
};

struct sparse_call {
  std::vector<planned> outs;
  promise<void> done;
};

tensor host_ids(const std::vector<std::int64_t>& ids) {
  tensor t = tensor::empty(shape{static_cast<std::int64_t>(ids.size())}, dtype::int64);
  std::copy(ids.begin(), ids.end(), static_cast<std::int64_t*>(t.data_unchecked()));
  return t;
}

}  // namespace

future<void> pull_rows_into(store_impl& s, const key_list& keys, const sparse_output_list& outs,
                            const value_list& row_ids, int priority) {
  constexpr const char* op = "row_sparse_pull";
  auto fail = [](status st) { return future<void>::ready_with(std::move(st)); };
  // A store that takes outputs as they are given (user-registered types) knows no shapes.
  if (!s.converts_outputs())
    return fail(status{errc::unsupported, std::string{op} +
                                              " into row-sparse outputs: store type " + s.type() +
                                              " does not support it"});
  auto o_per = per_key<sparse_output_list, row_sparse_output>(op, "row-sparse outputs", keys, outs);
  if (!o_per) return fail(o_per.error());
  const id_view ids_given{spread_row_ids(keys, row_ids)};
  auto i_per = per_key<id_view, tensor>(op, "row id tensors", keys, ids_given);
  if (!i_per) return fail(i_per.error());

  // Distinct keys in first-appearance order, each with its outputs and id tensors.
  std::vector<key> distinct;
  std::vector<std::vector<row_sparse_output>> g_outs;
  std::vector<std::vector<tensor>> g_ids;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::size_t g = 0;
    while (g < distinct.size() && !(distinct[g] == keys[i]))
      ++g;
    if (g == distinct.size()) {
      distinct.push_back(keys[i]);
      g_outs.emplace_back();
      g_ids.emplace_back();
    }
    g_outs[g].insert(g_outs[g].end(), (*o_per)[i].begin(), (*o_per)[i].end());
    g_ids[g].insert(g_ids[g].end(), (*i_per)[i].begin(), (*i_per)[i].end());
  }

  auto call = std::make_shared<sparse_call>();
  std::vector<output_cast> casts;
  std::vector<key> store_keys;
  std::vector<std::vector<tensor>> store_outs, store_ids;
  try {
    for (std::size_t g = 0; g < distinct.size(); ++g) {
      const key& k = distinct[g];
      // The key's kind first, as the store's own calls check it: a string key in an int-key
      // store is refused as such, not as unknown.
      if (auto kind = s.check_key_kind(k, distinct.front()); !kind) return fail(kind);
      const key_info_ptr info = s.key_of(k);
      if (!info)
        return fail(status{errc::not_initialized,
                           std::string{op} + ": key " + k.to_string() + " is not initialized"});
      if (g_ids[g].size() != 1 && g_ids[g].size() != g_outs[g].size())
        return fail(bad(op, "key " + k.to_string() + " has " + std::to_string(g_outs[g].size()) +
                                " outputs but " + std::to_string(g_ids[g].size()) +
                                " row id tensors"));
      std::vector<tensor> k_outs, k_ids;
      for (std::size_t j = 0; j < g_outs[g].size(); ++j) {
        const auto& out = g_outs[g][j].state();
        for (const auto& p : call->outs)
          if (p.out == out)
            return fail(
                bad(op, "the same row-sparse output is given twice (key " + k.to_string() + ")"));
        const tensor& given = g_ids[g].size() == 1 ? g_ids[g][0] : g_ids[g][j];
        if (!given.defined()) return fail(bad(op, "null row ids for key " + k.to_string()));
        const tensor host = given.device().is_cpu() ? given : given.copy_to(device::cpu());
        auto ids = parse_row_ids(k, host, info->shape[0]);
        if (!ids) return fail(ids.error());
        std::vector<std::int64_t> dims = info->shape.dims();
        dims[0] = static_cast<std::int64_t>(ids->size());
        const dtype want = out->type.value_or(info->dtype);
        tensor data = tensor::empty(shape{dims}, want, out->dev);
        tensor index = host_ids(*ids);
        if (!out->dev.is_cpu()) index = index.copy_to(out->dev);
        call->outs.push_back({out, row_sparse_tensor::from(index, data, info->shape)});
        if (ids->empty()) continue;  // nothing to copy
        tensor rows = data;
        if (want != info->dtype) {
          rows = tensor::empty(shape{dims}, info->dtype, out->dev);
          casts.push_back(output_cast{rows, data});
        }
        k_outs.push_back(rows);
        k_ids.push_back(host_ids(*ids));
      }
      if (k_outs.empty()) continue;
      store_keys.push_back(k);
      store_outs.push_back(std::move(k_outs));
      store_ids.push_back(std::move(k_ids));
    }
  } catch (const error& e) {  // a device this build or machine lacks, or no memory there
    return fail(status{e.code(), std::string{op} + ": " + e.message()});
  }

  future<void> stored = future<void>::ready_with(status{});
  if (!store_keys.empty())
    stored = s.row_sparse_pull(key_list{std::move(store_keys)}, value_list{std::move(store_outs)},
                               value_list{std::move(store_ids)}, priority, row_layout::compact);
  if (!casts.empty()) stored = finish_casts(stored, std::move(casts), s.casts());
  for (auto& p : call->outs) {
    std::lock_guard<std::mutex> g(p.out->mu);
    ++p.out->in_flight;
    p.ticket = ++p.out->issued;
  }
  auto result = call->done.get_future();
  stored.then([call](const future<void>& f) {
    const status& st = f.get_status();
    for (auto& p : call->outs) {
      std::lock_guard<std::mutex> g(p.out->mu);
      if (st.is_ok() && p.ticket > p.out->applied) {
        p.out->value = std::move(p.value);
        p.out->applied = p.ticket;
      }
      if (--p.out->in_flight == 0) p.out->idle.notify_all();
    }
    call->done.set_status(st);
  });
  return result;
}

future<void> pull_sparse_outputs(const key_list& keys, const sparse_output_list& outs,
                                 bool ignore_sparse) {
  auto o_per = per_key<sparse_output_list, row_sparse_output>("pull", "outputs", keys, outs);
  if (!o_per) return future<void>::ready_with(o_per.error());
  if (ignore_sparse) return future<void>::ready_with(status{});  // MXNet skips them
  return future<void>::ready_with(
      status{errc::invalid_argument, "pull: the output for key " + keys[0].to_string() +
                                         " is row-sparse; pull writes dense outputs (use "
                                         "row_sparse_pull, or ignore_sparse to skip it)"});
}

}  // namespace kvactor::detail
