// dist_sync_device / dist_async_device: a front for a dist store that takes values and outputs
// on CUDA devices. A push's values for one key are summed on a device of the worker (the
// first value's; host values are uploaded to it) and the sum is copied to host memory, so the
// worker sends one value per key; outputs on devices get host stand-ins that are copied to the
// devices once the dist store has filled them.
//
// Order. Device work completes later than the call that asked for it, so calls go through a
// FIFO: a call is handed to the dist store once every call before it has been, and once its own
// device values are in host memory. Calls without device tensors, when nothing is queued, go
// straight through. Completions of device work arrive on the device callback thread, which then
// forwards the calls now ready (the dist store's calls never block).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <type_traits>

#include "kvactor/cuda.hpp"
#include "kvactor/detail/device_kernels.hpp"
#include "kvactor/detail/device_ops.hpp"
#include "request.hpp"
#include "store_impl.hpp"

namespace kvactor::detail {
namespace {

bool on_device(const tensor& t) {
  return t.defined() && !t.device().is_cpu();
}

bool any_on_device(const value_list& v) {
  switch (v.shape()) {
    case value_list::form::single:
      return on_device(v.single());
    case value_list::form::list:
      return std::any_of(v.flat().begin(), v.flat().end(), on_device);
    case value_list::form::nested:
      for (const auto& l : v.nested())
        if (std::any_of(l.begin(), l.end(), on_device)) return true;
      return false;
    case value_list::form::none:
      return false;
  }
  return false;
}

// The tensors of one key must agree with each other before they are summed on a device (the
// dist store checks the host results against the key).
status check_alike(op_kind kind, const key_group& g) {
  const tensor* first = nullptr;
  for (const auto* list : {&g.values, &g.outs})
    for (const auto& t : *list) {
      if (!first) {
        first = &t;
        continue;
      }
      if (t.shape() != first->shape())
        return status{errc::shape_mismatch, std::string{to_string(kind)} + ": key " +
                                                g.k.to_string() + " is given tensors of shapes " +
                                                first->shape().to_string() + " and " +
                                                t.shape().to_string()};
      if (t.dtype() != first->dtype())
        return status{errc::dtype_mismatch, std::string{to_string(kind)} + ": key " +
                                                g.k.to_string() + " is given tensors of types " +
                                                to_string(first->dtype()) + " and " +
                                                to_string(t.dtype())};
    }
  return {};
}

// Device work of one call: the streams it used and the tensors it must keep alive until they
// have all reported back.
struct device_batch {
  std::vector<device_stream> streams;
  std::vector<tensor> keep;

  void use(const device_stream& s) {
    if (std::find(streams.begin(), streams.end(), s) == streams.end()) streams.push_back(s);
  }

  // Calls done(first error or ok) once every stream has reached this point.
  void when_done(std::function<void(status)> done) {
    when_all_done(streams,
                  [keep = std::move(keep), done = std::move(done)](const status& st) mutable {
                    keep.clear();
                    done(st);
                  });
  }
};

stream_priority stream_for(int priority) {
  return priority > 0 ? stream_priority::high : stream_priority::normal;
}

// Enqueues host = the sum of values (at least one on a device), summed on the first device
// value's device.
tensor sum_to_host(const tensor_list& values, const key& k, int priority, device_batch& b) {
  const tensor* first_dev = nullptr;
  for (const auto& v : values)
    if (on_device(v)) {
      first_dev = &v;
      break;
    }
  const device d = first_dev->device();
  const auto s = get_stream(d, stream_for(priority), std::hash<std::string>{}(k.to_string()));
  b.use(s);
  const std::size_t bytes = first_dev->nbytes();
  tensor host = pinned_empty(first_dev->shape(), first_dev->dtype());
  b.keep.push_back(host);
  if (values.size() == 1) {
    device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), first_dev->data_unchecked(),
                               d, bytes);
    b.keep.push_back(*first_dev);
    return host;
  }
  tensor sum = tensor::empty(first_dev->shape(), first_dev->dtype(), d);
  const std::vector<tensor> inputs(values.begin(), values.end());
  for (auto& t : sum_on_device_async(s, inputs, sum))
    b.keep.push_back(std::move(t));
  b.keep.insert(b.keep.end(), inputs.begin(), inputs.end());
  device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), sum.data_unchecked(), d,
                             bytes);
  b.keep.push_back(std::move(sum));
  return host;
}

