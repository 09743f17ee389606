// The store front end (store_front.hpp): every store's grouping, validation against the key
// registry, updater/compression snapshot and sparse-init redirect, written once; routing is
// the router's.
#include "store_front.hpp"

#include <algorithm>
#include <cctype>

namespace kvactor::detail {

namespace {

status shut_down() {
  return status{errc::shut_down, "the store has shut down"};
}

class store_front final : public store_impl, public std::enable_shared_from_this<store_front> {
 public:
  store_front(std::string type, std::unique_ptr<front_state> s, std::unique_ptr<router> r)
      : type_(std::move(type)), st_(std::move(s)), router_(std::move(r)) {}

  ~store_front() override { shutdown(); }

  void start() { router_->start(weak_from_this()); }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    const value_list& out_args = (kind == op_kind::pushpull && outs.empty()) ? values : outs;
    auto grouped = group_arguments(kind, keys, values, out_args, props().device_tensors);
    if (!grouped) return ready(grouped.error());
    auto& groups = *grouped;
    if (auto s = check_overlaps(kind, groups); !s) return ready(s);
    if (kind == op_kind::init || kind == op_kind::broadcast)
      return submit_new(kind, groups, priority);

    front_state::snapshot snap;
    if (kind == op_kind::push || kind == op_kind::pushpull) snap = st_->current();
    std::shared_lock<std::shared_mutex> lk(st_->reg.mutex());
    if (st_->stopped) return ready(shut_down());
    for (auto& g : groups) {
      if (auto s = resolve_group(kind, g, groups.front().k, st_->reg); !s) return ready(s);
      // A local store compresses only multi-device merges.
      if (props().compress_single || g.values.size() > 1)
        if (auto s = check_compressible(kind, snap.gc, g); !s) return ready(s);
    }
    if (auto s = router_->check(kind, groups); !s) return ready(s);
    return router_->route(kind, groups, priority, snap, lk);
  }

  future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                             int priority) override {
    auto grouped = group_sparse(kind, keys, values, props().device_tensors);
    if (!grouped) return ready(grouped.error());
    if (kind == op_kind::init) return init_dense(*grouped, priority);
    auto& groups = *grouped;
    if (auto s = check_sparse_push(groups, st_->reg); !s) return ready(s);
    auto upd = st_->current_updater();
    std::shared_lock<std::shared_mutex> lk(st_->reg.mutex());
    if (st_->stopped) return ready(shut_down());
    return router_->route_sparse(groups, priority, std::move(upd), lk);
  }

  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority,
                               row_layout layout) override {
    const bool compact = layout == row_layout::compact;
    auto req = prepare_row_pull(keys, outs, row_ids, st_->reg, props().device_tensors, compact);
    if (!req) return ready(req.error());
    std::shared_lock<std::shared_mutex> lk(st_->reg.mutex());
    if (st_->stopped) return ready(shut_down());
    return router_->route_rows(*req, priority, compact, lk);
  }

  void set_updater(std::shared_ptr<const updater> u) override {
    router_->check_updater();
    st_->install(std::move(u), std::nullopt);
  }

  future<void> set_optimizer(const optimizer_config& cfg) override {
    auto split = split_multi_precision(cfg);
    if (!split) return ready(split.error());
    return router_->set_optimizer(cfg, *split);
  }

  future<void> set_compression(const std::string& type, double threshold) override {
    auto p = compression::parse(type, threshold);
    if (!p) return ready(p.error());
    {
      std::lock_guard<std::mutex> g(st_->mu);
      st_->gc = *p;
      ++st_->gc_version;  // residuals start again from zero
    }
    return router_->set_compression(*p);
  }

  future<void> save_states(const std::string& file, bool dump_optimizer) override {
    return router_->save_states(file, dump_optimizer);
  }
  future<void> load_states(const std::string& file) override { return router_->load_states(file); }
  future<void> send_command(int head, const std::string& body) override {
    return router_->send_command(head, body);
  }

  std::string type() const override { return type_; }
  int rank() const override { return router_->rank(); }
  int num_workers() const override { return router_->num_workers(); }
  future<void> barrier() override { return router_->barrier(); }

  bool is_capable(std::string_view capability) const override {
    std::string c{capability};
    std::transform(c.begin(), c.end(), c.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (c == "optimizer") return true;
    throw error{errc::invalid_argument,
                "unknown capability \"" + std::string{capability} + "\" (known: optimizer)"};
  }

  void wait_all() override { st_->counter->wait_zero(); }
  std::size_t outstanding() const override { return st_->counter->value(); }

  void shutdown() override {
    {
      std::unique_lock<std::shared_mutex> lk(st_->reg.mutex());
      if (st_->stopped) return;
      st_->stopped = true;
    }
    router_->shutdown();
  }

  const caf::actor* client_actor() const noexcept override { return router_->client_actor(); }
  key_info_ptr key_of(const key& k) const override { return st_->reg.find_locked(k); }
  status check_key_kind(const key& k, const key& first) const override {
    std::shared_lock<std::shared_mutex> lk(st_->reg.mutex());
    return st_->reg.check_call_kind(k, first);
  }

 private:
  const router::properties& props() const noexcept { return router_->props(); }

  future<void> submit_new(op_kind kind, group_list& groups, int priority) {
    // Registration and routing start under the exclusive lock, so any later call that finds
    // these keys is routed after their init.
    std::unique_lock<std::shared_mutex> lk(st_->reg.mutex());
    if (st_->stopped) return ready(shut_down());
    for (const auto& g : groups) {
      auto probe = check_new_group(kind, g, groups.front().k, st_->reg);
      if (!probe) return ready(probe.error());
      if (auto s = router_->check_new(g, *probe); !s) return ready(s);
    }
    const auto homes = router_->homes(groups);
    for (std::size_t i = 0; i < groups.size(); ++i) {
      auto& g = groups[i];
      st_->reg.set_kind(g.k);
      g.info = st_->reg.add(g.k, g.values.front().shape(), g.values.front().dtype(), homes[i]);
    }
    return router_->route_new(kind, groups, priority, lk);
  }

  // Keys are stored dense: a row-sparse init is the init of the dense values the rows stand
  // for (on the rows' device, which init takes as any device value).
  future<void> init_dense(std::vector<sparse_group>& groups, int priority) {
    std::vector<key> ks;
    std::vector<tensor> dense;
    for (auto& g : groups) {
      if (g.values.size() != 1)
        return ready(
            status{errc::already_initialized, "init: key " + g.k.to_string() + " is given " +
                                                  std::to_string(g.values.size()) + " values"});
      ks.push_back(g.k);
      try {
        dense.push_back(g.values.front().to_dense());
      } catch (const error& e) {
        return ready(e.to_status());
      }
    }
    return submit(op_kind::init, key_list(ks), value_list(dense), {}, priority);
  }

  std::string type_;
  std::unique_ptr<front_state> st_;
  std::unique_ptr<router> router_;
};

}  // namespace

std::shared_ptr<store_impl> make_store_front(std::string type, std::unique_ptr<front_state> s,
                                             std::unique_ptr<router> r) {
  auto f = std::make_shared<store_front>(std::move(type), std::move(s), std::move(r));
  f->start();
  return f;
}

}  // namespace kvactor::detail