// A host tensor that an enqueued copy fills with t (on t's device).
tensor copy_to_host(const tensor& t, int priority, device_batch& b) {
  const auto s = get_stream(t.device(), stream_for(priority));
  b.use(s);
  tensor host = pinned_empty(t.shape(), t.dtype());
  device_kernels::copy_async(s, host.data_unchecked(), device::cpu(), t.data_unchecked(),
                             t.device(), t.nbytes());
  b.keep.push_back(t);
  b.keep.push_back(host);
  return host;
}

// v with its rows in host memory (copied there when on a device): the dist store merges and
// sends host rows.
row_sparse_tensor rows_to_host(const row_sparse_tensor& v, int priority, device_batch& b) {
  if (!v.defined() || v.device().is_cpu()) return v;
  return row_sparse_tensor::from(v.host_indices(), copy_to_host(v.data(), priority, b), v.shape());
}

// The same list with each tensor replaced by fn(tensor).
template <class List, class Fn>
List map_list(const List& l, Fn fn) {
  using item = std::decay_t<decltype(l.flat().front())>;
  auto all = [&](const std::vector<item>& v) {
    std::vector<item> r;
    r.reserve(v.size());
    for (const auto& t : v)
      r.push_back(fn(t));
    return r;
  };
  switch (l.shape()) {
    case List::form::single:
      if constexpr (std::is_same_v<List, value_list>)
        return List(fn(l.single()));
      else
        return List(fn(l.flat().front()));
    case List::form::list:
      return List(all(l.flat()));
    case List::form::nested: {
      std::vector<std::vector<item>> r;
      for (const auto& v : l.nested())
        r.push_back(all(v));
      return List(std::move(r));
    }
    case List::form::none:
      break;
  }
  return l;
}

bool any_rows_on_device(const sparse_list& l) {
  bool any = false;
  map_list(l, [&](const row_sparse_tensor& v) {
    any = any || (v.defined() && !v.device().is_cpu());
    return v;
  });
  return any;
}

class device_front final : public store_impl {
 public:
  explicit device_front(std::shared_ptr<store_impl> inner) : inner_(std::move(inner)) {}
  ~device_front() override { shutdown(); }

  future<void> submit(op_kind kind, const key_list& keys, const value_list& values,
                      const value_list& outs, int priority) override {
    if (!any_on_device(values) && !any_on_device(outs)) {
      return in_order([=] { return inner_->submit(kind, keys, values, outs, priority); });
    }
    const value_list& out_args = (kind == op_kind::pushpull && outs.empty()) ? values : outs;
    auto grouped = group_arguments(kind, keys, values, out_args, /*device_tensors=*/true);
    if (!grouped) return future<void>::ready_with(grouped.error());
    auto& groups = *grouped;
    if (auto s = check_overlaps(kind, groups); !s) return future<void>::ready_with(s);
    for (const auto& g : groups)
      if (auto s = check_alike(kind, g); !s) return future<void>::ready_with(s);

    // The same call on host tensors: one list of values and of outputs per distinct key.
    auto b = std::make_shared<device_batch>();
    std::vector<key> ks;
    std::vector<std::vector<tensor>> host_values, host_outs;
    std::vector<std::pair<tensor, tensor>> copy_back;  // (device output, host stand-in)
    try {
      for (const auto& g : groups) {
        ks.push_back(g.k);
        std::vector<tensor> hv;
        if (std::any_of(g.values.begin(), g.values.end(), on_device))
          hv.push_back(sum_to_host(g.values, g.k, priority, *b));
        else
          hv.assign(g.values.begin(), g.values.end());
        host_values.push_back(std::move(hv));
        std::vector<tensor> ho;
        for (const auto& o : g.outs) {
          if (!on_device(o)) {
            ho.push_back(o);
            continue;
          }
          tensor stand_in = pinned_empty(o.shape(), o.dtype());
          copy_back.emplace_back(o, stand_in);
          ho.push_back(std::move(stand_in));
        }
        host_outs.push_back(std::move(ho));
      }
    } catch (const error& e) {
      return future<void>::ready_with(e.to_status());
    }
    const bool has_values = kind != op_kind::pull;
    const bool has_outs = kind != op_kind::push && kind != op_kind::init;
    auto forward = [this, kind, ks, host_values, host_outs, has_values, has_outs, priority] {
      return inner_->submit(kind, key_list(ks), has_values ? value_list(host_values) : value_list{},
                            has_outs ? value_list(host_outs) : value_list{}, priority);
    };
    auto item = enqueue(std::move(forward), std::move(copy_back), priority);
    b->when_done([this, item](status s) { mark_ready(item, std::move(s)); });
    return item->outer.get_future();
  }

  // Rows on devices are copied to host memory, then the call goes to the dist store.
  future<void> submit_sparse(op_kind kind, const key_list& keys, const sparse_list& values,
                             int priority) override {
    if (!any_rows_on_device(values))
      return in_order([=] { return inner_->submit_sparse(kind, keys, values, priority); });
    auto b = std::make_shared<device_batch>();
    sparse_list host;
    try {
      host = map_list(values,
                      [&](const row_sparse_tensor& v) { return rows_to_host(v, priority, *b); });
    } catch (const error& e) {
      return future<void>::ready_with(e.to_status());
    }
    auto item =
        enqueue([=] { return inner_->submit_sparse(kind, keys, host, priority); }, {}, priority);
    b->when_done([this, item](status s) { mark_ready(item, std::move(s)); });
    return item->outer.get_future();
  }

  // Row ids on devices are copied to host memory; outputs on devices get host stand-ins that
  // the dist store fills (requested rows, zero elsewhere) and that are then copied to them.
  // (Compact: the stand-ins have the outputs' own shape, as the outputs.)
  future<void> row_sparse_pull(const key_list& keys, const value_list& outs,
                               const value_list& row_ids, int priority,
                               row_layout layout) override {
    auto inner = inner_;
    auto pull = [inner, keys, layout, priority](const value_list& o, const value_list& ids) {
      return inner->row_sparse_pull(keys, o, ids, priority, layout);
    };
    if (!any_on_device(outs) && !any_on_device(row_ids))
      return in_order([=] { return pull(outs, row_ids); });
    auto b = std::make_shared<device_batch>();
    std::vector<std::pair<tensor, tensor>> copy_back;
    value_list host_outs, host_ids;
    try {
      host_outs = map_list(outs, [&](const tensor& o) {
        if (!on_device(o)) return o;
        tensor stand_in = pinned_empty(o.shape(), o.dtype());
        copy_back.emplace_back(o, stand_in);
        return stand_in;
      });
      host_ids = map_list(row_ids, [&](const tensor& t) {
        return on_device(t) ? copy_to_host(t, priority, *b) : t;
      });
    } catch (const error& e) {
      return future<void>::ready_with(e.to_status());
    }
    auto item = enqueue([=] { return pull(host_outs, host_ids); }, std::move(copy_back), priority);
    b->when_done([this, item](status s) { mark_ready(item, std::move(s)); });
    return item->outer.get_future();
  }
  void set_updater(std::shared_ptr<const updater> u) override { inner_->set_updater(std::move(u)); }
  future<void> set_optimizer(const optimizer_config& cfg) override {
    return in_order([=] { return inner_->set_optimizer(cfg); });
  }
  future<void> set_compression(const std::string& type, double threshold) override {
    return in_order([=] { return inner_->set_compression(type, threshold); });
  }
  future<void> save_states(const std::string& file, bool dump) override {
    return in_order([=] { return inner_->save_states(file, dump); });
  }
  future<void> load_states(const std::string& file) override {
    return in_order([=] { return inner_->load_states(file); });
  }
  future<void> send_command(int head, const std::string& body) override {
    return in_order([=] { return inner_->send_command(head, body); });
  }
  std::string type() const override { return inner_->type(); }
  int rank() const override { return inner_->rank(); }
  int num_workers() const override { return inner_->num_workers(); }
  future<void> barrier() override {
    return in_order([=] { return inner_->barrier(); });
  }
  bool is_capable(std::string_view c) const override { return inner_->is_capable(c); }

  void wait_all() override {
    {
      std::unique_lock<std::mutex> lk(mu_);
      idle_.wait(lk, [this] { return open_ == 0; });
    }
    inner_->wait_all();
  }
  std::size_t outstanding() const override {
    std::lock_guard<std::mutex> g(mu_);
    return open_ + inner_->outstanding();
  }
  void shutdown() override {
    if (stopped_.exchange(true)) return;
    wait_all();
    inner_->shutdown();
  }
  const caf::actor* client_actor() const noexcept override { return inner_->client_actor(); }
  key_info_ptr key_of(const key& k) const override { return inner_->key_of(k); }

 private:
  struct item {
    std::function<future<void>()> forward;
    std::vector<std::pair<tensor, tensor>> copy_back;
    int priority = 0;
    bool ready = false;
    status failed;  // device work that failed: the call is not forwarded
    promise<void> outer;
  };
  using item_ptr = std::shared_ptr<item>;

  // A call without device work: straight through when nothing waits before it.
  future<void> in_order(std::function<future<void>()> forward) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (queue_.empty() && !pumping_) return forward();
    }
    auto it = enqueue(std::move(forward), {}, 0);
    mark_ready(it, status{});
    return it->outer.get_future();
  }

  item_ptr enqueue(std::function<future<void>()> forward,
                   std::vector<std::pair<tensor, tensor>> copy_back, int priority) {
    auto it = std::make_shared<item>();
    it->forward = std::move(forward);
    it->copy_back = std::move(copy_back);
    it->priority = priority;
    std::lock_guard<std::mutex> g(mu_);
    queue_.push_back(it);
    ++open_;
    return it;
  }

  void mark_ready(const item_ptr& it, status s) {
    {
      std::lock_guard<std::mutex> g(mu_);
      it->ready = true;
      it->failed = std::move(s);
      if (pumping_) return;  // the thread that pumps sees it
      pumping_ = true;
    }
    pump();
  }

  // Forwards, in order, every call now ready at the front of the queue; one thread at a time
  // (pumping_), without the lock while it calls the dist store.
  void pump() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!queue_.empty() && queue_.front()->ready) {
      item_ptr front = std::move(queue_.front());
      queue_.pop_front();
      lk.unlock();
      if (!front->failed.is_ok()) {
        finish(front, front->failed);
      } else {
        future<void> f = front->forward();
        f.then([this, front](const future<void>& done) { after_inner(front, done); });
      }
      lk.lock();
    }
    pumping_ = false;
  }

  void after_inner(const item_ptr& it, const future<void>& done) {
    status s;
    try {
      done.get();
    } catch (const error& e) {
      s = e.to_status();
    }
    if (!s.is_ok() || it->copy_back.empty()) return finish(it, s);
    auto b = std::make_shared<device_batch>();
    try {
      for (const auto& [dev_out, host] : it->copy_back) {
        const auto st = get_stream(dev_out.device(), stream_for(it->priority));
        device_kernels::copy_async(st, dev_out.data_unchecked(), dev_out.device(),
                                   host.data_unchecked(), device::cpu(), host.nbytes());
        b->keep.push_back(dev_out);
        b->keep.push_back(host);
        b->use(st);
      }
    } catch (const error& e) {
      s = e.to_status();
    }
    b->when_done([this, it, s](const status& st) { finish(it, s.is_ok() ? st : s); });
  }

  void finish(const item_ptr& it, const status& s) {
    it->outer.set_status(s);
    std::lock_guard<std::mutex> g(mu_);
    if (--open_ == 0) idle_.notify_all();
  }

  std::shared_ptr<store_impl> inner_;
  mutable std::mutex mu_;
  std::condition_variable idle_;
  std::deque<item_ptr> queue_;
  std::size_t open_ = 0;  // calls queued or copying back
  bool pumping_ = false;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::shared_ptr<store_impl> with_device_values(std::shared_ptr<store_impl> inner) {
  return std::make_shared<device_front>(std::move(inner));
}

}  // namespace kvactor::detail
